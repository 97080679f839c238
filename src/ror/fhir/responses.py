"""FHIR JSON responses and OperationOutcome."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from ror.errors import Issue, RorError

log = logging.getLogger("ror.fhir")
RETRY_AFTER_S = "2"  # seconds a client waits after a 503 (database unavailable)

FHIR_JSON = "application/fhir+json"


class FhirResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):
            return content
        if isinstance(content, str):
            return content.encode()
        return orjson.dumps(content)


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    out = []
    for i in issues:
        item: dict[str, Any] = {"severity": i.severity, "code": i.code, "diagnostics": i.diagnostics}
        if i.expression:
            item["expression"] = i.expression
        out.append(item)
    return {"resourceType": "OperationOutcome", "issue": out}


def outcome_response(status: int, issues: list[Issue], headers: dict[str, str] | None = None) -> FhirResponse:
    return FhirResponse(operation_outcome(issues), status_code=status, headers=headers)


def error_response(exc: Exception) -> FhirResponse:
    """The OperationOutcome of an error raised while serving a request (also used by the routes served outside
    FastAPI's router, `fhir.asgi.answer`). A database that is unreachable, restarting, read-only,
    full or locked: 503 + Retry-After, the client retries (the pool replaces dead connections: the service
    recovers by itself)."""
    if isinstance(exc, RorError):
        return outcome_response(exc.status, exc.issues)
    if isinstance(exc, DBAPIError):
        if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
            log.warning("database unavailable: %s", str(exc.orig or exc).splitlines()[0][:300])
            return outcome_response(
                503,
                [Issue("error", "transient", "the database is unavailable; retry later")],
                headers={"Retry-After": RETRY_AFTER_S},
            )
        log.exception("database error", exc_info=exc)
        return outcome_response(500, [Issue("fatal", "exception", "internal error; it has been logged")])
    log.exception("unexpected error", exc_info=exc)
    return outcome_response(500, [Issue("fatal", "exception", "internal error; it has been logged")])
