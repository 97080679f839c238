"""Reports over HTTP: the DGOS daily critical-care report (docs/reports.md).

* `GET /api/reports/daily?date=YYYY-MM-DD&format=csv|xlsx|fhir&scope=region:53` — a file to download;
* `GET /fhir/MeasureReport/$dgos-daily?date=YYYY-MM-DD&scope=…` — the SANER-style MeasureReport.

Only callers whose access profile sees every capacity status (profiles 1 and 4) get it: anonymous → 401, other
profiles → 403; sensitive units are left out for profiles that may not see them."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ror.access.policy import Profile
from ror.access.rights import Forbidden, Unauthorized
from ror.errors import InvalidRequest
from ror.fhir.access import caller_profile
from ror.fhir.common import services
from ror.fhir.responses import FhirResponse
from ror.reporting.daily import DailyReport
from ror.reporting.formats import to_csv, to_measure_report, to_xlsx
from ror.reporting.service import FORMATS, build_daily, may_see, parse_date

router = APIRouter()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _report(request: Request, day: str, scope: str | None) -> tuple[DailyReport, Profile]:
    profile = caller_profile(request)
    if not may_see(profile):
        caller = getattr(request.state, "caller", None)
        if caller is None or caller.kind == "anonymous":
            raise Unauthorized("the daily report needs an access token (POST /oauth/token)")
        raise Forbidden(f"access profile {int(profile)} may not see operational capacity (profiles 1 and 4 may)")
    svc = services(request)
    return build_daily(svc.engine, svc.geography, parse_date(day), scope, profile), profile


def _filename(day: date, scope: str, ext: str) -> str:
    return f"rapport-quotidien-{day.isoformat()}-{scope.replace(':', '-')}.{ext}"


@router.get("/api/reports/daily", tags=["reports"], summary="DGOS daily critical-care report (CSV, XLSX or FHIR)")
def daily(request: Request, date: str, format: str = "csv", scope: str | None = None) -> Response:
    if format not in FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(FORMATS)}", expression="format")
    report, _ = _report(request, date, scope)
    headers = {"Cache-Control": "no-store"}
    if format == "fhir":
        headers["Content-Disposition"] = f'attachment; filename="{_filename(report.day, report.scope, "json")}"'
        return FhirResponse(to_measure_report(report), headers=headers)
    ext, media = ("csv", "text/csv; charset=utf-8") if format == "csv" else ("xlsx", XLSX)
    headers["Content-Disposition"] = f'attachment; filename="{_filename(report.day, report.scope, ext)}"'
    body = to_csv(report).encode() if format == "csv" else to_xlsx(report)
    return Response(body, media_type=media, headers=headers)


@router.get("/fhir/MeasureReport/$dgos-daily", tags=["reports"], summary="DGOS daily report as a MeasureReport")
def daily_measure_report(request: Request, date: str, scope: str | None = None) -> FhirResponse:
    report, _ = _report(request, date, scope)
    return FhirResponse(to_measure_report(report), headers={"Cache-Control": "no-store"})
