"""Tension en établissement (TES) as FHIR `Flag` (docs/tension.md):

    POST /fhir/Flag                 declare a level for an establishment (the level in force ends)
    PUT  /fhir/Flag/{id}            amend reasons / actions / comment, or end it (status inactive + period.end)
    GET  /fhir/Flag/{id}            read
    GET  /fhir/Flag?subject=Organization/…&_tag=<TRE_R30 system>|53&status=active&code=3,4

Reads: profiles 1 and 4 see every establishment; a feeder sees the establishments it may write; anonymous → 401.
Writes: the establishments the caller may write (`access.rights`), audited."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ror.access.tokens import ANONYMOUS, Caller
from ror.errors import InvalidRequest
from ror.fhir.capacity import read_json
from ror.fhir.common import base_url, services
from ror.fhir.responses import FhirResponse
from ror.search.normalise import utcnow
from ror.store.meta import REGION_SYSTEM
from ror.store.store import parse_etag
from ror.subscriptions.model import parse_instant
from ror.tension.model import DEPARTEMENT_SYSTEM, LEVEL_SYSTEM, Declaration, parse_flag
from ror.tension.service import readable_finess

router = APIRouter()
SEARCH_PARAMS = ("subject", "_tag", "status", "code", "_id", "_count")


def _caller(request: Request) -> Caller:
    return getattr(request.state, "caller", ANONYMOUS)


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None


def _flag_response(request: Request, d: Declaration, status: int = 200) -> FhirResponse:
    headers = {"ETag": f'W/"{d.version_id}"', "Location": f"{base_url(request)}/Flag/{d.id}/_history/{d.version_id}"}
    return FhirResponse(d.flag(), status_code=status, headers=headers)


@router.post("/fhir/Flag", tags=["tension"], summary="Declare a tension level (TES)")
async def declare(request: Request) -> Response:
    body = await read_json(request)
    data = parse_flag(body)
    if not data.active:
        raise InvalidRequest("a new declaration is active; end one with PUT Flag/{id}", expression="Flag.status")
    start = parse_instant(data.start, "Flag.period.start") if data.start else None
    tension = services(request).tension
    d = await run_in_threadpool(
        lambda: tension.declare(
            _caller(request),
            level=data.level,
            organization_id=data.organization_id,
            finess=data.finess,
            reasons=data.reasons,
            actions=data.actions,
            comment=data.comment,
            start=start,
            remote_addr=_remote(request),
        )
    )
    return _flag_response(request, d, 201)


@router.put("/fhir/Flag/{flag_id}", tags=["tension"], summary="Amend or end a tension declaration")
async def amend(request: Request, flag_id: str) -> Response:
    body = await read_json(request)
    if isinstance(body, dict) and body.get("id") not in (None, flag_id):  # parse_flag refuses a non-object
        raise InvalidRequest("the id in the body differs from the URL", expression="Flag.id")
    data = parse_flag(body)
    tension = services(request).tension
    caller = _caller(request)
    finess_in = readable_finess(caller)
    current = await run_in_threadpool(tension.get, flag_id, finess_in)
    wanted = parse_etag(request.headers.get("if-match"))
    if wanted is not None and wanted != current.version_id:
        raise InvalidRequest(
            f"Flag/{flag_id} is at version {current.version_id}", status=412, code="conflict", expression="If-Match"
        )
    if data.level != current.level or (data.organization_id or current.organization_id) != current.organization_id:
        raise InvalidRequest(
            "a change of level or establishment is a new declaration: POST /fhir/Flag", expression="Flag.code"
        )
    end = None
    if not data.active or data.end:
        end = parse_instant(data.end, "Flag.period.end") if data.end else None
    d = await run_in_threadpool(
        lambda: tension.amend(
            caller,
            flag_id,
            reasons=data.reasons,
            actions=data.actions,
            comment=data.comment,
            end=end if end is not None else (None if data.active else utcnow()),
            remote_addr=_remote(request),
        )
    )
    return _flag_response(request, d)


@router.get("/fhir/Flag/{flag_id}", tags=["tension"], summary="Read a tension declaration")
def read(request: Request, flag_id: str) -> FhirResponse:
    finess_in = readable_finess(_caller(request))
    return _flag_response(request, services(request).tension.get(flag_id, finess_in))


def _token(value: str, system: str) -> str:
    sys, bar, code = value.rpartition("|")
    if bar and sys and sys != system:
        return "\x00"  # a code of another system matches nothing
    return code


@router.get("/fhir/Flag", tags=["tension"], summary="Search tension declarations")
def search(request: Request) -> FhirResponse:
    finess_in = readable_finess(_caller(request))
    items = list(request.query_params.multi_items())
    crit: dict[str, Any] = {"finess_in": finess_in, "limit": 200}
    ids: set[str] | None = None
    for name, value in items:
        if name not in SEARCH_PARAMS:
            raise InvalidRequest(
                f"unknown search parameter {name!r} for Flag ({', '.join(SEARCH_PARAMS)})", expression=name
            )
        if name == "subject":
            crit["organization_id"] = value.removeprefix("Organization/")
        elif name == "_tag":
            sys, bar, code = value.rpartition("|")
            if bar and sys == DEPARTEMENT_SYSTEM:
                crit["departement"] = code
            else:
                crit["region"] = _token(value, REGION_SYSTEM)
        elif name == "status":
            if value not in ("active", "inactive"):
                raise InvalidRequest("status is active or inactive", expression="status")
            crit["active"] = value == "active"
        elif name == "code":
            levels = [_token(v, LEVEL_SYSTEM) for v in value.split(",")]
            crit["levels"] = [int(v) for v in levels if v.isdigit()] or [-1]
        elif name == "_id":
            ids = set(value.split(","))
        elif name == "_count":
            if not value.isdigit():
                raise InvalidRequest("_count is a number", expression="_count")
            crit["limit"] = min(int(value), 1000)
    found = services(request).tension.search(**crit)
    if ids is not None:
        found = [d for d in found if d.id in ids]
    base = base_url(request)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "link": [
            {"relation": "self", "url": str(request.url).replace(str(request.base_url).rstrip("/") + "/fhir", base)}
        ],
    }
    if found:
        bundle["entry"] = [
            {"fullUrl": f"{base}/Flag/{d.id}", "resource": d.flag(), "search": {"mode": "match"}} for d in found
        ]
    return FhirResponse(bundle)
