"""Workflow pages (docs/workflow.md): what awaits each role (`/a-traiter`) and one change with its history and
the actions the person may take (submit, relecture, validation and publication, rejection with a comment)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ror.errors import RorError
from ror.validation import ValidationFailed
from ror.web.app_errors import error_from
from ror.web.render import render
from ror.web.session import WebError, check_csrf, require_session
from ror.workflow import rules
from ror.workflow.service import NotAllowed

router = APIRouter(include_in_schema=False)
SECTIONS = (
    ("brouillons", "Brouillons et modifications rejetées à reprendre"),
    ("relecture", "Modifications soumises à relire (équipe régionale)"),
    ("validation", "Modifications relues à valider et publier (responsable d'établissement)"),
)


@router.get("/a-traiter")
def to_do(request: Request) -> Response:
    session = require_session(request)
    pending = request.app.state.services.workflow.pending_for(session.person)
    return render(
        request,
        "workflow_todo.html",
        {"title": "À traiter", "nav": "a-traiter", "sections": SECTIONS, "pending": pending},
    )


def _page(
    request: Request, pk: int, *, message: str = "", errors: list[str] | None = None, status: int = 200
) -> Response:
    session = require_session(request)
    wf = request.app.state.services.workflow
    try:
        change = wf.get(pk)
    except RorError as exc:
        raise error_from(exc) from exc
    region = wf.region_of(change.establishment)
    actions = [
        (a, rules.ACTION_LABELS[a])
        for a in ("submit", "review", "publish", "reject", "rework")
        if rules.allowed(session.person, a, change.status, change.establishment, region)
    ]
    may_see = (
        actions
        or rules.is_author(session.person, change.establishment, region)
        or rules.is_head(session.person, change.establishment)
        or rules.is_regional_team(session.person, region)
    )
    if not may_see:
        raise WebError(403, "Accès refusé", "Cette modification ne concerne pas votre compte.")
    return render(
        request,
        "workflow_change.html",
        {
            "title": f"Modification n° {change.pk}",
            "nav": "a-traiter",
            "change": change,
            "history": wf.transitions(pk),
            "labels": rules.LABELS,
            "actions": actions,
            "message": message,
            "errors": errors or [],
        },
        status=status,
    )


@router.get("/modifications/{pk}")
def change_page(request: Request, pk: int) -> Response:
    return _page(request, pk)


@router.post("/modifications/{pk}")
async def change_act(request: Request, pk: int) -> Response:
    session = require_session(request)
    form = await request.form()
    check_csrf(session, form)
    action = str(form.get("action") or "")
    comment = str(form.get("commentaire") or "") or None
    try:
        request.app.state.services.workflow.act(session.person, pk, action, comment)
    except ValidationFailed as exc:
        return _page(request, pk, errors=[i.diagnostics for i in exc.issues], status=422)
    except NotAllowed as exc:
        raise WebError(403, "Action refusée", exc.diagnostics) from exc
    except RorError as exc:
        return _page(request, pk, errors=[exc.diagnostics], status=exc.status)
    return RedirectResponse(f"/modifications/{pk}", status_code=303)
