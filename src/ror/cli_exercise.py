"""`ror exercise …`: the crisis exercise sandbox (adapter of ror.exercise, registered by cli.py) — replay a
historical surge into a separate database so crisis cells train on the dashboard and SAMU on search
(docs/exercise.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from ror.capacity.crisis import CrisisRegistry
from ror.config import get_settings
from ror.db.engine import make_engine
from ror.directory.scope import Scope
from ror.errors import RorError
from ror.exercise.database import DEFAULT_URL, check_url, prepare
from ror.exercise.plan import DEFAULT_FRACTION, ReplayPlan, build_plan
from ror.exercise.runner import (
    RUNNING,
    ExerciseRunner,
    StepProgress,
    is_exercise_database,
    latest_run,
    parse_speed,
    request_stop,
    speed_label,
)
from ror.exercise.scenario import Curves, Scenario, get_scenario, load_curves
from ror.exercise.units import national_scale, units_from_database, units_from_sae
from ror.services import Services

exercise_app = typer.Typer(
    help="Exercice de crise : rejouer une vague historique dans une base séparée (docs/exercise.md)",
    no_args_is_help=True,
)
console = Console(stderr=True)
DATABASE_HELP = f"exercise database URL (default {DEFAULT_URL}; never ROR_DATABASE_URL)"


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except RorError as exc:
        console.print(f"[red]{exc.diagnostics}[/red]")
        raise typer.Exit(2) from None


def _url(database: str | None) -> str:
    return check_url(database or DEFAULT_URL, get_settings().database_url)


def _load_demo(url: str, scope: Scope) -> None:
    """`ror setup` on the exercise database: reference data, FINESS, SAE units and demo data of the scope, and the
    demo account (the very code `make run` uses; a child process so that its settings are the exercise's)."""
    env = {**os.environ, "ROR_DATABASE_URL": url, "ROR_DEMO_SCOPE": str(scope)}
    console.print(f"chargement des données de démonstration [{scope}] dans la base d'exercice…")
    done = subprocess.run([sys.executable, "-m", "ror.cli", "setup"], env=env, check=False)
    if done.returncode != 0:
        console.print("[red]échec du chargement des données de démonstration[/red]")
        raise typer.Exit(done.returncode or 1)


def _scale(scale: str, fraction: float, scenario: Scenario, curves: Curves, scope: Scope) -> tuple[float | None, str]:
    """(k or None for the perimeter's own, basis label)."""
    s = scale.strip().lower()
    if s in ("perimetre", "périmètre", "scope"):
        return None, "périmètre"
    if s == "national":
        if scope.kind == "national":
            return None, "national"
        ref = get_settings().reference_data
        if ref is None:
            console.print("[red]--scale national needs the SAE (ROR_REFERENCE_DATA)[/red]")
            raise typer.Exit(2)
        k, installed = national_scale(ref, curves, scenario.activity, fraction)
        return k, f"national ({installed} lits installés, pic {curves.peak()[1]} le {curves.peak()[0]})"
    try:
        return float(s), "donné"
    except ValueError:
        console.print("[red]--scale: national, perimetre or a number[/red]")
        raise typer.Exit(2) from None


def _plan(
    scenario: Scenario,
    curves: Curves,
    units: list[Any],
    scope: Scope,
    *,
    start: datetime | None,
    until: datetime | None,
    steps_per_day: int,
    scale: str,
    fraction: float,
) -> ReplayPlan:
    """The replay plan (its build time printed)."""
    t0 = time.perf_counter()
    k, basis = _scale(scale, fraction, scenario, curves, scope)
    plan = build_plan(
        curves,
        units,
        scenario=scenario.key,
        start=start.date() if start else None,
        until=until.date() if until else None,
        steps_per_day=steps_per_day,
        fraction=fraction,
        scale=k,
        scale_basis=basis,
    )
    if basis == "national" and k is None:  # national scope: the perimeter is the nation
        plan = replace(plan, scale_basis="national")
    console.print(f"plan construit en {time.perf_counter() - t0:.2f} s")
    return plan


def _summary(plan: ReplayPlan, scenario: Scenario, speed: float | None) -> None:
    peak = plan.peak_step()
    over = sum(1 for s in plan.states(peak).values() if s.supplementary)
    step_s = (plan.times[1] - plan.times[0]).total_seconds() if plan.steps > 1 else 0.0
    duration = "" if speed is None else f", durée réelle ≈ {step_s * (plan.steps - 1) / speed / 60:.0f} min"
    console.print(
        f"[bold]EXERCICE[/bold] {scenario.title}\n"
        f"  {len(plan.units)} unités, {plan.installed} lits installés ({len(plan.departements)} départements)\n"
        f"  facteur d'échelle k = {plan.scale:.4f} ({plan.scale_basis})"
        + (f", fraction {plan.fraction}" if plan.fraction else "")
        + f"\n  pic du recensement du périmètre : {plan.peak_census} patients le {plan.peak_day} ; maximum du rejeu : "
        f"{plan.total(peak)} lits occupés le {plan.times[peak]:%Y-%m-%d %H:%M} ({over} unités en lits "
        "supplémentaires)\n"
        f"  {plan.steps} pas de {plan.times[0]:%Y-%m-%d} à {plan.times[-1]:%Y-%m-%d}, vitesse "
        f"{speed_label(speed)}{duration}"
    )


@exercise_app.command("start")
def start(
    scenario: Annotated[str, typer.Option(help="scenario (src/ror/exercise/scenarios.json)")] = "covid-2020-spring",
    speed: Annotated[str, typer.Option(help="60x: one simulated hour a minute; max: as fast as possible")] = "60x",
    database: Annotated[str | None, typer.Option(help=DATABASE_HELP)] = None,
    from_: Annotated[datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="first day")] = None,
    until: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"], help="last day")] = None,
    scope: Annotated[
        str | None, typer.Option(help="region:53, departement:35, national (default ROR_DEMO_SCOPE)")
    ] = None,
    steps_per_day: Annotated[int, typer.Option(help="simulated steps per day (24: hourly)")] = 24,
    scale: Annotated[str, typer.Option(help="national, perimetre or a number")] = "national",
    fraction: Annotated[float, typer.Option(help="share of installed beds the peak occupies")] = DEFAULT_FRACTION,
    freshness: Annotated[int, typer.Option(help="crisis freshness interval, minutes")] = 60,
    reset: Annotated[bool, typer.Option("--reset", help="empty the exercise database and reload the demo")] = False,
    serve: Annotated[
        bool, typer.Option("--serve", help="also serve the pages and the API of the exercise database (live on SQLite)")
    ] = False,
    port: Annotated[int | None, typer.Option(help="port of --serve (default ROR_PORT + 1)")] = None,
) -> None:
    """Start an exercise: separate database, demo data of the scope, crisis declared, then the replay."""
    with _errors():
        url = _url(database)
        sc = get_scenario(scenario)
        pace = parse_speed(speed)
        settings = get_settings()
        territory = Scope.parse(scope or settings.demo_scope)
        curves = load_curves(sc, settings.reference_data)
        engine, fresh = prepare(url, reset=reset)
        found = latest_run(engine)
        if found and found[1].get("state") == RUNNING and not CrisisRegistry(engine).get(found[1]["crisis"]).ended_at:
            console.print("[red]un exercice est déjà en cours sur cette base (ror exercise stop)[/red]")
            raise typer.Exit(2)
        if fresh:
            engine.dispose()
            _load_demo(url, territory)
            engine = make_engine(url)
        selection = units_from_database(engine, territory, sc.activity)
        if selection.orphans:
            console.print(
                f"[yellow]{len(selection.orphans)} unités sans établissement (EG) connu : non rejouées[/yellow]"
            )
        plan = _plan(
            sc,
            curves,
            selection.units,
            territory,
            start=from_,
            until=until,
            steps_per_day=steps_per_day,
            scale=scale,
            fraction=fraction,
        )
        _summary(plan, sc, pace)
        with _served(engine, serve, port):
            result = _replay(engine, plan, sc, territory, pace, freshness)
            _report(result, plan)
            if serve:
                console.print("rejeu fini ; le serveur de l'exercice reste ouvert (Ctrl-C pour l'arrêter)")
                _wait_for_interrupt()


