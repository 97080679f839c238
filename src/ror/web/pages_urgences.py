"""Urgences for people: the regional view of emergency departments (`/urgences`: latest figures per department,
totals, the 24-hour trend, next to critical-care availability) and the hand entry of one department's figures
(`/urgences/{offer id}`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from ror.errors import RorError
from ror.urgences.model import check_figures
from ror.web.app_errors import error_from, may_not_see
from ror.web.charts import Series, step_chart
from ror.web.dashboard import Totals, add, by_departement, critical_units
from ror.web.render import now_utc, render
from ror.web.session import check_csrf, remote_addr, require_session

router = APIRouter(include_in_schema=False)


def _region(request: Request, session: Any) -> str | None:
    asked = request.query_params.get("region")
    if asked is not None:
        return asked or None
    return session.person.region if session.person.role == "regional_admin" else None


@router.get("/urgences")
def overview(request: Request) -> Response:
    session = require_session(request)
    if not session.person.role_info.dashboard:
        raise may_not_see(request)
    svc = request.app.state.services
    region = _region(request, session)
    latest = sorted(svc.urgences.latest(region), key=lambda r: (-r.waiting_bed, -r.present))
    names = {d.service_id: d for d in svc.urgences.departments(region)}
    now = now_utc()
    start = now - timedelta(hours=24)
    points = svc.urgences.series(start, now, timedelta(hours=1), region=region)
    chart = step_chart(
        [
            Series("Patients présents", "#000091", [(p.at, p.present) for p in points if p.departments]),
            Series("En attente d'un lit", "#e1000f", [(p.at, p.waiting_bed) for p in points if p.departments]),
        ],
        start,
        now,
        "Patients présents et en attente d'un lit sur 24 heures",
    )
    with svc.store.read_conn() as conn:
        deps = by_departement(critical_units(conn, region=region))
    critical = Totals()
    for t in deps.values():
        add(critical, t)
    geo = svc.geography
    return render(
        request,
        "urgences.html",
        {
            "title": "Urgences",
            "nav": "urgences",
            "region": region,
            "region_name": (geo.region(region).name if region and geo.region(region) else None),
            "regions": geo.regions(),
            "rows": [(r, names.get(r.service_id)) for r in latest],
            "total": {
                "present": sum(r.present for r in latest),
                "waiting": sum(r.waiting_bed for r in latest),
                "passages": sum(r.passages_24h for r in latest),
            },
            "critical": critical,
            "chart": Markup(chart),
            "silent": [d for sid, d in names.items() if sid not in {r.service_id for r in latest}],
        },
    )


def _department(request: Request, service_id: str) -> Any:
    svc = request.app.state.services
    try:
        with svc.store.read_conn() as conn:
            return svc.urgences.department(conn, service_id)
    except RorError as exc:
        raise error_from(exc) from exc


@router.get("/urgences/{service_id}")
def entry_page(request: Request, service_id: str) -> Response:
    session = require_session(request)
    dep = _department(request, service_id)
    may_write = bool(dep.finess) and session.person.may_write(dep.finess, dep.region)
    if not (may_write or session.person.role_info.dashboard):
        raise may_not_see(request)
    history = request.app.state.services.urgences.search(service_id=service_id, limit=48)
    return render(
        request,
        "urgences_entry.html",
        {
            "title": f"Urgences — {dep.name or service_id}",
            "nav": "urgences",
            "dep": dep,
            "history": history,
            "may_write": may_write,
            "ok": request.query_params.get("ok"),
        },
    )


@router.post("/urgences/{service_id}")
async def entry(request: Request, service_id: str) -> Response:
    session = require_session(request)
    form = await request.form()
    check_csrf(session, form)
    dep = await run_in_threadpool(_department, request, service_id)
    caller = session.person.caller(dep.finess, dep.region)

    def number(name: str) -> int | str:
        value = str(form.get(name, "")).strip()
        return int(value) if value.isdigit() else value

    urgences = request.app.state.services.urgences
    try:
        figures = check_figures(number("presents"), number("attente"), number("passages"), "formulaire")
        await run_in_threadpool(
            lambda: urgences.record(
                caller, figures, service_id=service_id, source="manual", remote_addr=remote_addr(request)
            )
        )
    except RorError as exc:
        raise error_from(exc) from exc
    return RedirectResponse(f"/urgences/{service_id}?ok=1", status_code=303)
