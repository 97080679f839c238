"""FHIR terminology operations over the NOS: `CodeSystem/$lookup`, `ValueSet/$validate-code`, `ValueSet/$expand`,
and the `CodeSystem` / `ValueSet` catalogues (searchset Bundles, resources without their concepts).

Errors: a missing or malformed parameter is 400 (expression = the parameter); an unknown code system, code or
value set in `$lookup` / `$expand` is 404; `$validate-code` answers 200 with `result = false` and a message for a
code that is not valid (FHIR semantics), 404 only when the value set itself is unknown.
`$expand` leaves deprecated codes out unless `activeOnly=false` (form pickers); `count`/`offset` page it."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Request

from ror.errors import InvalidRequest, NotFound, UnknownCode
from ror.fhir.responses import FhirResponse
from ror.search.normalise import fhir_instant, norm_text, utcnow
from ror.terminology.service import Concept, ResourceSummary, Terminology

router = APIRouter()

_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _terminology(request: Request) -> Terminology:
    return request.app.state.terminology


def _required(value: str | None, name: str) -> str:
    if value is None or not value.strip():
        raise InvalidRequest(f"parameter {name!r} is required", expression=name)
    return value.strip()


def _int_param(value: str | None, name: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise InvalidRequest(f"parameter {name!r} must be a non-negative integer, got {value!r}", expression=name)
    return int(value)


def _bool_param(value: str | None, name: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    if value not in ("true", "false"):
        raise InvalidRequest(f"parameter {name!r} must be true or false, got {value!r}", expression=name)
    return value == "true"


def _not_found(exc: UnknownCode, expression: str) -> NotFound:
    return NotFound(exc.diagnostics, expression=expression)


def _param(name: str, kind: str, value: Any) -> dict[str, Any]:
    return {"name": name, f"value{kind}": value}


def _property(code: str, kind: str, value: Any) -> dict[str, Any]:
    return {"name": "property", "part": [_param("code", "Code", code), _param("value", kind, value)]}


def _fhir_id(name: str) -> str | None:
    candidate = name.replace("_", "-")
    return candidate if _FHIR_ID.match(candidate) else None


# --- $lookup ------------------------------------------------------------------------------------------------------
@router.get("/CodeSystem/$lookup")
def lookup(request: Request, system: str | None = None, code: str | None = None) -> FhirResponse:
    term = _terminology(request)
    system_ref, code_value = _required(system, "system"), _required(code, "code")
    try:
        info = term.system_info(system_ref)
    except UnknownCode as exc:
        raise _not_found(exc, "system") from None
    try:
        found = term.lookup(info.url, code_value)
    except UnknownCode as exc:
        raise _not_found(exc, "code") from None
    return FhirResponse({"resourceType": "Parameters", "parameter": _lookup_parameters(info, found)})


def _lookup_parameters(info: ResourceSummary, found: Concept) -> list[dict[str, Any]]:
    params = [_param("name", "String", info.name)]
    if info.version:
        params.append(_param("version", "String", info.version))
    params.append(_param("display", "String", found.display))
    params.append(_property("deprecated", "Boolean", found.deprecated))
    if found.date_fin:
        params.append(_property("dateFin", "DateTime", found.date_fin))
    if found.definition:
        params.append(_property("definition", "String", found.definition))
    return params


# --- $validate-code -----------------------------------------------------------------------------------------------
@router.get("/ValueSet/$validate-code")
def validate_code(
    request: Request, url: str | None = None, system: str | None = None, code: str | None = None
) -> FhirResponse:
    term = _terminology(request)
    vs_ref, code_value = _required(url, "url"), _required(code, "code")
    try:
        vs_url = term.resolve_value_set(vs_ref)
    except UnknownCode as exc:
        raise _not_found(exc, "url") from None
    try:
        member = term.validate(vs_url, system.strip() if system else None, code_value)
    except UnknownCode as exc:
        params = [_param("result", "Boolean", False), _param("message", "String", exc.diagnostics)]
    else:
        params = [_param("result", "Boolean", True), _param("display", "String", member.display)]
    return FhirResponse({"resourceType": "Parameters", "parameter": params})


# --- $expand ------------------------------------------------------------------------------------------------------
@router.get("/ValueSet/$expand")
def expand(
    request: Request,
    url: str | None = None,
    filter: str | None = None,  # the FHIR parameter names
    count: str | None = None,
    offset: str | None = None,
    activeOnly: str | None = None,
) -> FhirResponse:
    term = _terminology(request)
    vs_ref = _required(url, "url")
    page_size = _int_param(count, "count", None)
    start = _int_param(offset, "offset", 0) or 0
    active_only = _bool_param(activeOnly, "activeOnly", True)
    try:
        info = term.value_set_info(vs_ref)
    except UnknownCode as exc:
        raise _not_found(exc, "url") from None
    codes = term.expand(info.url, text=filter, include_deprecated=not active_only)
    page = codes[start : None if page_size is None else start + page_size]
    expansion: dict[str, Any] = {
        "identifier": f"urn:uuid:{uuid.uuid4()}",
        "timestamp": fhir_instant(utcnow()),
        "total": len(codes),
        "offset": start,
        "parameter": _expansion_parameters(filter, page_size, active_only),
        "contains": [_contains(c) for c in page],
    }
    return FhirResponse(_value_set_resource(info) | {"expansion": expansion})


def _expansion_parameters(text: str | None, count: int | None, active_only: bool) -> list[dict[str, Any]]:
    params = [_param("activeOnly", "Boolean", active_only)]
    if text:
        params.append(_param("filter", "String", text))
    if count is not None:
        params.append(_param("count", "Integer", count))
    return params


def _contains(c: Concept) -> dict[str, Any]:
    item: dict[str, Any] = {"system": c.system, "code": c.code, "display": c.display}
    if c.deprecated:
        item["inactive"] = True
    return item


# --- catalogues ---------------------------------------------------------------------------------------------------
def _resource(kind: str, info: ResourceSummary) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": kind}
    if (rid := _fhir_id(info.name)) is not None:
        res["id"] = rid
    res["url"] = info.url
    if info.oid:
        res["identifier"] = [{"system": "urn:ietf:rfc:3986", "value": f"urn:oid:{info.oid}"}]
    if info.version:
        res["version"] = info.version
    res["name"] = info.name
    if info.title:
        res["title"] = info.title
    res["status"] = "active"
    return res


def _value_set_resource(info: ResourceSummary) -> dict[str, Any]:
    return _resource("ValueSet", info)


def _code_system_resource(info: ResourceSummary) -> dict[str, Any]:
    return _resource("CodeSystem", info) | {"content": "not-present", "count": info.count}


def _searchset(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(entries),
        "entry": [{"fullUrl": e["url"], "resource": e, "search": {"mode": "match"}} for e in entries],
    }


def _matches(info: ResourceSummary, url: str | None, name: str | None) -> bool:
    if url and info.url != url.strip():
        return False
    return not name or norm_text(name) in norm_text(f"{info.name} {info.title or ''}")


@router.get("/CodeSystem")
def list_code_systems(request: Request, url: str | None = None, name: str | None = None) -> FhirResponse:
    infos = [i for i in _terminology(request).code_systems() if _matches(i, url, name)]
    return FhirResponse(_searchset([_code_system_resource(i) for i in infos]))


@router.get("/ValueSet")
def list_value_sets(request: Request, url: str | None = None, name: str | None = None) -> FhirResponse:
    infos = [i for i in _terminology(request).value_sets() if _matches(i, url, name)]
    return FhirResponse(_searchset([_value_set_resource(i) for i in infos]))
