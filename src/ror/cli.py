"""`ror …` command line: database, reference data imports, demo data, server."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Engine, func, select

from ror.cli_exercise import exercise_app
from ror.cli_export import export_app
from ror.cli_pilotage import quality_app, report_app
from ror.cli_regional import subscriptions_app, urgences_app
from ror.config import get_settings
from ror.db import migrate
from ror.db.database import analyze, get_engine, resource_count
from ror.db.tables import code_system, geo_commune
from ror.directory.scope import Scope
from ror.errors import RorError
from ror.services import Services

app = typer.Typer(help="Open-source ROR — Répertoire de l'Offre et des Ressources en santé", no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic migrations)", no_args_is_help=True)
import_app = typer.Typer(help="Import reference data (NOS, geography, FINESS, SAE)", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
clients_app = typer.Typer(help="API clients (third-party programs): OAuth2 client credentials", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
users_app = typer.Typer(help="People (web application accounts): roles, passwords, disable", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(report_app, name="report")
app.add_typer(quality_app, name="quality")
app.add_typer(export_app, name="export")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(urgences_app, name="urgences")
app.add_typer(exercise_app, name="exercise")
console = Console(stderr=True)


def _engine() -> Engine:
    engine = get_engine()
    migrate.upgrade(engine)
    return engine


def _reference(sub: str, given: Path | None) -> Path:
    if given is not None:
        return given
    ref = get_settings().reference_data
    if ref is None or not (ref / sub).exists():
        console.print(f"[red]reference data not found: set ROR_REFERENCE_DATA or pass the path ({sub}/)[/red]")
        raise typer.Exit(2)
    return ref / sub


def _table_empty(engine: Engine, table: object) -> bool:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(table)).scalar_one()) == 0  # type: ignore[arg-type]


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    engine = get_engine()
    migrate.upgrade(engine)
    console.print(f"schema at revision {migrate.current_revision(engine)}")


@import_app.command("nos")
def import_nos(directory: Annotated[Path | None, typer.Argument(help="the nos/ folder")] = None) -> None:
    """Load NOS code systems and value sets (fsh-2026 > nos-2023 > smt-2023)."""
    from ror.terminology.loader import load_nos

    report = load_nos(_engine(), _reference("nos", directory), progress=True)
    console.print(report)


@import_app.command("geo")
def import_geo(directory: Annotated[Path | None, typer.Argument(help="the geo/ folder")] = None) -> None:
    """Load régions, départements, communes (INSEE COG 2026) and commune centroids."""
    from ror.geo.loader import load_geography

    report = load_geography(_engine(), _reference("geo", directory), progress=True)
    console.print(report)


@import_app.command("finess")
def import_finess_cmd(
    source: Annotated[str | None, typer.Argument(help="file (flat or etalab format, .gz ok) or URL")] = None,
    scope: Annotated[str, typer.Option(help="national, region:53, departement:35")] = "national",
) -> None:
    """Import FINESS establishments as EJ/EG Organizations and their address Locations (idempotent)."""
    from ror.directory.finess import import_finess

    src = source or str(_reference("finess", None) / "finess_et_20210108_flat_from_fhir.csv.gz")
    services = Services(_engine())
    _ensure_geography(services.engine)
    report = import_finess(services.store, src, scope=Scope.parse(scope), geography=services.geography, progress=True)
    analyze(services.engine)
    console.print(report)


@import_app.command("sae")
def import_sae_cmd(
    directory: Annotated[Path | None, typer.Argument(help="the capacity/ folder")] = None,
    scope: Annotated[str, typer.Option(help="national, region:53, departement:35")] = "national",
) -> None:
    """Import SAE installed beds as units (offres + Locations with installed capacity)."""
    from ror.directory.sae import import_sae

    services = Services(_engine())
    report = import_sae(services.store, _reference("capacity", directory), scope=Scope.parse(scope), progress=True)
    analyze(services.engine)
    console.print(report)


def _ensure_geography(engine: Engine) -> None:
    ref = get_settings().reference_data
    if ref is not None and (ref / "geo").is_dir() and _table_empty(engine, geo_commune):
        from ror.geo.loader import load_geography

        console.print(load_geography(engine, ref / "geo", progress=True))


def _ensure_terminology(engine: Engine) -> None:
    ref = get_settings().reference_data
    if ref is not None and (ref / "nos").is_dir() and _table_empty(engine, code_system):
        from ror.terminology.loader import load_nos

        console.print(load_nos(engine, ref / "nos", progress=True))


@app.command()
def demo(
    scope: Annotated[str, typer.Option(help="region:53 (Bretagne), departement:35, national")] = "region:53",
) -> None:
    """Load demo data: reference data, FINESS establishments, SAE units, generated offers and availability."""
    from ror.directory.demo import load_demo

    t0 = time.perf_counter()
    sc = Scope.parse(scope)
    engine = _engine()
    services = Services(engine)
    ref = get_settings().reference_data
    _ensure_terminology(engine)
    _ensure_geography(engine)
    if ref is not None and (ref / "finess").is_dir():
        from ror.directory.finess import import_finess

        src = ref / "finess" / "finess_et_20210108_flat_from_fhir.csv.gz"
        console.print(import_finess(services.store, src, scope=sc, geography=services.geography, progress=True))
    else:
        console.print("[yellow]no reference data: loading the built-in seed instead[/yellow]")
    console.print(load_demo(services.store, ref, scope=sc, progress=True))
    from ror.urgences.demo import load_urgences_demo

    console.print(load_urgences_demo(services.urgences, ref))  # emergency activity scaled from SAE passages
    analyze(engine)
    console.print(f"demo ready in {time.perf_counter() - t0:.1f} s — {resource_count(engine)} resources")


@app.command()
def setup() -> None:
    """Migrate the database; on an empty database load reference and demo data (used by `make run`)."""
    engine = _engine()
    if resource_count(engine) == 0:
        demo(scope=get_settings().demo_scope)
        _demo_person(engine)
    else:
        _ensure_terminology(engine)
        _ensure_geography(engine)
        console.print(f"database ready: {resource_count(engine)} resources")


DEMO_EMAIL = "demo@ror.invalid"


def _demo_person(engine: Engine) -> None:
    """On a freshly loaded demo database only: a national administrator for the web pages, with the password of
    ROR_DEMO_PASSWORD or a random one printed once (never stored in clear, never in the repository)."""
    import os
    import secrets

    from ror.access.people import PersonRegistry

    people = PersonRegistry(engine)
    if people.list():
        return
    password = os.environ.get("ROR_DEMO_PASSWORD") or secrets.token_urlsafe(12)
    people.add(DEMO_EMAIL, "Compte de démonstration", "national_admin", password)
    shown = "(from ROR_DEMO_PASSWORD)" if os.environ.get("ROR_DEMO_PASSWORD") else f"{password}   (shown once)"
    console.print(f"web demo account: {DEMO_EMAIL}  password: {shown}")


@app.command()
def reindex(
    res_type: Annotated[str | None, typer.Option("--type", help="only this resource type")] = None,
) -> None:
    """Rebuild the search-index rows of every live resource: needed after a change of the SearchParameter
    definitions (an update rewrites only the rows of the elements it changes)."""
    from rich.progress import Progress

    from ror.db.tables import resource

    engine = _engine()
    store = Services(engine).store
    with engine.connect() as c:
        q = select(func.count()).select_from(resource).where(resource.c.deleted.is_(False))
        total = c.execute(q if res_type is None else q.where(resource.c.res_type == res_type)).scalar_one()
    t0 = time.perf_counter()
    with Progress(console=console) as bar:
        task = bar.add_task("reindex", total=total)
        done = store.reindex(res_type, progress=lambda n: bar.advance(task, n))
    console.print(f"reindexed {done} resources in {time.perf_counter() - t0:.1f} s")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    workers: Annotated[int, typer.Option(help="worker processes (PostgreSQL only)")] = 1,
) -> None:
    """Serve the web application and the FHIR API (uvicorn)."""
    import os

    import uvicorn

    from ror.db.engine import is_sqlite

    settings = get_settings()
    _engine()
    if workers > 1 and is_sqlite(settings.database_url):
        console.print("[yellow]--workers > 1 needs PostgreSQL; serving with one worker on SQLite[/yellow]")
        workers = 1
    console.print(f"serving on http://{host or settings.host}:{port or settings.port}  (FHIR base /fhir)")
    uvicorn.run(
        "ror.server:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level="info",
        access_log=False,  # ror.fhir.ops logs every request (JSON, with its X-Request-Id)
        timeout_graceful_shutdown=int(os.environ.get("ROR_SHUTDOWN_TIMEOUT", "10")),  # open SSE streams end then
    )


def _print_credentials(creds: object, as_json: bool) -> None:
    from ror.access.clients import NewCredentials

    assert isinstance(creds, NewCredentials)
    c = creds.client
    data = {
        "client_id": c.client_id,
        "client_secret": creds.secret,
        "name": c.name,
        "profile": int(c.profile),
        "feeds": list(c.feeds),
    }
    if as_json:
        typer.echo(json.dumps(data))
    else:
        typer.echo(f"client_id:     {c.client_id}\nclient_secret: {creds.secret}   (shown once; store it now)")
        typer.echo(f"profile {int(c.profile)}, may write: {', '.join(c.feeds) or 'nothing'}")


@clients_app.command("add")
def clients_add(
    name: Annotated[str, typer.Option(help="who the client is")],
    profile: Annotated[int, typer.Option(help="access profile 0..5")],
    feeds: Annotated[list[str] | None, typer.Option("--feeds", help="FINESS EG the client may write")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a client; prints its client_id and its secret (shown once)."""
    from ror.access.clients import ClientRegistry

    _print_credentials(ClientRegistry(_engine()).add(name, profile, feeds or []), as_json)


