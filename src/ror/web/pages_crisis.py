"""Crisis mode from the dashboard: the banner of the active crises covering the territory shown, and their
declaration / end by authorised people (national administrators: anywhere; regional administrators: their région
or départements of it), with the session's CSRF token. Every declaration, end and refusal is audited."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ror.access import audit
from ror.capacity.crisis import CRISIS_TYPES, DEFAULT_CRISIS_FRESHNESS_MIN, Crisis, CrisisRegistry
from ror.errors import RorError
from ror.web.app_errors import error_from
from ror.web.session import WebError, check_csrf, remote_addr, require_session

router = APIRouter(include_in_schema=False)


def covering(request: Request, crises: list[Crisis], region: str | None) -> list[Crisis]:
    """The crises covering `region` (a région scope equal to it, or one of its départements); all for None."""
    if region is None:
        return crises
    deps = {d.code for d in request.app.state.services.geography.departements(region)}
    return [c for c in crises if (region in c.scope_codes if c.scope_kind == "region" else deps & set(c.scope_codes))]


def may_manage(request: Request, person: Any, scope_kind: str, codes: list[str] | tuple[str, ...]) -> bool:
    if person.role == "national_admin":
        return True
    if person.role != "regional_admin" or not person.region or not codes:
        return False
    if scope_kind == "region":
        return list(codes) == [person.region]
    geo = request.app.state.services.geography
    return all(geo.region_of_departement(code) == person.region for code in codes)


def may_declare(person: Any) -> bool:
    return person.role in ("national_admin", "regional_admin")


def _audit(request: Request, session: Any, action: str, outcome: str, res_id: str | None, detail: str) -> None:
    audit.record(
        request.app.state.services.engine,
        actor_type="person",
        actor_id=session.person.subject,
        action=action,
        outcome=outcome,
        res_type="Crisis",
        res_id=res_id,
        remote_addr=remote_addr(request),
        detail=detail,
    )


def _back(form: Any, done: str) -> RedirectResponse:
    region = str(form.get("retour_region", ""))
    query = f"?region={quote(region)}&crise={done}" if region else f"?crise={done}"
    return RedirectResponse("/tableau-de-bord" + query, status_code=303)


@router.post("/tableau-de-bord/crises")
async def declare(request: Request) -> Response:
    session = require_session(request)
    form = await request.form()
    check_csrf(session, form)
    kind = str(form.get("portee", ""))
    codes = [c for c in re.split(r"[\s,;]+", str(form.get("codes", "")).strip()) if c]
    crisis_type = str(form.get("type", ""))
    minutes = str(form.get("fraicheur", DEFAULT_CRISIS_FRESHNESS_MIN))
    detail = f"{CRISIS_TYPES.get(crisis_type, crisis_type)} {kind} {' '.join(codes)}"
    if not may_manage(request, session.person, kind, codes):
        await run_in_threadpool(_audit, request, session, "crisis-start", "denied", None, detail)
        raise WebError(403, "Accès refusé", "Votre rôle ne permet pas de déclarer une crise sur ce territoire.")

    def run() -> Crisis:
        geo = request.app.state.services.geography
        for code in codes:
            known = geo.region(code) if kind == "region" else geo.departement(code)
            if known is None:
                raise WebError(400, "Requête invalide", f"Territoire inconnu : {code!r}.")
        found = CrisisRegistry(request.app.state.services.engine).declare(
            crisis_type,
            kind,
            codes,
            session.person.subject,
            reason=str(form.get("motif", "")).strip() or None,
            freshness_minutes=int(minutes) if minutes.isdigit() else 0,
        )
        _audit(request, session, "crisis-start", "success", str(found.id), detail)
        return found

    try:
        await run_in_threadpool(run)
    except RorError as exc:
        raise error_from(exc) from exc
    return _back(form, "declaree")


@router.post("/tableau-de-bord/crises/{crisis_id}/fin")
async def end(request: Request, crisis_id: int) -> Response:
    session = require_session(request)
    form = await request.form()
    check_csrf(session, form)
    registry = CrisisRegistry(request.app.state.services.engine)
    try:
        current = await run_in_threadpool(registry.get, crisis_id)
        if not may_manage(request, session.person, current.scope_kind, current.scope_codes):
            await run_in_threadpool(_audit, request, session, "crisis-end", "denied", str(crisis_id), "not allowed")
            raise WebError(403, "Accès refusé", "Votre rôle ne permet pas de terminer cette crise.")
        await run_in_threadpool(registry.end, crisis_id, session.person.subject)
        await run_in_threadpool(_audit, request, session, "crisis-end", "success", str(crisis_id), current.label)
    except RorError as exc:
        raise error_from(exc) from exc
    return _back(form, "terminee")
