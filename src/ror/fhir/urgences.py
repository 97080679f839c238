"""Emergency-department activity as FHIR `MeasureReport` (docs/urgences.md):

    POST /fhir/MeasureReport          a feed reports the current figures of one department
    GET  /fhir/MeasureReport/{id}     read one report
    GET  /fhir/MeasureReport?subject=Location/…&_tag=<TRE_R30 system>|53&date=ge2026-12-01T00:00:00Z

Reads: profiles 1 and 4 (regulation), or a feeder for its own establishments; anonymous → 401. Writes: the
establishments the caller may write, audited. `/fhir/MeasureReport/$dgos-daily` (docs/reports.md) is routed
before these routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ror.access.tokens import ANONYMOUS, Caller
from ror.errors import InvalidRequest
from ror.fhir.capacity import read_json
from ror.fhir.common import base_url, services
from ror.fhir.responses import FhirResponse
from ror.search.normalise import date_range
from ror.store.meta import REGION_SYSTEM
from ror.subscriptions.model import parse_instant
from ror.tension.service import readable_finess
from ror.urgences.model import DEPARTEMENT_SYSTEM, MEASURE_URL, Report, parse_measure_report

router = APIRouter()
SEARCH_PARAMS = ("subject", "_tag", "date", "measure", "_count")


def _caller(request: Request) -> Caller:
    return getattr(request.state, "caller", ANONYMOUS)


def _response(request: Request, r: Report, status: int = 200) -> FhirResponse:
    headers = {"ETag": 'W/"1"', "Location": f"{base_url(request)}/MeasureReport/{r.id}/_history/1"}
    return FhirResponse(r.measure_report(), status_code=status, headers=headers)


@router.post("/fhir/MeasureReport", tags=["urgences"], summary="Report emergency-department activity")
async def create(request: Request) -> Response:
    data = parse_measure_report(await read_json(request))
    at = parse_instant(data.date, "MeasureReport.date") if data.date else None
    urgences = services(request).urgences
    report = await run_in_threadpool(
        lambda: urgences.record(
            _caller(request),
            data.figures,
            service_id=data.service_id,
            location_id=data.location_id,
            observed_at=at,
            source="feed",
            remote_addr=request.client.host if request.client else None,
        )
    )
    return _response(request, report, 201)


@router.get("/fhir/MeasureReport/{report_id}", tags=["urgences"], summary="Read an emergency activity report")
def read(request: Request, report_id: str) -> FhirResponse:
    finess_in = readable_finess(_caller(request))
    r = services(request).urgences.get(report_id)
    if finess_in is not None and r.finess not in finess_in:
        raise InvalidRequest(f"MeasureReport/{report_id} is not known", status=404, code="not-found")
    return _response(request, r)


@router.get("/fhir/MeasureReport", tags=["urgences"], summary="Search emergency activity reports")
def search(request: Request) -> FhirResponse:
    crit: dict[str, Any] = {"finess_in": readable_finess(_caller(request)), "limit": 200}
    for name, value in request.query_params.multi_items():
        if name not in SEARCH_PARAMS:
            raise InvalidRequest(f"unknown search parameter {name!r} for MeasureReport", expression=name)
        if name == "subject":
            if value.startswith("HealthcareService/"):
                crit["service_id"] = value.removeprefix("HealthcareService/")
            else:
                crit["location_id"] = value.removeprefix("Location/")
        elif name == "_tag":
            system, _, code = value.rpartition("|")
            key = "departement" if system == DEPARTEMENT_SYSTEM else "region"
            crit[key] = code if system in ("", REGION_SYSTEM, DEPARTEMENT_SYSTEM) else "\x00"
        elif name == "measure" and value != MEASURE_URL:
            crit["limit"] = 0
        elif name == "date":
            prefix, rest = (value[:2], value[2:]) if value[:2] in ("ge", "gt", "le", "lt", "eq") else ("eq", value)
            try:
                low, high = date_range(rest)
            except ValueError as exc:
                raise InvalidRequest(f"date: {exc}", expression="date") from exc
            if prefix in ("ge", "gt", "eq"):
                crit["since"] = low
            if prefix in ("le", "lt", "eq"):
                crit["until"] = high
        elif name == "_count":
            if not value.isdigit():
                raise InvalidRequest("_count is a number", expression="_count")
            crit["limit"] = min(int(value), 1000)
    found = services(request).urgences.search(**crit) if crit["limit"] else []
    base = base_url(request)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(found)}
    if found:
        bundle["entry"] = [
            {"fullUrl": f"{base}/MeasureReport/{r.id}", "resource": r.measure_report(), "search": {"mode": "match"}}
            for r in found
        ]
    return FhirResponse(bundle)
