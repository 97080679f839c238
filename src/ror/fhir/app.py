"""The FHIR API application: routers, error handling (every error is an OperationOutcome, never a bare 500)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ror.errors import Issue, RorError
from ror.fhir import audit, export, read, search, terminology, write
from ror.fhir.capability import capability_statement
from ror.fhir.common import RESOURCE_TYPES, base_url, services
from ror.fhir.responses import FhirResponse, error_response, outcome_response
from ror.fhir.subscriptions import regional_capabilities
from ror.routing import include

INTERACTIONS: tuple[str, ...] = (
    "read",
    "vread",
    "history-instance",
    "search-type",
    "create",
    "update",
    "patch",
    "delete",
)
INCLUDES = {
    "HealthcareService": [
        "HealthcareService:organization",
        "HealthcareService:location",
        "Organization:partof",
        "PractitionerRole:practitioner",
        "*",
    ],
    "Location": ["Location:organization", "Location:partof", "*"],
    "Organization": ["Organization:partof", "*"],
    "PractitionerRole": ["PractitionerRole:practitioner", "PractitionerRole:service", "*"],
}
REVINCLUDES = {
    "HealthcareService": ["PractitionerRole:service", "Task:focus"],
    "Location": ["HealthcareService:location", "Task:focus"],
    "Organization": ["HealthcareService:organization", "Location:organization", "Organization:partof", "Task:focus"],
}


def fhir_router() -> APIRouter:
    router = APIRouter()

    @router.get("/metadata")
    def metadata(request: Request) -> FhirResponse:
        return FhirResponse(
            capability_statement(
                services(request).registry,
                base=base_url(request),
                interactions=INTERACTIONS,
                search_includes=INCLUDES,
                search_revincludes=REVINCLUDES,
                operations=[export.OPERATION],
                resource_operations={rt: [export.OPERATION] for rt in RESOURCE_TYPES},
                extra_resources=[*regional_capabilities(), audit.CAPABILITY],  # + AuditEvent (docs/access.md)
            )
        )

    include(router, export.router)  # before /{type}/{id}: $export, $export-poll-status, $export-file
    include(router, terminology.router)
    include(router, search.router)
    include(router, read.router)
    include(router, write.router)  # POST/PUT/PATCH/DELETE (docs/validation.md)
    return router


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RorError)
    async def ror_error(_request: Request, exc: RorError) -> FhirResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> FhirResponse:
        issues = []
        for err in exc.errors():
            loc = [str(x) for x in err.get("loc", ()) if x not in ("query", "path", "body")]
            issues.append(Issue("error", "invalid", f"{'.'.join(loc)}: {err.get('msg')}", loc[-1:] if loc else []))
        return outcome_response(400, issues or [Issue("error", "invalid", "invalid request")])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> FhirResponse:
        code = {404: "not-found", 405: "not-supported", 401: "login", 403: "forbidden"}.get(exc.status_code, "invalid")
        return outcome_response(exc.status_code, [Issue("error", code, str(exc.detail))])

    @app.exception_handler(DBAPIError)
    async def database_error(_request: Request, exc: DBAPIError) -> FhirResponse:
        return error_response(exc)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> FhirResponse:
        return error_response(exc)
