"""The core services of one running instance, built once per database and shared by adapters (FHIR API, web, CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine

from ror.capacity import projection as capacity_projection
from ror.capacity.service import CapacityService
from ror.db.engine import is_sqlite
from ror.geo.service import Geography
from ror.search.query import QueryParser, SearchQuery
from ror.search.registry import Registry, default_registry
from ror.search.systems import make_system_resolver
from ror.store import ResourceStore
from ror.subscriptions import SubscriptionService
from ror.subscriptions.criteria import Matcher
from ror.subscriptions.outbox import Outbox
from ror.tension import TensionService
from ror.terminology.service import Terminology
from ror.urgences import UrgencesService
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
        self.outbox.install(store)  # FHIR subscriptions: notifications queued in the writing transaction
        return store

    @cached_property
    def query_parser(self) -> QueryParser:
        resolver = make_system_resolver(self.terminology.resolve_system)
        return QueryParser(self.registry, resolver, self.geography.centroid)

    def parse_query(self, res_type: str, items: list[tuple[str, str]]) -> SearchQuery:
        return self.query_parser.parse(res_type, items)

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(Matcher(self.parse_query, is_sqlite(self.engine)))

    @cached_property
    def subscriptions(self) -> SubscriptionService:
        return SubscriptionService(self.store, self.outbox)

    @cached_property
    def tension(self) -> TensionService:
        return TensionService(self.store, self.outbox, self.geography)

    @cached_property
    def urgences(self) -> UrgencesService:
        return UrgencesService(self.store, self.outbox)

    @cached_property
    def validator(self) -> Validator:
        return Validator(self.engine, self.terminology, self.geography)

    @cached_property
    def writes(self) -> WriteService:
        return WriteService(self.store, self.validator)

    @cached_property
    def workflow(self) -> WorkflowService:
        return WorkflowService(self.writes)
