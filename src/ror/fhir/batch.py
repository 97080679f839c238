"""`POST [base]` with a Bundle of type batch: the bulk feed for hospital software. The entries are written in one
transaction (`CapacityService.patch_many`), each checked on its own: one bad entry writes nothing and never blocks
or loses the others; every entry gets its outcome."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ror.access.tokens import ANONYMOUS
from ror.capacity.service import PatchRequest
from ror.errors import InvalidRequest, Issue, RorError
from ror.fhir.capacity import read_json
from ror.fhir.common import services
from ror.fhir.responses import FhirResponse, operation_outcome
from ror.search.normalise import fhir_instant
from ror.store.store import parse_etag

router = APIRouter()
MAX_ENTRIES = 1000


def _patch_target(url: str) -> tuple[str | None, str | None]:
    """`Location/{id}` or `Location?identifier=…` (relative or absolute) → (location id, identifier)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/").split("/fhir/", 1)[-1].lstrip("/")
    if path.startswith("ws-synchro-dispo-lits-fhir/"):
        path = path[len("ws-synchro-dispo-lits-fhir/") :]
    if path == "Location":
        ident = parse_qs(parts.query).get("identifier", [None])[0]
        if not ident:
            raise InvalidRequest("conditional PATCH needs ?identifier=", expression="Bundle.entry.request.url")
        return None, ident
    if path.startswith("Location/") and path.count("/") == 1:
        return path.split("/", 1)[1], None
    raise InvalidRequest(
        f"only PATCH Location entries are accepted in a batch, got {url!r}", expression="Bundle.entry.request.url"
    )


def _entry_outcome(status: int, issues: list[Issue]) -> dict[str, Any]:
    return {"response": {"status": str(status), "outcome": operation_outcome(issues)}}


@router.post("/fhir")
@router.post("/fhir/")
async def batch(request: Request) -> FhirResponse:
    bundle = await read_json(request)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "batch":
        raise InvalidRequest("POST [base] takes a Bundle of type batch", expression="Bundle.type")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidRequest("Bundle.entry must be a list of objects", expression="Bundle.entry")
    if len(entries) > MAX_ENTRIES:
        raise InvalidRequest(f"at most {MAX_ENTRIES} entries per batch", expression="Bundle.entry")
    caller = getattr(request.state, "caller", ANONYMOUS)
    capacity = services(request).capacity
    remote = request.client.host if request.client else None
    requests: list[PatchRequest | RorError] = []
    for i, entry in enumerate(entries):
        req = entry.get("request") or {}
        try:
            if not isinstance(req, dict):
                raise InvalidRequest("request must be an object", expression=f"Bundle.entry[{i}].request")
            if req.get("method") != "PATCH":
                raise InvalidRequest("only PATCH entries are accepted", expression=f"Bundle.entry[{i}].request.method")
            location_id, identifier = _patch_target(str(req.get("url", "")))
            if_match = req.get("ifMatch")
            try:
                version = parse_etag(if_match if isinstance(if_match, str) or if_match is None else str(if_match))
            except InvalidRequest as exc:
                raise InvalidRequest(exc.diagnostics, expression=f"Bundle.entry[{i}].request.ifMatch") from exc
            requests.append(PatchRequest(entry.get("resource"), location_id, identifier, if_match=version))
        except RorError as exc:
            requests.append(exc)
    # in the thread pool: the event loop keeps serving meanwhile
    results = await run_in_threadpool(capacity.patch_many, caller, requests, remote_addr=remote)
    out: list[dict[str, Any]] = []
    for result in results:
        if isinstance(result, RorError):
            out.append(_entry_outcome(result.status, result.issues))
            continue
        stored = result.stored
        out.append(
            {
                "response": {
                    "status": "200 OK",
                    "location": f"Location/{stored.res_id}/_history/{stored.version_id}",
                    "etag": stored.etag,
                    "lastModified": fhir_instant(stored.last_updated),
                    **({"outcome": operation_outcome(result.warnings)} if result.warnings else {}),
                }
            }
        )
    return FhirResponse({"resourceType": "Bundle", "type": "batch-response", "entry": out})
