"""Operations (issue 9, item 6): Prometheus metrics at `/metrics` (text format 0.0.4, no extra dependency),
request ids (`X-Request-Id` taken from the request when sane, else generated, and returned), structured JSON
logs carrying the request id (`ROR_LOG_FORMAT=json`, the default; `text`; `off` leaves logging alone).

Metrics are per process: with several uvicorn processes, scrape each one (docs/deployment.md)."""

from __future__ import annotations

import contextvars
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from ror.fhir.asgi import header

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("ror_request_id", default=None)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
STALE_CACHE_S = 30.0
access_log = logging.getLogger("ror.access")


class Metrics:
    """Counters and histograms of one process, rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hist: dict[tuple[str, str], list[float]] = {}  # (method, route) → bucket counts…, sum, count
        self.requests: Counter[tuple[str, str, str]] = Counter()  # (method, route, status)
        self.writes: Counter[tuple[str, str, str]] = Counter()  # (method, resource type, status)
        self.stale: tuple[float, dict[str, int]] = (0.0, {})

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self.lock:
            h = self.hist.setdefault((method, route), [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    h[i] += 1
            h[-2] += seconds
            h[-1] += 1
            self.requests[(method, route, str(status))] += 1
            if method in WRITE_METHODS and route.startswith("/fhir") and "_search" not in route:
                self.writes[(method, _resource_type(route), str(status))] += 1

    def render(self, stale: dict[str, int]) -> str:
        out = [
            "# HELP ror_http_request_duration_seconds HTTP request latency by route template.",
            "# TYPE ror_http_request_duration_seconds histogram",
        ]
        with self.lock:
            for (method, route), h in sorted(self.hist.items()):
                labels = f'method="{method}",route="{_esc(route)}"'
                for i, bound in enumerate(BUCKETS):
                    out.append(f'ror_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {int(h[i])}')
                out.append(f'ror_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {int(h[-1])}')
                out.append(f"ror_http_request_duration_seconds_sum{{{labels}}} {h[-2]:.6f}")
                out.append(f"ror_http_request_duration_seconds_count{{{labels}}} {int(h[-1])}")
            out += [
                "# HELP ror_http_requests_total HTTP requests by route and status.",
                "# TYPE ror_http_requests_total counter",
            ]
            for (method, route, status), n in sorted(self.requests.items()):
                out.append(f'ror_http_requests_total{{method="{method}",route="{_esc(route)}",status="{status}"}} {n}')
            out += [
                "# HELP ror_fhir_writes_total FHIR writes by method, resource type and status.",
                "# TYPE ror_fhir_writes_total counter",
            ]
            for (method, rtype, status), n in sorted(self.writes.items()):
                out.append(f'ror_fhir_writes_total{{method="{method}",type="{_esc(rtype)}",status="{status}"}} {n}')
        out += [
            "# HELP ror_capacity_stale_units Units with installed capacity whose availability is stale.",
            "# TYPE ror_capacity_stale_units gauge",
        ]
        for region, n in sorted(stale.items()):
            out.append(f'ror_capacity_stale_units{{region="{_esc(region)}"}} {n}')
        return "\n".join(out) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _resource_type(route: str) -> str:
    parts = [p for p in route.split("/") if p]
    return parts[1] if len(parts) > 1 and parts[0] == "fhir" else "batch" if parts == ["fhir"] else "?"


def route_of(scope: Scope) -> str:
    """The route template that served the request (`/fhir/{res_type}/{res_id}`), never the raw path (bounded
    label cardinality); `unmatched` for a 404 outside the routes."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        params = scope.get("path_params") or {}
        res_type = params.get("res_type")
        if isinstance(res_type, str) and res_type.isalpha() and len(res_type) < 40:
            path = path.replace("{res_type}", res_type)  # the FHIR type is a bounded set: keep it
        if not path.startswith("/fhir") and str(scope.get("path", "")).startswith("/fhir/"):
            path = "/fhir" + path  # a route of the FHIR router, included under the /fhir prefix
        return path
    return "unmatched"


class OpsMiddleware:
    """Request id in and out, latency and counts per route template, one JSON access-log line per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = header(scope, b"x-request-id")
        rid = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        token = REQUEST_ID.set(rid)
        status = 500
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - t0
            route = route_of(scope)
            if route != "/metrics":
                self.metrics.observe(scope["method"], route, status, seconds)
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope.get("path"),
                    "route": route,
                    "status": status,
                    "ms": round(seconds * 1000, 1),
                },
            )
            REQUEST_ID.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, the `extra` fields, the exception."""

    SKIP = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = REQUEST_ID.get()
        if rid:
            out["request_id"] = rid
        for k, v in record.__dict__.items():
            if k not in self.SKIP and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get() or "-"
        return True


def configure_logging(fmt: str | None = None) -> None:
    """Logs of the `ror` loggers on stderr, JSON by default; idempotent (one handler however many apps)."""
    fmt = (fmt or os.environ.get("ROR_LOG_FORMAT", "json")).lower()
    logger = logging.getLogger("ror")
    if fmt == "off" or any(getattr(h, "_ror_ops", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._ror_ops = True  # type: ignore[attr-defined]
    if fmt == "text":
        handler.addFilter(_RequestIdFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def stale_by_region(app: FastAPI, metrics: Metrics) -> dict[str, int]:
    """Stale units per région, from the capacity projection and the active crises; cached STALE_CACHE_S."""
    from ror.capacity.freshness import unit_freshness
    from ror.search.normalise import utcnow

    at, cached = metrics.stale
    if time.monotonic() - at < STALE_CACHE_S:
        return cached
    now = utcnow()
    counts: Counter[str] = Counter()
    for u in unit_freshness(app.state.services.engine, at=now):
        if u.stale(now):
            counts[u.region or "?"] += 1
    metrics.stale = (time.monotonic(), dict(counts))
    return dict(counts)


def install(app: FastAPI) -> None:
    metrics = Metrics()
    app.state.metrics = metrics
    configure_logging()
    app.add_middleware(OpsMiddleware, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(stale_by_region(app, metrics)), media_type="text/plain; version=0.0.4")
