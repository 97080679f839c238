"""Rapport quotidien DGOS (`/rapports/quotidien`): critical-care beds at the end of a chosen day, by région,
département and establishment, with CSV / XLSX / FHIR downloads. Roles that see the dashboard see it (their access
profile sees every capacity status); a regional administrator starts on its région."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ror.errors import RorError
from ror.reporting.activities import FAMILIES
from ror.reporting.daily import PARIS, DailyReport
from ror.reporting.formats import to_csv, to_measure_report, to_xlsx
from ror.reporting.service import build_daily, may_see
from ror.web.app_errors import error_from, may_not_see
from ror.web.render import render
from ror.web.session import require_session

router = APIRouter(include_in_schema=False)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _session(request: Request) -> Any:
    session = require_session(request)
    if not session.person.role_info.dashboard or not may_see(session.person.profile):
        raise may_not_see(request)
    return session


def _params(request: Request, session: Any) -> tuple[date, str]:
    asked = request.query_params.get("date")
    try:
        day = date.fromisoformat(asked) if asked else datetime.now(PARIS).date() - timedelta(days=1)
    except ValueError as exc:
        raise error_from(RorError(f"date invalide : {asked!r} (AAAA-MM-JJ)")) from exc
    region = request.query_params.get("region")
    if region is None and session.person.role == "regional_admin":
        region = session.person.region
    return day, f"region:{region}" if region else "national"


def _report(request: Request) -> DailyReport:
    session = _session(request)
    day, scope = _params(request, session)
    svc = request.app.state.services
    try:
        return build_daily(svc.engine, svc.geography, day, scope, session.person.profile)
    except RorError as exc:
        raise error_from(exc) from exc


@router.get("/rapports/quotidien")
def daily_page(request: Request) -> Response:
    report = _report(request)
    region = report.scope.split(":")[1] if report.scope.startswith("region:") else ""
    query = f"date={report.day.isoformat()}" + (f"&region={region}" if region else "")
    top = "nation" if not region else "region"
    return render(
        request,
        "reports_daily.html",
        {
            "title": "Rapport quotidien",
            "nav": "rapports",
            "report": report,
            "region": region,
            "regions": request.app.state.services.geography.regions(),
            "families": FAMILIES,
            "top": report.level(top),
            "by_family": {f.key: report.level(top, f.key) for f in FAMILIES},
            "regions_rows": report.level("region"),
            "departements": report.level("departement"),
            "establishments": report.level("etablissement"),
            "query": query,
        },
    )


def _download(body: bytes, media: str, report: DailyReport, ext: str) -> Response:
    name = f"rapport-quotidien-{report.day.isoformat()}-{report.scope.replace(':', '-')}.{ext}"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


@router.get("/rapports/quotidien.csv")
def daily_csv(request: Request) -> Response:
    report = _report(request)
    return _download(to_csv(report).encode(), "text/csv; charset=utf-8", report, "csv")


@router.get("/rapports/quotidien.xlsx")
def daily_xlsx(request: Request) -> Response:
    report = _report(request)
    return _download(to_xlsx(report), XLSX, report, "xlsx")


@router.get("/rapports/quotidien.json")
def daily_fhir(request: Request) -> Response:
    report = _report(request)
    return _download(orjson.dumps(to_measure_report(report)), "application/fhir+json", report, "json")
