"""read, vread and _history interactions."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from sqlalchemy import Connection

from ror.access.policy import Profile
from ror.errors import InvalidRequest, NotFound
from ror.fhir.access import caller_profile, filtered_contents
from ror.fhir.common import base_url, check_type, http_date, services
from ror.fhir.responses import FhirResponse
from ror.search.normalise import date_range, fhir_instant
from ror.store import Stored

router = APIRouter()


def _visible(request: Request, stored: Stored, conn: Connection | None = None) -> str:
    """The stored content as the caller may see it; a hidden resource answers like an unknown one (404). `conn`:
    read what the filtering needs there (a write's own transaction)."""
    profile = caller_profile(request)
    if profile == Profile.ALL:
        return stored.content
    pk = stored.pk if stored.pk is not None else services(request).store.pk_of(stored.res_type, stored.res_id)
    content = filtered_contents(request, profile, [(pk, stored.res_type, stored.res_id, stored.content)], conn)[0]
    if content is None:
        raise NotFound(f"{stored.res_type}/{stored.res_id} is not known", expression=stored.res_type)
    return content


def resource_response(request: Request, stored: Stored, status: int = 200) -> FhirResponse:
    return FhirResponse(
        _visible(request, stored).encode(),
        status_code=status,
        headers={"ETag": stored.etag, "Last-Modified": http_date(stored.last_updated)},
    )


@router.get("/{res_type}/{res_id}")
def read(res_type: str, res_id: str, request: Request) -> FhirResponse:
    check_type(res_type)
    return resource_response(request, services(request).store.read(res_type, res_id))


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
            entry["resource"] = orjson.Fragment(_visible(request, v))
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
    return resource_response(request, services(request).store.vread(res_type, res_id, int(version_id)))
