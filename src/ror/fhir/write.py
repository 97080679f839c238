"""Write interactions of the FHIR API (docs/ror-fhir-api.md §3.4): create (and conditional create with
If-None-Exist), update (If-Match, create-on-update, conditional update on identifier), patch (FHIRPath Patch
`Parameters` or JSON Patch `application/json-patch+json`) and delete (closure for offers and places).

Responses: the resource (default, `Prefer: return=representation`), nothing (`return=minimal`) or an
OperationOutcome with the validation warnings (`return=OperationOutcome`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ror.access.tokens import ANONYMOUS, Caller
from ror.errors import InvalidRequest, Issue
from ror.fhir.capacity import read_json
from ror.fhir.common import JSON_PATCH, check_type, http_date, media_type, services
from ror.fhir.read import _visible
from ror.fhir.responses import FhirResponse, operation_outcome
from ror.store.store import parse_etag
from ror.write import fhirpath_patch, json_patch
from ror.write.service import WriteResult

router = APIRouter()


def _caller(request: Request) -> Caller:
    return getattr(request.state, "caller", ANONYMOUS)


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None


async def write_response(request: Request, result: WriteResult, status: int | None = None) -> Response:
    stored = result.stored
    headers = {
        "ETag": stored.etag,
        "Last-Modified": http_date(stored.last_updated),
        "Location": f"{stored.res_type}/{stored.res_id}/_history/{stored.version_id}",
    }
    code = status or (201 if result.created else 200)
    prefer = request.headers.get("prefer", "").lower().replace(" ", "")
    if "return=minimal" in prefer:
        return Response(status_code=code, headers=headers)
    if "return=operationoutcome" in prefer:
        done = "created" if result.created else "found (If-None-Exist)" if result.unchanged else "written"
        issues = [Issue("information", "informational", f"{stored.res_type}/{stored.res_id} {done}")]
        return FhirResponse(operation_outcome(issues + result.warnings), status_code=code, headers=headers)
    # the representation as the caller may see it reads the database: in the thread pool, not on the event loop
    visible = await run_in_threadpool(_visible, request, stored)
    return FhirResponse(visible.encode(), status_code=code, headers=headers)


@router.post("/{res_type}")
async def create(res_type: str, request: Request) -> Response:
    check_type(res_type)
    body = await read_json(request)
    if isinstance(body, dict) and body.get("resourceType") != res_type:
        raise InvalidRequest(f"resourceType must be {res_type}", expression="resourceType")
    result = await run_in_threadpool(
        services(request).writes.create,
        _caller(request),
        body,
        if_none_exist=request.headers.get("if-none-exist"),
        remote=_remote(request),
    )
    return await write_response(request, result, 200 if result.unchanged else None)


@router.put("/{res_type}/{res_id}")
async def update(res_type: str, res_id: str, request: Request) -> Response:
    check_type(res_type)
    body = await read_json(request)
    result = await run_in_threadpool(
        services(request).writes.update,
        _caller(request),
        res_type,
        res_id,
        body,
        if_match=parse_etag(request.headers.get("if-match")),
        remote=_remote(request),
    )
    return await write_response(request, result)


@router.put("/{res_type}")
async def conditional_update(res_type: str, request: Request) -> Response:
    check_type(res_type)
    body = await read_json(request)
    result = await run_in_threadpool(
        services(request).writes.conditional_update,
        _caller(request),
        res_type,
        request.url.query,
        body,
        remote=_remote(request),
    )
    return await write_response(request, result)


async def patch_resource(request: Request, res_type: str, res_id: str) -> Response:
    """Generic PATCH (a Location patch that is not a capacity one reaches it past `CapacityFastPath`)."""
    check_type(res_type)
    body = await read_json(request)
    is_json_patch = media_type(request.headers.get("content-type", "")) == JSON_PATCH

    def transform(res: dict[str, Any]) -> dict[str, Any]:
        return json_patch.apply(res, body) if is_json_patch else fhirpath_patch.apply(res, body)

    result = await run_in_threadpool(
        services(request).writes.patch,
        _caller(request),
        res_type,
        res_id,
        transform,
        if_match=parse_etag(request.headers.get("if-match")),
        remote=_remote(request),
    )
    return await write_response(request, result)


@router.patch("/{res_type}/{res_id}")
async def patch(res_type: str, res_id: str, request: Request) -> Response:
    return await patch_resource(request, res_type, res_id)


@router.delete("/{res_type}/{res_id}")
async def delete(res_type: str, res_id: str, request: Request) -> Response:
    check_type(res_type)
    result = await run_in_threadpool(
        services(request).writes.delete,
        _caller(request),
        res_type,
        res_id,
        if_match=parse_etag(request.headers.get("if-match")),
        remote=_remote(request),
    )
    if result.deleted:
        return Response(status_code=204, headers={"ETag": result.stored.etag})
    return await write_response(request, result, 200)
