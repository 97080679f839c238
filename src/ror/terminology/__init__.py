"""NOS terminology (ANS nomenclatures): loading (`load_nos`), FSH parsing and the in-memory `Terminology` service
(resolution of `R211` / OID / URL references, lookup, value-set validation and expansion)."""

from __future__ import annotations

from ror.terminology.loader import NosLoadReport, load_nos
from ror.terminology.service import Concept, ResourceSummary, Terminology

__all__ = ["Concept", "NosLoadReport", "ResourceSummary", "Terminology", "load_nos"]
