"""Administration (`/administration/…`) for national and regional administrators: people (list, create, disable,
change of role), API clients (create → secret shown once, disable, rotate), imports status (`import_run`), crisis
history and the audit log (filterable, paginated).

A regional administrator sees and manages only its région: the people attached to it (its région, or FINESS all
in it), the API clients whose granted establishments are all in it, the crises covering it and the audit events
about a resource of the région or made by one of its people. Every change is audited (`audit_event`)."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection, select
from starlette.concurrency import run_in_threadpool

from ror.access import audit
from ror.access.clients import Client, ClientRegistry
from ror.access.people import ROLES, Person, PersonRegistry
from ror.access.policy import Profile
from ror.capacity.crisis import CrisisRegistry
from ror.db.tables import import_run, resource
from ror.directory import ids
from ror.errors import RorError
from ror.web.app_errors import error_from, may_not_see
from ror.web.pages_crisis import covering
from ror.web.render import PARIS, render
from ror.web.session import WebError, check_csrf, remote_addr, require_session

router = APIRouter(include_in_schema=False)
ADMIN_ROLES = ("national_admin", "regional_admin")
PAGE = 50
PROFILE_LABELS = {
    0: "0 — données ouvertes",
    1: "1 — tout (niveau 3, régulation)",
    2: "2 — professionnels",
    3: "3 — médico-social",
    4: "4 — sans contacts ni données personnelles",
    5: "5 — lits installés seulement",
}
OUTCOMES = {"success": "réussi", "denied": "refusé", "error": "erreur"}
_FINESS = re.compile(r"[0-9][0-9AB][0-9]{7}")


def admin_session(request: Request) -> Any:
    session = require_session(request)
    if session.person.role not in ADMIN_ROLES:
        raise may_not_see(request)
    return session


def own_region(session: Any) -> str | None:
    """None for a national administrator (everything), the région of a regional one."""
    return session.person.region if session.person.role == "regional_admin" else None


def finess_regions(conn: Connection, finess: list[str] | tuple[str, ...]) -> dict[str, str | None]:
    """FINESS EG -> région of its Organization (None when unknown), one query."""
    by_id = {ids.eg_id(f): f for f in finess}
    out: dict[str, str | None] = dict.fromkeys(finess)
    if by_id:
        rows = conn.execute(
            select(resource.c.res_id, resource.c.region).where(
                resource.c.res_type == "Organization", resource.c.res_id.in_(sorted(by_id))
            )
        )
        for res_id, region in rows:
            out[by_id[res_id]] = region
    return out


def _split_finess(text: str) -> list[str]:
    items = [x for x in re.split(r"[\s,;]+", text.strip()) if x]
    for x in items:
        if not _FINESS.fullmatch(x):
            raise WebError(400, "Requête invalide", f"{x!r} n'est pas un numéro FINESS (9 caractères).")
    return items


def _all_in_region(conn: Connection, finess: list[str] | tuple[str, ...], region: str) -> bool:
    regions = finess_regions(conn, finess)
    return bool(finess) and all(r == region for r in regions.values())


def _person_in_scope(conn: Connection, p: Person, region: str | None) -> bool:
    if region is None:
        return True
    if p.role == "national_admin":
        return False
    return p.region == region or _all_in_region(conn, p.finess, region)


def _client_in_scope(conn: Connection, c: Client, region: str | None) -> bool:
    return region is None or _all_in_region(conn, c.feeds, region)


def _record(request: Request, session: Any, action: str, res_type: str, res_id: str, detail: str) -> None:
    audit.record(
        request.app.state.services.engine,
        actor_type="person",
        actor_id=session.person.subject,
        action=action,
        outcome="success",
        res_type=res_type,
        res_id=res_id[:64],
        remote_addr=remote_addr(request),
        detail=detail,
    )


def _deny(request: Request, session: Any, action: str, what: str) -> WebError:
    audit.record(
        request.app.state.services.engine,
        actor_type="person",
        actor_id=session.person.subject,
        action=action,
        outcome="denied",
        remote_addr=remote_addr(request),
        detail=f"outside the administrator's région: {what}"[:2000],
    )
    return WebError(403, "Accès refusé", f"{what} ne relève pas de votre région.")


# -- index -------------------------------------------------------------------------------------------------------
@router.get("/administration")
def index(request: Request) -> Response:
    admin_session(request)
    return RedirectResponse("/administration/personnes", status_code=303)


# -- people ------------------------------------------------------------------------------------------------------
def _people_page(request: Request, session: Any, *, message: str | None = None, secret: Any = None) -> Response:
    region = own_region(session)
    people = PersonRegistry(request.app.state.services.engine)
    with request.app.state.services.store.read_conn() as conn:
        shown = [p for p in people.list() if _person_in_scope(conn, p, region)]
    roles = {k: r.label for k, r in ROLES.items() if region is None or k != "national_admin"}
    return render(
        request,
        "admin_people.html",
        {
            "title": "Administration — personnes",
            "nav": "admin",
            "tab": "personnes",
            "people": shown,
            "roles": roles,
            "all_roles": {k: r.label for k, r in ROLES.items()},
            "region": region,
            "message": message or request.query_params.get("ok"),
            "secret": secret,
        },
    )


@router.get("/administration/personnes")
def people_page(request: Request) -> Response:
    return _people_page(request, admin_session(request))


def _role_fields(conn: Connection, session: Any, form: Any) -> tuple[str, list[str], str | None]:
    """(role, FINESS, région) from a form, within what the administrator may grant."""
    region = own_region(session)
    role = str(form.get("role", ""))
    if role not in ROLES:
        raise WebError(400, "Requête invalide", "Rôle inconnu.")
    finess = _split_finess(str(form.get("finess", "")))
    asked_region = str(form.get("region", "")).strip() or None
    if region is not None:
        if role == "national_admin":
            raise _deny_plain("Le rôle d'administrateur national")
        if finess and not _all_in_region(conn, finess, region):
            raise _deny_plain("Un des établissements")
        asked_region = region
    return role, finess, asked_region


def _deny_plain(what: str) -> WebError:
    return WebError(403, "Accès refusé", f"{what} ne relève pas de votre région.")


@router.post("/administration/personnes")
async def people_create(request: Request) -> Response:
    session = admin_session(request)
    form = await request.form()
    check_csrf(session, form)
    svc = request.app.state.services

    def create() -> tuple[Person, str]:
        with svc.store.read_conn() as conn:
            role, finess, region = _role_fields(conn, session, form)
        password = secrets.token_urlsafe(12)
        who = PersonRegistry(svc.engine).add(
            str(form.get("email", "")), str(form.get("name", "")), role, password, finess, region
        )
        _record(request, session, "person-create", "Person", who.email, f"role {role}")
        return who, password

    try:
        who, password = await run_in_threadpool(create)
    except RorError as exc:
        raise error_from(exc) from exc
    return _people_page(
        request, session, message=f"Compte {who.email} créé.", secret={"who": who.email, "value": password}
    )


@router.post("/administration/personnes/modifier")
async def people_change(request: Request) -> Response:
    session = admin_session(request)
    form = await request.form()
    check_csrf(session, form)
    svc = request.app.state.services
    email, op = str(form.get("email", "")), str(form.get("op", ""))

    def change() -> str:
        people = PersonRegistry(svc.engine)
        target = people.get(email)
        with svc.store.read_conn() as conn:
            if not _person_in_scope(conn, target, own_region(session)):
                raise _deny(request, session, "person-" + op, f"Le compte {target.email}")
            if op in ("desactiver", "activer"):
                if target.pk == session.person.pk:
                    raise WebError(400, "Requête invalide", "Vous ne pouvez pas désactiver votre propre compte.")
                people.set_active(target.email, op == "activer")
                _record(request, session, f"person-{op}", "Person", target.email, op)
                return f"Compte {target.email} {'activé' if op == 'activer' else 'désactivé'}."
            if op == "role":
                role, finess, region = _role_fields(conn, session, form)
                people.set_role(target.email, role, finess, region)
                _record(request, session, "person-role", "Person", target.email, f"{target.role} -> {role}")
                return f"Rôle de {target.email} : {ROLES[role].label}."
        raise WebError(400, "Requête invalide", f"Opération inconnue {op!r}.")

    try:
        done = await run_in_threadpool(change)
    except RorError as exc:
        raise error_from(exc) from exc
    return _people_page(request, session, message=done)


# -- API clients -------------------------------------------------------------------------------------------------
def _clients_page(request: Request, session: Any, *, message: str | None = None, secret: Any = None) -> Response:
    region = own_region(session)
    svc = request.app.state.services
    with svc.store.read_conn() as conn:
        shown = [c for c in ClientRegistry(svc.engine).list() if _client_in_scope(conn, c, region)]
    return render(
        request,
        "admin_clients.html",
        {
            "title": "Administration — clients de l'API",
            "nav": "admin",
            "tab": "clients",
            "clients": shown,
            "profiles": PROFILE_LABELS,
            "region": region,
            "message": message,
            "secret": secret,
        },
    )


@router.get("/administration/clients")
def clients_page(request: Request) -> Response:
    return _clients_page(request, admin_session(request))


@router.post("/administration/clients")
async def clients_create(request: Request) -> Response:
    session = admin_session(request)
    form = await request.form()
    check_csrf(session, form)
    svc = request.app.state.services
    profile = str(form.get("profile", ""))
    if not profile.isdigit() or int(profile) not in [p.value for p in Profile]:
        raise WebError(400, "Requête invalide", "Profil d'accès inconnu (0 à 5).")

    def create() -> Any:
        feeds = _split_finess(str(form.get("feeds", "")))
        region = own_region(session)
        with svc.store.read_conn() as conn:
            if region is not None and not _all_in_region(conn, feeds, region):
                raise _deny(request, session, "client-create", "Un client sans établissement de votre région")
        creds = ClientRegistry(svc.engine).add(str(form.get("name", "")).strip() or "?", int(profile), feeds)
        _record(request, session, "client-create", "Client", creds.client.client_id, f"profile {profile}")
        return creds

    try:
        creds = await run_in_threadpool(create)
    except RorError as exc:
        raise error_from(exc) from exc
    return _clients_page(
        request,
        session,
        message=f"Client {creds.client.name} créé.",
        secret={"who": creds.client.client_id, "value": creds.secret},
    )


@router.post("/administration/clients/modifier")
async def clients_change(request: Request) -> Response:
    session = admin_session(request)
    form = await request.form()
    check_csrf(session, form)
    svc = request.app.state.services
    client_id, op = str(form.get("client_id", "")), str(form.get("op", ""))

    def change() -> tuple[str, Any]:
        registry = ClientRegistry(svc.engine)
        client = registry.get(client_id)
        with svc.store.read_conn() as conn:
            if not _client_in_scope(conn, client, own_region(session)):
                raise _deny(request, session, "client-" + op, f"Le client {client.client_id}")
        if op in ("desactiver", "activer"):
            registry.set_active(client.client_id, op == "activer")
            _record(request, session, f"client-{op}", "Client", client.client_id, op)
            return f"Client {client.client_id} {'activé' if op == 'activer' else 'désactivé'}.", None
        if op == "renouveler":
            creds = registry.rotate(client.client_id)
            _record(request, session, "client-rotate", "Client", client.client_id, "secret rotated")
            return f"Nouveau secret pour {client.client_id}.", {"who": client.client_id, "value": creds.secret}
        raise WebError(400, "Requête invalide", f"Opération inconnue {op!r}.")

    try:
        done, secret = await run_in_threadpool(change)
    except RorError as exc:
        raise error_from(exc) from exc
    return _clients_page(request, session, message=done, secret=secret)


# -- imports, crises ---------------------------------------------------------------------------------------------
@router.get("/administration/imports")
def imports_page(request: Request) -> Response:
    admin_session(request)
    with request.app.state.services.store.read_conn() as conn:
        runs = conn.execute(select(import_run).order_by(import_run.c.started.desc()).limit(200)).all()
    return render(
        request,
        "admin_imports.html",
        {"title": "Administration — imports", "nav": "admin", "tab": "imports", "runs": runs},
    )


@router.get("/administration/crises")
def crises_page(request: Request) -> Response:
    session = admin_session(request)
    history = covering(request, CrisisRegistry(request.app.state.services.engine).history(), own_region(session))
    return render(
        request,
        "admin_crises.html",
        {"title": "Administration — crises", "nav": "admin", "tab": "crises", "crises": history},
    )


# -- audit log ---------------------------------------------------------------------------------------------------
def _date(value: str, field: str) -> datetime | None:
    if not value:
        return None
    try:
        local = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=PARIS)
    except ValueError as exc:
        raise WebError(400, "Requête invalide", f"Date {field} invalide : {value!r} (AAAA-MM-JJ).") from exc
    return local.astimezone(UTC).replace(tzinfo=None)


@router.get("/administration/journal")
def audit_page(request: Request) -> Response:
    session = admin_session(request)
    p = request.query_params
    until = _date(p.get("au", ""), "de fin")
    before = p.get("avant", "")
    query = audit.AuditQuery(
        since=_date(p.get("du", ""), "de début"),
        until=until + timedelta(days=1) if until else None,
        actor=p.get("acteur", "").strip() or None,
        action=p.get("action", "").strip() or None,
        outcome=p.get("resultat", "") or None,
        res_type=p.get("type", "").strip() or None,
        res_id=p.get("id", "").strip() or None,
        region=own_region(session),
        before=int(before) if before.isdigit() else None,
        limit=PAGE,
    )
    with request.app.state.services.store.read_conn() as conn:
        events, cursor = audit.search(conn, query)
    keep = {k: v for k, v in p.items() if k != "avant" and v}
    next_url = None
    if cursor is not None:
        next_url = "/administration/journal?" + urlencode({**keep, "avant": cursor})
    return render(
        request,
        "admin_audit.html",
        {
            "title": "Administration — journal d'audit",
            "nav": "admin",
            "tab": "journal",
            "events": events,
            "filters": keep,
            "outcomes": OUTCOMES,
            "next_url": next_url,
            "first_url": "/administration/journal" if before else None,
            "region": own_region(session),
        },
    )
