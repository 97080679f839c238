"""Route tables without nesting: every HTTP route of the application sits in one flat list.

FastAPI ≥ 0.165 keeps an included router as one nested entry: a request walks every router placed before the
one that serves it, asking each of their routes in turn, and does the whole walk twice (once to find the
router, once inside it). With our 25 feature routers, a search (`GET /fhir/{res_type}`, placed after the
specific /fhir routes) spent ~0.5 ms in routing alone — a tenth of a 200-entry search on SQLite. `include`
copies the routes instead, as `include_router` did before: the order (which decides between `/fhir/metadata`
and `/fhir/{res_type}`) is the order of the calls, and the routes are the same (path, methods, endpoint, name,
OpenAPI attributes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

# the APIRoute attributes that `add_api_route` takes back under the same name
_COPIED = (
    "response_model",
    "status_code",
    "tags",
    "dependencies",
    "summary",
    "description",
    "response_description",
    "responses",
    "deprecated",
    "methods",
    "operation_id",
    "include_in_schema",
    "response_class",
    "name",
    "callbacks",
    "openapi_extra",
)


def include(target: FastAPI | APIRouter, source: APIRouter, prefix: str = "") -> None:
    """Add the routes of `source` to `target`, their paths prefixed, flat. A router whose routes are not all
    plain API routes (a websocket, a mount, a router included into it) is refused: it would need FastAPI's
    own nesting, and a silently partial copy would lose routes."""
    router = target.router if isinstance(target, FastAPI) else target
    for route in source.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"{route!r} in {source!r}: only API routes can be included flat")
        kwargs: dict[str, Any] = {name: getattr(route, name) for name in _COPIED}
        router.add_api_route(prefix + route.path, route.endpoint, **kwargs)
