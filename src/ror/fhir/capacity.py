"""Capacity writes over HTTP: PATCH Location/{id} and the feeders' conditional PATCH
Location?identifier=<idNatStruct EG>/<idExterneSynchro> (also under /ws-synchro-dispo-lits-fhir, the national
path), body = FHIRPath Patch Parameters (docs/capacity.md)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.types import ASGIApp, Receive, Scope, Send

from ror.access.tokens import ANONYMOUS
from ror.capacity.patch import is_capacity_patch
from ror.capacity.service import PatchRequest
from ror.errors import InvalidRequest, Issue, RorError
from ror.fhir.asgi import answer, header, replaying
from ror.fhir.common import JSON_PATCH, http_date, media_type, services
from ror.fhir.patch_groups import PatchGroups
from ror.fhir.read import _visible
from ror.fhir.responses import FhirResponse, operation_outcome
from ror.store import Stored
from ror.store.store import ID_RE, parse_etag

router = APIRouter()
MAX_BODY = 1_000_000


def patch_groups(request: Request) -> PatchGroups:
    """The app's group commit of concurrent PATCHes (one per worker process, made on first use)."""
    state = request.app.state
    groups: PatchGroups | None = getattr(state, "patch_groups", None)
    if groups is None:
        capacity = services(request).capacity
        groups = state.patch_groups = PatchGroups(capacity.patch_one, capacity.patch_many)
    return groups


async def read_json(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise InvalidRequest(f"body larger than {MAX_BODY} bytes", status=413, code="too-costly")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}", expression="body") from exc


async def _patch(request: Request, location_id: str | None, identifier: str | None, body: Any = None) -> FhirResponse:
    """`body`: the parsed JSON body when the route has read it already."""
    if body is None:
        body = await read_json(request)
    caller = getattr(request.state, "caller", ANONYMOUS)
    if_match = parse_etag(request.headers.get("if-match"))
    remote_addr = request.client.host if request.client else None
    outcome = "return=operationoutcome" in request.headers.get("prefer", "").lower().replace(" ", "")

    def visible(conn: Connection, stored: Stored) -> str:  # the answer, read in the write's transaction
        return _visible(request, stored, conn)

    patch = PatchRequest(body, location_id, identifier, if_match, remote_addr, None if outcome else visible)
    # written in the thread pool (the event loop keeps serving meanwhile), with the caller's concurrent PATCHes
    result = await patch_groups(request).submit(caller, patch)
    if isinstance(result.rendered, RorError):
        raise result.rendered
    visible_content = result.rendered if isinstance(result.rendered, str) else None
    headers = {
        "ETag": result.stored.etag,
        "Last-Modified": http_date(result.stored.last_updated),
        "Location": f"Location/{result.stored.res_id}/_history/{result.stored.version_id}",
    }
    if visible_content is None:
        issues = result.warnings or [Issue("information", "informational", "capacity updated")]
        return FhirResponse(operation_outcome(issues), headers=headers)
    return FhirResponse(visible_content.encode(), headers=headers)


@router.patch("/fhir/Location")
@router.patch("/ws-synchro-dispo-lits-fhir/Location")
async def patch_location_by_identifier(request: Request) -> FhirResponse:
    identifier = request.query_params.get("identifier")
    if not identifier:
        raise InvalidRequest(
            "conditional PATCH needs ?identifier=<idNatStruct EG>/<idExterneSynchro>", expression="identifier"
        )
    return await _patch(request, None, identifier)


_LOCATION_PREFIX = "/fhir/Location/"
_ROUTE = "/fhir/Location/{location_id}"  # the route label of the metrics and logs (ops)


class CapacityFastPath:
    """The feeders' `PATCH /fhir/Location/{id}` with a capacity FHIRPath Patch (docs/capacity.md), served without
    FastAPI's router, dependency and exception layers (a quarter of a worker's event-loop time on this request,
    measured with py-spy); behind the ops, authentication and body-limit middlewares like every route. Any other
    request — and any other patch of a Location (JSON Patch, other elements, a body that is not JSON) — goes on
    to the app unchanged, its body replayed: the generic write (ror.fhir.write)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" and scope["method"] == "PATCH" else ""
        location_id = path[len(_LOCATION_PREFIX) :] if path.startswith(_LOCATION_PREFIX) else ""
        if not ID_RE.match(location_id) or media_type(header(scope, b"content-type")) == JSON_PATCH:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replay = replaying(body, receive)
        try:
            parsed = orjson.loads(body) if len(body) <= MAX_BODY else None
        except orjson.JSONDecodeError:
            parsed = None
        if not is_capacity_patch(parsed):
            await self.app(scope, replay, send)
            return
        params = {"location_id": location_id}
        await answer(scope, replay, send, _ROUTE, params, lambda request: _patch(request, location_id, None, parsed))