@clients_app.command("list")
def clients_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List clients (never their secrets)."""
    from ror.access.clients import ClientRegistry

    rows = [
        {
            "client_id": c.client_id,
            "name": c.name,
            "profile": int(c.profile),
            "feeds": list(c.feeds),
            "active": c.active,
        }
        for c in ClientRegistry(_engine()).list()
    ]
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        for r in rows:
            typer.echo(
                f"{r['client_id']}  profile {r['profile']}  {'active' if r['active'] else 'DISABLED'}  "
                f"{r['name']}  feeds={','.join(r['feeds']) or '-'}"
            )


@clients_app.command("disable")
def clients_disable(client_id: str) -> None:
    """Disable a client (its tokens stop being issued; existing tokens expire within 15 minutes)."""
    from ror.access.clients import ClientRegistry

    ClientRegistry(_engine()).set_active(client_id, False)
    typer.echo(f"{client_id} disabled")


@clients_app.command("rotate")
def clients_rotate(client_id: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Give a client a new secret (the old one stops working at once)."""
    from ror.access.clients import ClientRegistry

    _print_credentials(ClientRegistry(_engine()).rotate(client_id), as_json)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return password


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Option(help="login (adresse électronique)")],
    name: Annotated[str, typer.Option(help="full name shown in the pages")],
    role: Annotated[
        str,
        typer.Option(
            help="national_admin, regional_admin, establishment_manager, unit_editor, regulator, viewer",
        ),
    ],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin")] = False,
    finess: Annotated[list[str] | None, typer.Option("--finess", help="FINESS EG the person may write")] = None,
    region: Annotated[str | None, typer.Option(help="INSEE region code (regional_admin)")] = None,
) -> None:
    """Create a person (password: 12 characters at least, argon2-hashed)."""
    from ror.access.people import PersonRegistry

    who = PersonRegistry(_engine()).add(email, name, role, _read_password(password_stdin), finess or [], region)
    typer.echo(f"{who.email} created: {who.role_info.label}, may write: {', '.join(who.finess) or '-'}")


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List people (never their passwords)."""
    from ror.access.people import PersonRegistry

    people = PersonRegistry(_engine()).list()
    rows = [
        {
            "email": p.email,
            "name": p.name,
            "role": p.role,
            "finess": list(p.finess),
            "region": p.region,
            "active": p.active,
        }
        for p in people
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        typer.echo(
            f"{r['email']}  {r['role']}  {'active' if r['active'] else 'DISABLED'}  {r['name']}  "
            f"finess={','.join(r['finess']) or '-'}  region={r['region'] or '-'}"
        )


@users_app.command("disable")
def users_disable(email: str) -> None:
    """Disable a person (their sessions end at once)."""
    from ror.access.people import PersonRegistry

    PersonRegistry(_engine()).set_active(email, False)
    typer.echo(f"{email} disabled")


crisis_app = typer.Typer(help="Crisis mode (Plan blanc / SSE, PMIE)", no_args_is_help=True)
app.add_typer(crisis_app, name="crisis")


@crisis_app.command("declare")
def crisis_declare(
    by: Annotated[str, typer.Option(help="who declares (name / service)")],
    crisis_type: Annotated[str, typer.Option("--type", help="TRE_R336: 01 PMIE, 02 SSE (Plan blanc)")] = "02",
    region: Annotated[str | None, typer.Option(help="INSEE region code")] = None,
    departement: Annotated[list[str] | None, typer.Option(help="département code (repeatable)")] = None,
    freshness: Annotated[int, typer.Option(help="minutes after which availability is stale")] = 60,
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Declare a crisis for a région or départements (tightens freshness, expects supplementary capacity)."""
    from ror.capacity.crisis import CrisisRegistry

    kind, codes = ("region", [region]) if region else ("departement", departement or [])
    cr = CrisisRegistry(_engine()).declare(crisis_type, kind, codes, by, reason=reason, freshness_minutes=freshness)
    typer.echo(json.dumps(cr.as_json(), ensure_ascii=False))


@crisis_app.command("end")
def crisis_end(crisis_id: int, by: Annotated[str, typer.Option()]) -> None:
    """End a crisis (kept in the history)."""
    from ror.capacity.crisis import CrisisRegistry

    typer.echo(json.dumps(CrisisRegistry(_engine()).end(crisis_id, by).as_json(), ensure_ascii=False))


@crisis_app.command("list")
def crisis_list() -> None:
    """Crisis history, newest first."""
    from ror.capacity.crisis import CrisisRegistry

    for cr in CrisisRegistry(_engine()).history():
        typer.echo(json.dumps(cr.as_json(), ensure_ascii=False))


def main() -> None:
    try:
        app()
    except RorError as exc:
        console.print(f"[red]{exc.diagnostics}[/red]")
        sys.exit(2)


if __name__ == "__main__":
    main()
