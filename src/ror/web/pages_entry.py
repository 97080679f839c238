"""Saisie des disponibilités: every unit of one establishment on one page, saved in one request
(`ror.capacity.entry.save_establishment`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ror.capacity.entry import (
    GENDER_LABELS,
    EntryRejected,
    RowChange,
    UnitState,
    establishment_units,
    save_establishment,
)
from ror.directory import ids
from ror.errors import RorError
from ror.web.app_errors import error_from
from ror.web.data import read_one, region_of
from ror.web.render import render
from ror.web.session import WebError, check_csrf, remote_addr, require_session

router = APIRouter(include_in_schema=False)


def _establishment(request: Request, finess: str) -> tuple[dict[str, Any], str | None]:
    session = require_session(request)
    services = request.app.state.services
    if len(finess) != 9 or not finess.isalnum():
        raise WebError(404, "Établissement introuvable", f"{finess!r} n'est pas un numéro FINESS.")
    org = read_one(services, session.person.profile, "Organization", ids.eg_id(finess))
    if org is None:
        raise WebError(404, "Établissement introuvable", f"Aucun établissement FINESS {finess} dans le répertoire.")
    region = region_of(org)
    if not session.person.may_write(finess, region):
        raise WebError(
            403,
            "Accès refusé",
            f"Votre compte ({session.person.role_info.label}) ne permet pas de saisir les disponibilités de "
            f"l'établissement {finess}.",
        )
    return org, region


def _changes(form: Any, units: list[UnitState], confirm_all: bool) -> dict[str, RowChange]:
    out: dict[str, RowChange] = {}
    for u in units:
        lid = u.location_id
        version = str(form.get(f"v-{lid}") or "")
        out[lid] = RowChange(
            available={g: str(form.get(f"a-{lid}-{g}") or "") for g in u.genders},
            occupied=str(form.get(f"o-{lid}") or ""),
            confirm=confirm_all or form.get(f"c-{lid}") == "1",
            note=str(form.get(f"n-{lid}") or "") or None,
            version_id=int(version) if version.isdigit() else None,
        )
    return out


def _page(
    request: Request,
    finess: str,
    org: dict[str, Any],
    units: list[UnitState],
    *,
    values: dict[str, RowChange] | None = None,
    errors: dict[str, dict[str, str]] | None = None,
    message: str = "",
    status: int = 200,
) -> Response:
    return render(
        request,
        "entry.html",
        {
            "title": f"Saisie des disponibilités — {org.get('name', finess)}",
            "nav": "saisie",
            "finess": finess,
            "org": org,
            "units": units,
            "values": values or {},
            "errors": errors or {},
            "message": message,
            "gender_labels": GENDER_LABELS,
        },
        status=status,
    )


@router.get("/etablissements/{finess}/disponibilites")
def entry_form(request: Request, finess: str, enregistre: int | None = None, confirme: int | None = None) -> Response:
    org, _ = _establishment(request, finess)
    units = establishment_units(request.app.state.services, finess)
    message = ""
    if enregistre is not None:
        message = f"{enregistre} unité(s) enregistrée(s)"
        message += f", dont {confirme} confirmée(s) sans changement." if confirme else "."
    return _page(request, finess, org, units, message=message)


@router.post("/etablissements/{finess}/disponibilites")
async def entry_save(request: Request, finess: str) -> Response:
    session = require_session(request)
    form = await request.form()
    check_csrf(session, form)
    org, region = _establishment(request, finess)
    services = request.app.state.services
    units = establishment_units(services, finess)
    changes = _changes(form, units, form.get("action") == "confirm_all")
    try:
        result = save_establishment(
            services, session.person.caller(finess, region), finess, changes, remote_addr=remote_addr(request)
        )
    except EntryRejected as exc:
        n = len(exc.result.errors)
        return _page(
            request,
            finess,
            org,
            units,
            values=changes,
            errors=exc.result.errors,
            message=f"Rien n'a été enregistré : {n} unité(s) à corriger (messages à côté des champs).",
            status=400,
        )
    except RorError as exc:
        raise error_from(exc) from exc
    target = f"/etablissements/{finess}/disponibilites?enregistre={len(result.saved)}&confirme={len(result.confirmed)}"
    return RedirectResponse(target, status_code=303)


@router.get("/etablissements")
def my_establishments(request: Request) -> Response:
    """The establishments the person enters capacities for (one link each)."""
    session = require_session(request)
    services = request.app.state.services
    items = []
    for f in session.person.finess:
        org = read_one(services, session.person.profile, "Organization", ids.eg_id(f))
        items.append((f, (org or {}).get("name", "établissement inconnu du répertoire"), org is not None))
    if len(items) == 1 and items[0][2]:
        return RedirectResponse(f"/etablissements/{items[0][0]}/disponibilites", status_code=303)
    return render(request, "establishments.html", {"title": "Mes établissements", "nav": "saisie", "items": items})