def _report(result: Any, plan: ReplayPlan) -> None:
    console.print(
        f"exercice {result.state} : {result.steps_done}/{plan.steps} pas, {result.writes} écritures "
        f"({result.writes_per_second:.0f}/s), {result.errors} refus, en {result.seconds:.1f} s ; "
        f"crise {result.crisis.id} terminée"
    )
    for failure in result.failures:
        console.print(f"  [yellow]{failure}[/yellow]")


@contextmanager
def _served(engine: Engine, serve: bool, port: int | None) -> Iterator[None]:
    """With --serve: the web application and the FHIR API of the exercise database in this process (a thread), on
    the very engine the replay writes through — so that on SQLite, whose live stream is published in-process, the
    dashboards and the SSE stream follow the replay live (on PostgreSQL any `ror serve` does, through NOTIFY)."""
    if not serve:
        yield
        return
    import threading

    import uvicorn

    from ror.server import create_app

    settings = get_settings()
    config = uvicorn.Config(
        create_app(engine), host=settings.host, port=port or settings.port + 1, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ror-exercise-serve", daemon=True)
    thread.start()
    console.print(f"EXERCICE servi sur http://{settings.host}:{config.port} (tableau de bord, recherche, API FHIR)")
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return


def _replay(engine: Engine, plan: ReplayPlan, sc: Scenario, scope: Scope, pace: float | None, freshness: int) -> Any:
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    )
    with bar:
        task = bar.add_task("rejeu", total=plan.steps, info="")

        def on_step(p: StepProgress) -> None:
            bar.update(
                task,
                completed=p.step,
                info=f"{p.simulated:%d/%m/%Y %H:%M} — {p.planned_total} lits occupés, {p.writes} écritures",
            )

        return ExerciseRunner(Services(engine)).run(
            plan, sc, scope, speed=pace, on_step=on_step, freshness_minutes=freshness
        )


