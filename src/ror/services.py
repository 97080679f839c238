"""The core services of one running instance, built once per database and shared by adapters (FHIR API, web, CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine

from ror.capacity import projection as capacity_projection
from ror.capacity.service import CapacityService
from ror.geo.service import Geography
from ror.search.registry import Registry, default_registry
from ror.store import ResourceStore
from ror.terminology.service import Terminology
from ror.validation import Validator
from ror.workflow import WorkflowService
from ror.write.service import WriteService


@dataclass
class Services:
    engine: Engine

    @cached_property
    def registry(self) -> Registry:
        return default_registry()

    @cached_property
    def geography(self) -> Geography:
        return Geography(self.engine)

    @cached_property
    def terminology(self) -> Terminology:
        return Terminology(self.engine)

    @cached_property
    def capacity(self) -> CapacityService:
        return CapacityService(self.store, self.terminology)

    @cached_property
    def store(self) -> ResourceStore:
        store = ResourceStore(self.engine, self.registry, region_of=self.geography.region_of_commune)
        capacity_projection.install(store)
        return store

    @cached_property
    def validator(self) -> Validator:
        return Validator(self.engine, self.terminology, self.geography)

    @cached_property
    def writes(self) -> WriteService:
        return WriteService(self.store, self.validator)

    @cached_property
    def workflow(self) -> WorkflowService:
        return WorkflowService(self.writes)
