"""Offer forms (issue 7 item 3, docs/workflow.md "Formulaires de l'offre"): the offers of an establishment, create /
edit an offer and its place, duplicate, close / reopen. Saving never writes the store: it creates or updates a
workflow draft (WorkflowService), which then goes brouillon → soumis → valide → publie on /modifications/{n}.

A new offer proposes a new place: two drafts, the place's and the offer's (the offer refers to the place); the
workflow moves the place with its offer and publishes it just before (WorkflowService.companions)."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import select

from ror.access.people import Person
from ror.db.tables import idx_reference, resource
from ror.directory import ids
from ror.errors import RorError
from ror.quality.population import FLAG_LABELS, FLAGS, STATUS_LABELS, establishment_population
from ror.services import Services
from ror.validation.model import Finding
from ror.web import offer_form
from ror.web.app_errors import error_from
from ror.web.data import read_one, ref_id, region_of
from ror.web.render import render
from ror.web.session import WebError, check_csrf, require_session
from ror.workflow import Change, rules
from ror.workflow.service import NotAllowed
from ror.write import closure

router = APIRouter(include_in_schema=False)
Res = dict[str, Any]


# --- helpers ------------------------------------------------------------------------------------------------------
def _establishment(request: Request, finess: str) -> tuple[Res, str | None, Person]:
    """The establishment Organization, its region, and the person — who must be an author of its changes."""
    person = require_session(request).person
    services: Services = request.app.state.services
    if len(finess) != 9 or not finess.isalnum():
        raise WebError(404, "Établissement introuvable", f"{finess!r} n'est pas un numéro FINESS.")
    org = read_one(services, person.profile, "Organization", ids.eg_id(finess))
    if org is None:
        raise WebError(404, "Établissement introuvable", f"Aucun établissement FINESS {finess} dans le répertoire.")
    region = region_of(org)
    if not rules.is_author(person, finess, region):
        raise WebError(
            403,
            "Accès refusé",
            f"Votre compte ({person.role_info.label}) ne permet pas de proposer des modifications de l'offre de "
            f"l'établissement {finess}.",
        )
    return org, region, person


def _offers_of(services: Services, finess: str) -> tuple[list[tuple[Res, Res | None]], dict[str, Res]]:
    """(offer, its first place) of the establishment, as published (the store), sorted by name, and all their
    places by id. Its authors see them whole (sensitive units included: they describe them)."""
    r = idx_reference
    with services.store.read_conn() as conn:
        offers = [
            orjson.loads(content)
            for content in conn.execute(
                select(resource.c.content)
                .select_from(r.join(resource, resource.c.pk == r.c.resource_pk))
                .where(
                    r.c.res_type == "HealthcareService",
                    r.c.param == "organization",
                    r.c.target_type == "Organization",
                    r.c.target_id == ids.eg_id(finess),
                    resource.c.deleted.is_(False),
                )
            ).scalars()
        ]
        loc_ids = {lid for hs in offers for ref in hs.get("location") or [] if (lid := ref_id(ref, "Location"))}
        places = {
            rid: orjson.loads(content)
            for rid, content in conn.execute(
                select(resource.c.res_id, resource.c.content).where(
                    resource.c.res_type == "Location",
                    resource.c.res_id.in_(sorted(loc_ids)),
                    resource.c.deleted.is_(False),
                )
            )
        }
    out = []
    for hs in offers:
        first = next((ref_id(ref, "Location") for ref in hs.get("location") or []), None)
        out.append((hs, places.get(first) if first else None))
    return sorted(out, key=lambda pair: str(pair[0].get("name") or "")), places


def _first_place(services: Services, hs: Res) -> Res | None:
    lid = next((ref_id(ref, "Location") for ref in hs.get("location") or []), None)
    if lid is None:
        return None
    try:
        return services.store.read("Location", lid).resource()
    except RorError:
        return None


def _open_change(services: Services, res_type: str, res_id: str) -> Change | None:
    changes = services.workflow.open_changes(res_type, res_id)
    return changes[0] if changes else None


def _options(services: Services, name: str) -> list[tuple[str, str]]:
    value_set, _system = offer_form.CODED[name]
    return [(c.code, c.display) for c in services.terminology.expand(value_set)]


def _form_page(
    request: Request,
    *,
    finess: str,
    org: Res,
    values: dict[str, str],
    action: str,
    heading: str,
    errors: dict[str, list[str]] | None = None,
    warnings: dict[str, list[str]] | None = None,
    message: str = "",
    change: Change | None = None,
    status: int = 200,
) -> Response:
    services: Services = request.app.state.services
    errors = errors or {}
    return render(
        request,
        "offer_form.html",
        {
            "title": f"{heading} — {org.get('name', finess)}",
            "nav": "offres",
            "heading": heading,
            "finess": finess,
            "org": org,
            "v": values,
            "action": action,
            "errors": errors,
            "warnings": warnings or {},
            "message": message,
            "change": change,
            "days": offer_form.DAYS,
            "rows": {p: offer_form.rows(values, p) for p in ("ct", "fe", "eq")},
            "fields": _options(services, "champ"),
            "functions": _options(services, "lieu_fonction"),
            "channels": _options(services, "canal"),
            "levels": _options(services, "niveau"),
            "purposes": _options(services, "nature"),
            "receptions": sorted(offer_form.RECEPTION.items()),
            "error_count": sum(len(m) for m in errors.values()),
        },
        status=status,
    )


def _form_errors(errors: dict[str, str]) -> dict[str, list[str]]:
    return {k: [v] for k, v in errors.items()}


def _findings(services: Services, hs_change: Change, loc_change: Change | None) -> list[Finding]:
    wf = services.workflow
    found = list(wf.validate(hs_change).findings)
    if loc_change is not None:
        found += wf.validate(loc_change).findings
    return found


def _save(
    request: Request,
    *,
    finess: str,
    org: Res,
    region: str | None,
    person: Person,
    values: dict[str, str],
    action: str,
    heading: str,
    base_hs: Res | None,
    base_loc: Res | None,
    hs_id: str | None,
    loc_id: str | None,
    hs_change: Change | None,
    loc_change: Change | None,
) -> Response:
    """Build the resources from the form and create / update the drafts: the place's (when new or changed), then
    the offer's. Form errors → 400, nothing saved; profile errors → the drafts are saved and the form comes back
    with the messages next to the fields."""
    services: Services = request.app.state.services
    wf = services.workflow
    built = offer_form.build(
        values,
        finess=finess,
        region=region,
        terminology=services.terminology,
        geography=services.geography,
        base_hs=base_hs,
        base_loc=base_loc,
        location_id=loc_id,
    )
    if built.errors:
        return _form_page(
            request,
            finess=finess,
            org=org,
            values=values,
            action=action,
            heading=heading,
            errors=_form_errors(built.errors),
            message="Rien n'a été enregistré : corrigez les champs signalés.",
            change=hs_change,
            status=400,
        )
    try:
        place_changed = base_loc is None or _business(built.loc) != _business(base_loc)
        if loc_change is not None:
            loc_change = wf.edit_draft(person, loc_change.pk, built.loc)
        elif place_changed:
            published_place = loc_id is not None and services.store.exists("Location", loc_id)
            loc_change = wf.create_draft(person, finess, built.loc, res_id=loc_id if published_place else None)
            if not published_place:
                built.hs["location"] = [{"reference": f"Location/{loc_change.res_id}"}] + [
                    ref for ref in built.hs.get("location") or [] if ref_id(ref, "Location") != loc_id
                ]
        if hs_change is not None:
            hs_change = wf.edit_draft(person, hs_change.pk, built.hs)
        else:
            hs_change = wf.create_draft(person, finess, built.hs, res_id=hs_id)
    except NotAllowed as exc:
        raise WebError(403, "Action refusée", exc.diagnostics) from exc
    except RorError as exc:
        raise error_from(exc) from exc
    if loc_change is not None:
        built.loc = loc_change.content
    findings = _findings(services, hs_change, loc_change)
    errors, warnings = offer_form.place_findings(findings, built)
    if errors:
        return _form_page(
            request,
            finess=finess,
            org=org,
            values=values,
            action=_draft_url(finess, hs_change.pk),
            heading=f"Brouillon n° {hs_change.pk}",
            errors=errors,
            warnings=warnings,
            message=f"Brouillon n° {hs_change.pk} enregistré, mais il ne pourra être soumis qu'une fois les champs "
            "signalés corrigés.",
            change=hs_change,
        )
    return RedirectResponse(f"/modifications/{hs_change.pk}", status_code=303)


def _business(res: Res) -> Res:
    """What a place says, to tell whether the form changed it (extension order and server-managed parts aside)."""
    out = {k: v for k, v in res.items() if k not in ("meta", "id", "extension")}
    out["extension"] = sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in res.get("extension") or [])
    return out


def _draft_url(finess: str, pk: int) -> str:
    return f"/etablissements/{finess}/offres/brouillons/{pk}"


def _draft_pair(services: Services, finess: str, pk: int) -> tuple[Change, Change | None, Res | None]:
    """The offer draft `pk` of the establishment, its place draft (when one moves with it) and the place."""
    try:
        hs_change = services.workflow.get(pk)
    except RorError as exc:
        raise error_from(exc) from exc
    if hs_change.res_type != "HealthcareService" or hs_change.establishment != finess:
        raise WebError(404, "Brouillon introuvable", f"La modification n° {pk} n'est pas une offre de {finess}.")
    companions = services.workflow.companions(hs_change)
    loc_change = companions[0] if companions else None
    place = loc_change.content if loc_change else _first_place(services, hs_change.content)
    return hs_change, loc_change, place


# --- pages --------------------------------------------------------------------------------------------------------
@router.get("/offres")
def my_offers(request: Request) -> Response:
    """The establishments whose offer the person may describe (one link each)."""
    person = require_session(request).person
    services: Services = request.app.state.services
    items = []
    for f in person.finess:
        org = read_one(services, person.profile, "Organization", ids.eg_id(f))
        items.append((f, (org or {}).get("name", "établissement inconnu du répertoire"), org is not None))
    if len(items) == 1 and items[0][2]:
        return RedirectResponse(f"/etablissements/{items[0][0]}/offres", status_code=303)
    return render(request, "offer_establishments.html", {"title": "Offres", "nav": "offres", "items": items})


@router.get("/etablissements/{finess}/offres")
def offers_page(request: Request, finess: str) -> Response:
    org, region, person = _establishment(request, finess)
    services: Services = request.app.state.services
    pairs, places = _offers_of(services, finess)
    with services.store.read_conn() as conn:  # the population flags (docs/quality.md "Population"): one query more
        pop = establishment_population(conn, org, [hs for hs, _ in pairs], places, region=region)
    flags = {o.offer_id: o for o in pop.offers} if pop else {}
    offers = []
    for hs, loc in pairs:
        offers.append(
            {
                "id": hs["id"],
                "name": hs.get("name") or hs["id"],
                "place": loc,
                "closed": closure.is_closed(hs),
                "closing": next(
                    (n.get("during") or {} for n in hs.get("notAvailable") or [] if n.get("id") == closure.CLOSING_ID),
                    {},
                ),
                "open_change": _open_change(services, "HealthcareService", hs["id"]),
                "population": flags.get(hs["id"]),
            }
        )
    pending = [
        ch
        for group in services.workflow.pending_for(person).values()
        for ch in group
        if ch.establishment == finess and ch.res_type == "HealthcareService"
    ]
    return render(
        request,
        "offer_list.html",
        {
            "title": f"Offres — {org.get('name', finess)}",
            "nav": "offres",
            "finess": finess,
            "org": org,
            "offers": offers,
            "pending": pending,
            "today": date.today().isoformat(),
            "pop": pop,
            "flags": FLAGS,
            "flag_labels": FLAG_LABELS,
            "status_labels": STATUS_LABELS,
        },
    )


@router.get("/etablissements/{finess}/offres/nouvelle")
def new_offer_form(request: Request, finess: str, modele: str | None = None) -> Response:
    org, _region, _person = _establishment(request, finess)
    services: Services = request.app.state.services
    values: dict[str, str] = {"champ": "01", "age_min": "0", "age_max": "120", "sensible": ""}
    heading = "Nouvelle offre"
    if modele:
        try:
            template = services.store.read("HealthcareService", modele).resource()
        except RorError as exc:
            raise error_from(exc) from exc
        if ref_id(template.get("providedBy"), "Organization") != ids.eg_id(finess):
            raise WebError(404, "Offre introuvable", f"L'offre {modele} n'est pas une offre de {finess}.")
        values = offer_form.values_from(template, _first_place(services, template), services.terminology)
        values["nom"] = f"{values.get('nom', '')} (copie)"
        values.pop("lieu_id_externe", None)  # unique within the establishment
        heading = f"Copie de « {template.get('name', modele)} »"
    action = f"/etablissements/{finess}/offres/nouvelle" + (f"?modele={modele}" if modele else "")
    return _form_page(request, finess=finess, org=org, values=values, action=action, heading=heading)


@router.post("/etablissements/{finess}/offres/nouvelle")
async def new_offer_save(request: Request, finess: str, modele: str | None = None) -> Response:
    session = require_session(request)
    form = await request.form()
    check_csrf(session, form)
    org, region, person = _establishment(request, finess)
    services: Services = request.app.state.services
    base_hs: Res | None = None
    if modele:  # a duplicate keeps what the form does not show (other characteristics, zones…), not the ids
        try:
            base_hs = services.store.read("HealthcareService", modele).resource()
        except RorError as exc:
            raise error_from(exc) from exc
        if ref_id(base_hs.get("providedBy"), "Organization") != ids.eg_id(finess):
            raise WebError(404, "Offre introuvable", f"L'offre {modele} n'est pas une offre de {finess}.")
        for key in ("id", "meta", "identifier", "location", "notAvailable"):
            base_hs.pop(key, None)
        base_hs["extension"] = [
            e for e in base_hs.get("extension") or [] if e.get("url") != ids.SD + "ror-meta-creation-date"
        ]
    return _save(
        request,
        finess=finess,
        org=org,
        region=region,
        person=person,
        values=offer_form.form_values(form),
        action=f"/etablissements/{finess}/offres/nouvelle",
        heading="Nouvelle offre",
        base_hs=base_hs,
        base_loc=None,
        hs_id=None,
        loc_id=None,
        hs_change=None,
        loc_change=None,
    )


def _published(services: Services, finess: str, hs_id: str) -> tuple[Res, Res | None]:
    try:
        hs = services.store.read("HealthcareService", hs_id).resource()
    except RorError as exc:
        raise error_from(exc) from exc
    if ref_id(hs.get("providedBy"), "Organization") != ids.eg_id(finess):
        raise WebError(404, "Offre introuvable", f"L'offre {hs_id} n'est pas une offre de {finess}.")
    return hs, _first_place(services, hs)


@router.get("/etablissements/{finess}/offres/{hs_id}/modifier")
def edit_offer_form(request: Request, finess: str, hs_id: str) -> Response:
    org, _region, _person = _establishment(request, finess)
    services: Services = request.app.state.services
    hs, loc = _published(services, finess, hs_id)
    pending = _open_change(services, "HealthcareService", hs_id)
    if pending is not None:  # one change at a time: continue the draft, or follow the change under way
        target = _draft_url(finess, pending.pk) if pending.status == rules.BROUILLON else f"/modifications/{pending.pk}"
        return RedirectResponse(target, status_code=303)
    values = offer_form.values_from(hs, loc, services.terminology)
    return _form_page(
        request,
        finess=finess,
        org=org,
        values=values,
        action=f"/etablissements/{finess}/offres/{hs_id}/modifier",
        heading=f"Modifier « {hs.get('name', hs_id)} »",
    )


@router.post("/etablissements/{finess}/offres/{hs_id}/modifier")
async def edit_offer_save(request: Request, finess: str, hs_id: str) -> Response:
    session = require_session(request)
    form = await request.form()
    check_csrf(session, form)
    org, region, person = _establishment(request, finess)
    services: Services = request.app.state.services
    hs, loc = _published(services, finess, hs_id)
    if _open_change(services, "HealthcareService", hs_id) is not None:
        raise WebError(409, "Modification en cours", "Une modification de cette offre est déjà en cours.")
    loc_id = loc["id"] if loc else None
    loc_change = _open_change(services, "Location", loc_id) if loc_id else None
    if loc_change is not None and loc_change.status != rules.BROUILLON:
        raise WebError(
            409, "Modification en cours", f"Le lieu de cette offre est en cours de modification (n° {loc_change.pk})."
        )
    return _save(
        request,
        finess=finess,
        org=org,
        region=region,
        person=person,
        values=offer_form.form_values(form),
        action=f"/etablissements/{finess}/offres/{hs_id}/modifier",
        heading=f"Modifier « {hs.get('name', hs_id)} »",
        base_hs=hs,
        base_loc=loc_change.content if loc_change else loc,
        hs_id=hs_id,
        loc_id=loc_id,
        hs_change=None,
        loc_change=loc_change,
    )


@router.get("/etablissements/{finess}/offres/brouillons/{pk}")
def draft_form(request: Request, finess: str, pk: int) -> Response:
    org, _region, _person = _establishment(request, finess)
    services: Services = request.app.state.services
    hs_change, loc_change, place = _draft_pair(services, finess, pk)
    if hs_change.status != rules.BROUILLON:
        return RedirectResponse(f"/modifications/{pk}", status_code=303)
    values = offer_form.values_from(hs_change.content, place, services.terminology)
    built = offer_form.Built(hs_change.content, place or {})
    built.contact_rows = list(range(len(offer_form._ext(hs_change.content, offer_form.EXT_HS_CONTACT))))
    errors, warnings = offer_form.place_findings(_findings(services, hs_change, loc_change), built)
    return _form_page(
        request,
        finess=finess,
        org=org,
        values=values,
        action=_draft_url(finess, pk),
        heading=f"Brouillon n° {pk}",
        errors=errors,
        warnings=warnings,
        change=hs_change,
    )


@router.post("/etablissements/{finess}/offres/brouillons/{pk}")
async def draft_save(request: Request, finess: str, pk: int) -> Response:
    session = require_session(request)
    form = await request.form()
    check_csrf(session, form)
    org, region, person = _establishment(request, finess)
    services: Services = request.app.state.services
    hs_change, loc_change, place = _draft_pair(services, finess, pk)
    if hs_change.status != rules.BROUILLON:
        raise WebError(409, "Brouillon déjà soumis", f"La modification n° {pk} n'est plus un brouillon.")
    loc_id = next((ref_id(ref, "Location") for ref in hs_change.content.get("location") or []), None)
    return _save(
        request,
        finess=finess,
        org=org,
        region=region,
        person=person,
        values=offer_form.form_values(form),
        action=_draft_url(finess, pk),
        heading=f"Brouillon n° {pk}",
        base_hs=hs_change.content,
        base_loc=place,
        hs_id=hs_change.res_id,
        loc_id=loc_id,
        hs_change=hs_change,
        loc_change=loc_change,
    )


@router.post("/etablissements/{finess}/offres/{hs_id}/fermeture")
async def close_or_reopen(request: Request, finess: str, hs_id: str) -> Response:
    """Close (closing date, optional planned reopening) or reopen an offer: a draft like any other change."""
    session = require_session(request)
    form = await request.form()
    check_csrf(session, form)
    _org, _region, person = _establishment(request, finess)
    services: Services = request.app.state.services
    hs, _loc = _published(services, finess, hs_id)
    wf = services.workflow
    pending = _open_change(services, "HealthcareService", hs_id)
    if pending is not None and pending.status != rules.BROUILLON:
        raise WebError(409, "Modification en cours", f"Une modification de cette offre est en cours (n° {pending.pk}).")
    base = pending.content if pending else hs
    if form.get("action") == "rouvrir":
        content = closure.reopen(base)
        comment = "réouverture de l'offre"
    else:
        try:
            on = date.fromisoformat(str(form.get("date") or ""))
            back = str(form.get("reouverture") or "")
            reopening = date.fromisoformat(back) if back else None
        except ValueError as exc:
            raise WebError(400, "Date invalide", "Dates de fermeture et de réouverture au format AAAA-MM-JJ.") from exc
        if reopening is not None and reopening < on:
            raise WebError(400, "Date invalide", "La réouverture prévue doit suivre la fermeture.")
        content = closure.close(base, on, reopening)
        comment = f"fermeture de l'offre le {on.isoformat()}"
    try:
        if pending is not None:
            change = wf.edit_draft(person, pending.pk, content)
        else:
            change = wf.create_draft(person, finess, content, res_id=hs_id, comment=comment)
    except NotAllowed as exc:
        raise WebError(403, "Action refusée", exc.diagnostics) from exc
    except RorError as exc:
        raise error_from(exc) from exc
    return RedirectResponse(f"/modifications/{change.pk}", status_code=303)


@router.get("/api/web/nomenclatures/{value_set}")
def nos_suggestions(request: Request, value_set: str, q: str = "", limit: int = 15) -> JSONResponse:
    """Suggestions of the NOS pickers of the offer form: `[{code, label}]`, current codes only (the terminology
    service's expand), codes starting with or labels containing `q`."""
    require_session(request)
    name = offer_form.PICKERS.get(value_set)
    if name is None:
        raise WebError(404, "Nomenclature introuvable", f"{value_set} n'est pas proposé par les formulaires.")
    found = request.app.state.services.terminology.expand(
        offer_form.CODED[name][0], text=q or None, limit=max(1, min(limit, 50))
    )
    return JSONResponse([{"code": x.code, "label": x.display} for x in found])
