"""read, vread and _history interactions."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request

from ror.errors import InvalidRequest
from ror.fhir.common import base_url, check_type, http_date, services
from ror.fhir.responses import FhirResponse
from ror.search.normalise import date_range, fhir_instant
from ror.store import Stored

router = APIRouter()


def resource_response(stored: Stored, status: int = 200) -> FhirResponse:
    return FhirResponse(
        stored.content.encode(),
        status_code=status,
        headers={"ETag": stored.etag, "Last-Modified": http_date(stored.last_updated)},
    )


@router.get("/{res_type}/{res_id}")
def read(res_type: str, res_id: str, request: Request) -> FhirResponse:
    check_type(res_type)
    return resource_response(services(request).store.read(res_type, res_id))


@router.get("/{res_type}/{res_id}/_history")
def history(
    res_type: str,
    res_id: str,
    request: Request,
    count: int | None = Query(None, alias="_count", ge=1, le=1000),
    since: str | None = Query(None, alias="_since"),
) -> FhirResponse:
    check_type(res_type)
    since_dt = None
    if since:
        try:
            since_dt = date_range(since)[0]
        except ValueError as exc:
            raise InvalidRequest(f"_since: {exc}", expression="_since") from exc
    versions = services(request).store.history(res_type, res_id, count=count, since=since_dt)
    base = base_url(request)
    entries: list[dict[str, Any]] = []
    for v in versions:
        url = f"{res_type}/{res_id}/_history/{v.version_id}"
        entry: dict[str, Any] = {"fullUrl": f"{base}/{res_type}/{res_id}"}
        if not v.deleted:
            entry["resource"] = orjson.Fragment(v.content)
        method = "DELETE" if v.deleted else ("POST" if v.version_id == 1 else "PUT")
        entry["request"] = {"method": method, "url": url if method != "POST" else res_type}
        entry["response"] = {
            "status": "204" if v.deleted else ("201" if v.version_id == 1 else "200"),
            "etag": v.etag,
            "lastModified": fhir_instant(v.last_updated),
        }
        entries.append(entry)
    bundle = {
        "resourceType": "Bundle",
        "type": "history",
        "total": len(entries),
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": entries,
    }
    return FhirResponse(bundle)


@router.get("/{res_type}/{res_id}/_history/{version_id}")
def vread(res_type: str, res_id: str, version_id: str, request: Request) -> FhirResponse:
    check_type(res_type)
    if not version_id.isdigit():
        raise InvalidRequest(f"version id must be a number, got {version_id!r}", expression="versionId")
    return resource_response(services(request).store.vread(res_type, res_id, int(version_id)))
