"""The ASGI application served by `ror serve`: FHIR API under /fhir, health endpoints, web pages (ror.web)."""

from __future__ import annotations

import gc
import inspect
import os
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from ror import __version__
from ror.access.policy import Profile
from ror.access.tokens import OidcConfig, TokenService
from ror.capacity import stream as capacity_stream
from ror.capacity.stream import Broker
from ror.db import migrate
from ror.db.database import get_engine
from ror.fhir.app import fhir_router, install_error_handlers
from ror.fhir.audit import router as audit_router
from ror.fhir.auth import install_auth
from ror.fhir.auth import router as oauth_router
from ror.fhir.batch import router as batch_router
from ror.fhir.capacity import CapacityFastPath
from ror.fhir.capacity import router as capacity_router
from ror.fhir.capacity_series import router as capacity_series_router
from ror.fhir.crisis import router as crisis_router
from ror.fhir.export import install_export
from ror.fhir.limits import install as install_limits
from ror.fhir.ops import install as install_ops
from ror.fhir.reports import router as reports_router
from ror.fhir.search import SearchFastPath
from ror.fhir.stream import router as stream_router
from ror.fhir.subscriptions import install_subscriptions
from ror.fhir.subscriptions import router as subscriptions_router
from ror.fhir.tension import router as tension_router
from ror.fhir.urgences import router as urgences_router
from ror.malloc import keep_freed_memory
from ror.routing import include
from ror.services import Services
from ror.web import install_web


def _freeze_startup_objects() -> None:
    """Move what start-up built (modules, registry, templates, prebuilt statements) out of the garbage collector's
    reach: full collections then scan only what requests create (they took 100–200 ms every few dashboard
    requests on the national demo, visible in every page's p95)."""
    gc.collect()
    gc.freeze()


# FastAPI ≥ 0.165 asks OpenTelemetry on every request whether tracing is configured (~2 % of a capacity PATCH's
# event-loop time); the service has its own metrics (/metrics) and JSON logs (ror.fhir.ops)
_NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters
    else {}
)


def create_app(
    engine: Engine | None = None, anonymous_profile: Profile | None = None, tokens: TokenService | None = None
) -> FastAPI:
    keep_freed_memory()  # large answers reuse freed memory instead of faulting in new pages (ror/malloc.py)
    engine = engine or get_engine()
    app = FastAPI(
        title="ROR", version=__version__, docs_url="/api/docs", openapi_url="/api/openapi.json", **_NO_TELEMETRY
    )
    app.state.services = Services(engine)
    app.state.terminology = app.state.services.terminology
    app.state.anonymous_profile = (
        anonymous_profile
        if anonymous_profile is not None
        else Profile(int(os.environ.get("ROR_ANONYMOUS_PROFILE", "0")))
    )
    install_error_handlers(app)
    app.add_middleware(CapacityFastPath)  # the feeders' capacity PATCH, inside the limits, auth and ops layers
    app.add_middleware(SearchFastPath)  # GET /fhir/{type}: the consumers' search, idem
    install_limits(app)  # body size (ROR_MAX_BODY_BYTES) and JSON depth, before any route
    install_auth(app, tokens or TokenService(oidc=OidcConfig.from_env()))
    install_ops(app)  # /metrics, X-Request-Id, JSON logs; added last of the middleware: outermost, times all
    include(app, oauth_router)
    include(app, capacity_router)  # before the generic /fhir/{type}/{id} routes
    include(app, batch_router)
    app.state.capacity_broker = Broker()
    capacity_stream.install(engine, app.state.capacity_broker)
    include(app, stream_router)
    include(app, capacity_series_router)  # GET /api/capacity/timeseries
    include(app, crisis_router)
    include(app, reports_router)  # before the generic /fhir/{type}/{id} routes
    include(app, subscriptions_router)  # Subscription (docs/subscriptions.md)
    include(app, tension_router)  # Flag: tension en établissement (docs/tension.md)
    include(app, urgences_router)  # MeasureReport: emergency activity (docs/urgences.md), after $dgos-daily
    include(app, audit_router)  # GET /fhir/AuditEvent for administrators (docs/access.md)
    include(app, fhir_router(), prefix="/fhir")
    install_export(app)  # bulk $export runner: started with the server, resumes unfinished jobs
    install_subscriptions(app)  # rest-hook delivery worker (outbox), started with the server
    install_web(app)  # web pages for people: /, /connexion, /recherche, /unites, /etablissements, /tableau-de-bord

    app.router.on_startup.append(_freeze_startup_objects)

    @app.get("/health", include_in_schema=False)
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/ready", include_in_schema=False)
    def ready() -> JSONResponse:
        try:
            with engine.connect() as c:
                c.execute(text("SELECT 1"))
            current = migrate.is_current(engine)
        except Exception as exc:  # the database is down: not ready
            return JSONResponse({"status": "unavailable", "detail": str(exc)[:200]}, status_code=503)
        if not current:
            return JSONResponse({"status": "migrations pending"}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app