def _engine_of(database: str | None) -> Engine:
    engine = make_engine(_url(database))
    if not is_exercise_database(engine):
        console.print("[red]ce n'est pas une base d'exercice (aucun exercice n'y a été lancé)[/red]")
        raise typer.Exit(2)
    return engine


@exercise_app.command("status")
def status(
    database: Annotated[str | None, typer.Option(help=DATABASE_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """State of the latest exercise of the database: step, simulated time, writes, crisis."""
    with _errors():
        engine = _engine_of(database)
        found = latest_run(engine)
        if found is None:
            typer.echo(json.dumps({"state": "aucun exercice"}) if as_json else "aucun exercice lancé")
            return
        state = found[1]
        crisis = CrisisRegistry(engine).get(int(state["crisis"]))
        state["crisis_active"] = crisis.ended_at is None
    if as_json:
        typer.echo(json.dumps(state, ensure_ascii=False))
        return
    typer.echo(
        f"exercice {state['scenario']} [{state['scope']}] {state['state']} — pas {state['step']}/{state['steps']}, "
        f"situation du {state['simulated']}, {state['planned_total']} lits occupés prévus, {state['writes']} "
        f"écritures, {state['errors']} refus ; vitesse {state['speed']}, k = {state['scale']:.4f} ; crise "
        f"{state['crisis']} {'active' if state['crisis_active'] else 'terminée'} ; dernier signe {state['heartbeat']}"
    )


@exercise_app.command("stop")
def stop(database: Annotated[str | None, typer.Option(help=DATABASE_HELP)] = None) -> None:
    """Stop the running exercise (ends its crisis; the runner stops within a second)."""
    with _errors():
        state = request_stop(_engine_of(database))
    if state is None:
        typer.echo("aucun exercice en cours")
        return
    typer.echo(f"arrêt demandé : crise {state['crisis']} terminée, le rejeu s'arrête au prochain pas")


@exercise_app.command("plan")
def plan_cmd(
    scenario: Annotated[str, typer.Option()] = "covid-2020-spring",
    scope: Annotated[str, typer.Option(help="region:53, departement:35, national")] = "national",
    from_: Annotated[datetime | None, typer.Option("--from", formats=["%Y-%m-%d"])] = None,
    until: Annotated[datetime | None, typer.Option(formats=["%Y-%m-%d"])] = None,
    steps_per_day: Annotated[int, typer.Option()] = 24,
    scale: Annotated[str, typer.Option(help="national, perimetre or a number")] = "national",
    fraction: Annotated[float, typer.Option()] = DEFAULT_FRACTION,
) -> None:
    """Dry run without a database: the plan of a scope on the SAE installed beds (scale, peak, overflows)."""
    with _errors():
        sc = get_scenario(scenario)
        ref = get_settings().reference_data
        curves = load_curves(sc, ref)
        territory = Scope.parse(scope)
        assert ref is not None
        units = units_from_sae(ref, territory, sc.activity)
        plan = _plan(
            sc,
            curves,
            units,
            territory,
            start=from_,
            until=until,
            steps_per_day=steps_per_day,
            scale=scale,
            fraction=fraction,
        )
    _summary(plan, sc, None)
    peak = plan.peak_step()
    rows = sorted(
        ((d, plan.departement_total(peak, d)) for d in plan.departements),
        key=lambda r: -r[1] / max(1, sum(u.installed for u in plan.units if u.departement == r[0])),
    )
    for d, occupied in rows[:10]:
        beds = sum(u.installed for u in plan.units if u.departement == d)
        typer.echo(f"  {d}: {occupied} occupés / {beds} installés au pic ({occupied / beds:.0%})")
