"""Tension en établissement (TES) for people: the live regional board (`/tension`, ARS / SAMU / crisis cells),
an establishment's history and declaration form (`/tension/etablissements/{FINESS}`), and the page's live feed
(`/tension/flux`, Server-Sent Events over the session) that shows a banner on every escalation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ror.capacity.stream import Subscription, follow
from ror.errors import RorError
from ror.tension.model import ACTIONS, LEVELS, REASONS, Action
from ror.web.app_errors import error_from, may_not_see
from ror.web.render import now_utc, render
from ror.web.session import check_csrf, remote_addr, require_session

router = APIRouter(include_in_schema=False)
COUNTED_ACTIONS = ("lits-supplementaires", "deprogrammation", "transferts")


def _board_session(request: Request) -> Any:
    session = require_session(request)
    if not session.person.role_info.dashboard:
        raise may_not_see(request)
    return session


def _region(request: Request, session: Any) -> str | None:
    asked = request.query_params.get("region")
    if asked is not None:
        return asked or None
    return session.person.region if session.person.role == "regional_admin" else None


@router.get("/tension")
def board(request: Request) -> Response:
    session = _board_session(request)
    svc = request.app.state.services
    region = _region(request, session)
    items = svc.tension.board(region)
    alerts = [d for d in svc.tension.escalations(region, now_utc() - timedelta(hours=24)) if d.active]
    geo = svc.geography
    counts = {lvl: sum(1 for d in items if d.level == lvl) for lvl in LEVELS}
    return render(
        request,
        "tension.html",
        {
            "title": "Tensions hospitalières",
            "nav": "tension",
            "region": region,
            "region_name": (geo.region(region).name if region and geo.region(region) else None),
            "regions": geo.regions(),
            "items": items,
            "alerts": alerts[:10],
            "counts": counts,
            "levels": LEVELS,
            "reasons": REASONS,
            "actions": ACTIONS,
        },
    )


@router.get("/tension/flux")
async def live(request: Request) -> StreamingResponse:
    session = _board_session(request)
    region = _region(request, session)

    def render(_sub: Subscription, change: dict[str, Any]) -> bytes | None:
        if change.get("kind") != "tension" or (region and change.get("region") != region):
            return None
        return b"event: tension\ndata: " + orjson.dumps(change) + b"\n\n"

    events = follow(request.app.state.capacity_broker, request.is_disconnected, render)
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-store"})


def _establishment(request: Request, finess: str) -> Any:
    svc = request.app.state.services
    try:
        with svc.store.read_conn() as conn:
            return svc.tension.establishment(conn, finess=finess)
    except RorError as exc:
        raise error_from(exc) from exc


@router.get("/tension/etablissements/{finess}")
def establishment_page(request: Request, finess: str) -> Response:
    session = require_session(request)
    est = _establishment(request, finess)
    may_write = session.person.may_write(est.finess, est.region)
    if not (session.person.role_info.dashboard or may_write):
        raise may_not_see(request)
    history = request.app.state.services.tension.search(finess=est.finess, limit=100)
    current = next((d for d in history if d.active), None)
    return render(
        request,
        "tension_establishment.html",
        {
            "title": f"Tension — {est.name or est.finess}",
            "nav": "tension",
            "est": est,
            "history": history,
            "current": current,
            "may_write": may_write,
            "levels": LEVELS,
            "reasons": REASONS,
            "actions": ACTIONS,
            "counted": COUNTED_ACTIONS,
            "message": request.query_params.get("ok"),
        },
    )


@router.post("/tension/etablissements/{finess}")
async def declare(request: Request, finess: str) -> Response:
    session = require_session(request)
    form = await request.form()
    check_csrf(session, form)
    est = await run_in_threadpool(_establishment, request, finess)
    caller = session.person.caller(est.finess, est.region)
    tension = request.app.state.services.tension
    actions = []
    for code in form.getlist("action"):
        qty = str(form.get(f"quantite-{code}", "")).strip()
        actions.append(Action(str(code), int(qty) if qty.isdigit() else None))
    try:
        if form.get("fin"):
            current = next((d for d in tension.search(finess=est.finess, active=True, limit=1)), None)
            if current is None:
                raise error_from(RorError("aucune tension en cours pour cet établissement"))
            await run_in_threadpool(lambda: tension.end(caller, current.id, remote_addr=remote_addr(request)))
            done = "fin"
        else:
            level = str(form.get("niveau", ""))
            await run_in_threadpool(
                lambda: tension.declare(
                    caller,
                    level=int(level) if level.isdigit() else 0,
                    organization_id=est.organization_id,
                    reasons=[str(r) for r in form.getlist("motif")],
                    actions=actions,
                    comment=str(form.get("commentaire", "")).strip() or None,
                    remote_addr=remote_addr(request),
                )
            )
            done = "declaration"
    except RorError as exc:
        raise error_from(exc) from exc
    return RedirectResponse(f"/tension/etablissements/{est.finess}?ok={done}", status_code=303)
