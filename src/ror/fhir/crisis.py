"""Crisis mode as consumers see it: `GET /api/crises` (active ones; `?all=true` for the history).

Choice: a small JSON resource rather than tagging every Location (which would write a new version of thousands of
resources at each declaration and flood delta syncs). The FHIR CapabilityStatement documents it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ror.capacity.crisis import CrisisRegistry
from ror.fhir.common import services

router = APIRouter()


@router.get("/api/crises", tags=["capacity"], summary="Active crises (Plan blanc / SSE, PMIE) and their history")
def crises(request: Request, all: bool = False) -> JSONResponse:
    registry = CrisisRegistry(services(request).engine)
    items = registry.history() if all else registry.active()
    return JSONResponse({"crises": [c.as_json() for c in items]})
