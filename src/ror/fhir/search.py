"""The search interaction: GET [base]/Type?… and POST [base]/Type/_search → Bundle searchset."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ror.access.context import hide_sensitive
from ror.access.policy import RULES, Profile
from ror.fhir.access import caller_profile, filtered_json
from ror.fhir.asgi import answer
from ror.fhir.common import RESOURCE_TYPES, base_url, check_type, services
from ror.fhir.responses import FhirResponse
from ror.search.engine import Row, SearchEngine, SearchResult
from ror.search.geo import haversine_km
from ror.search.query import Near, QueryParser, SearchQuery
from ror.search.systems import make_system_resolver

router = APIRouter()
LOCATION_DISTANCE = "http://hl7.org/fhir/StructureDefinition/location-distance"
ALWAYS_KEPT = ("resourceType", "id", "meta")


def parser_for(request: Request) -> QueryParser:
    svc = services(request)
    cached = getattr(request.app.state, "query_parser", None)
    if cached is None:
        cached = QueryParser(
            svc.registry,
            make_system_resolver(svc.terminology.resolve_system),
            svc.geography.centroid,
        )
        request.app.state.query_parser = cached
    return cached


def engine_for(request: Request) -> SearchEngine:
    cached = getattr(request.app.state, "search_engine", None)
    if cached is None:
        cached = SearchEngine(services(request).engine)
        request.app.state.search_engine = cached
    return cached


def _entries(rows: list[Row], base: str, mode: str, q: SearchQuery) -> list[dict[str, Any]]:
    """The Bundle entries of `rows` (contents already filtered for the caller). Served as stored (orjson.Fragment)
    unless `_elements` or a distance needs the parsed resource: one small dict per entry, its `search` shared."""
    if (mode == "match" and q.elements) or q.near is not None:
        return [_entry(r, base, mode, q) for r in rows]
    search = {"mode": mode}
    return [
        {"fullUrl": f"{base}/{r.res_type}/{r.res_id}", "resource": orjson.Fragment(r.content), "search": search}
        for r in rows
    ]


def _entry(row: Row, base: str, mode: str, q: SearchQuery) -> dict[str, Any]:
    """`row.content` is already filtered for the caller."""
    entry: dict[str, Any] = {"fullUrl": f"{base}/{row.res_type}/{row.res_id}"}
    needs_parse = (mode == "match" and q.elements) or (q.near is not None and row.res_type == "Location")
    if needs_parse:
        res = orjson.loads(row.content)
        if mode == "match" and q.elements:
            res = _subset(res, q.elements)
        entry["resource"] = res
    else:
        entry["resource"] = orjson.Fragment(row.content)
    search: dict[str, Any] = {"mode": mode}
    if q.near is not None and row.res_type == "Location":
        dist = _distance(entry["resource"], q.near)
        if dist is not None:
            search["extension"] = [
                {
                    "url": LOCATION_DISTANCE,
                    "valueDistance": {
                        "value": round(dist, 3),
                        "unit": "km",
                        "system": "http://unitsofmeasure.org",
                        "code": "km",
                    },
                }
            ]
    entry["search"] = search
    return entry


def _distance(res: dict[str, Any], near: Near) -> float | None:
    pos = res.get("position") or {}
    return haversine_km(near.lat, near.lon, pos.get("latitude"), pos.get("longitude"))


def _subset(res: dict[str, Any], elements: list[str]) -> dict[str, Any]:
    out = {k: v for k, v in res.items() if k in ALWAYS_KEPT or k in elements}
    meta = dict(out.get("meta") or {})
    meta["tag"] = [
        *(meta.get("tag") or []),
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"},
    ]
    out["meta"] = meta
    return out


def _link(base: str, res_type: str, items: list[tuple[str, str]], cursor: str | None) -> str:
    kept = [(k, v) for k, v in items if k != "_cursor"]
    if cursor:
        kept.append(("_cursor", cursor))
    return f"{base}/{res_type}" + (f"?{urlencode(kept)}" if kept else "")


def bundle(request: Request, res_type: str, items: list[tuple[str, str]], q: SearchQuery, r: SearchResult) -> dict:
    base = base_url(request)
    links = [{"relation": "self", "url": _link(base, res_type, items, q.cursor)}]
    if r.next_cursor:
        links.append({"relation": "next", "url": _link(base, res_type, items, r.next_cursor)})
    if r.prev_cursor:
        links.append({"relation": "previous", "url": _link(base, res_type, items, r.prev_cursor)})
    out: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if r.total is not None:
        out["total"] = r.total
    out["link"] = links
    entries = _entries(r.matches, base, "match", q) + _entries(r.included, base, "include", q)
    if entries:
        out["entry"] = entries
    return out


def _filter_rows(request: Request, profile: Profile, result: SearchResult) -> None:
    """Matches and includes filtered for the caller's profile, hidden ones left out: one pass (one connection, one
    set of context queries) for both."""
    rows = result.matches + result.included
    contents = filtered_json(request, profile, [(r.pk, r.res_type, r.res_id, r.content) for r in rows])
    seen = [None if c is None else Row(r.pk, r.res_type, r.res_id, c) for r, c in zip(rows, contents, strict=True)]
    n = len(result.matches)
    result.matches = [r for r in seen[:n] if r is not None]
    result.included = [r for r in seen[n:] if r is not None]


def run_search(request: Request, res_type: str, items: list[tuple[str, str]]) -> FhirResponse:
    check_type(res_type)
    profile = caller_profile(request)
    q = parser_for(request).parse(res_type, items)
    restrict = None if RULES[profile].sensitive_units else hide_sensitive
    result = engine_for(request).search(q, restrict)
    if profile != Profile.ALL:
        _filter_rows(request, profile, result)
    return FhirResponse(bundle(request, res_type, items, q, result))


@router.get("/{res_type}")
def search_get(res_type: str, request: Request) -> FhirResponse:
    return run_search(request, res_type, list(request.query_params.multi_items()))


@router.post("/{res_type}/_search")
async def search_post(res_type: str, request: Request) -> FhirResponse:
    form = await request.form()
    items = list(request.query_params.multi_items()) + [(k, str(v)) for k, v in form.multi_items()]
    return run_search(request, res_type, items)


_PREFIX = "/fhir/"
_SEARCH_PATHS = {_PREFIX + t: t for t in RESOURCE_TYPES}
_ROUTE = "/fhir/{res_type}"  # the route label of the metrics and logs (ops)


class SearchFastPath:
    """`GET /fhir/{type}` of the served types — the consumers' search, the API's most frequent request — served
    by `search_get` without FastAPI's exception, routing and dependency layers (1.9 M instructions of fixed cost
    per request through the whole app against 0.8 M for a bare ASGI app; bench/README.md), behind the ops,
    authentication and body-limit middlewares like every route, errors answered as the app's handlers answer
    them. No route placed before `/fhir/{res_type}` serves these six paths; anything else goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        res_type = _SEARCH_PATHS.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        if res_type is None:
            await self.app(scope, receive, send)
            return

        # in the thread pool, as FastAPI runs a sync route: the event loop serves other requests meanwhile
        def handler(request: Request) -> Awaitable[Response]:
            return run_in_threadpool(search_get, res_type, request)

        await answer(scope, receive, send, _ROUTE, {"res_type": res_type}, handler)
