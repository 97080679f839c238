"""`ror report …` and `ror quality …`: the DGOS daily report and the data-quality engine (adapters of
ror.reporting and ror.quality, registered by cli.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Engine

from ror.db import migrate
from ror.db.database import get_engine

report_app = typer.Typer(help="Reports (DGOS daily critical-care report)", no_args_is_help=True)
quality_app = typer.Typer(help="Data-quality rules, anomalies (RORTask) and indicators", no_args_is_help=True)
console = Console(stderr=True)


def _engine() -> Engine:
    engine = get_engine()
    migrate.upgrade(engine)
    return engine


@report_app.command("daily")
def report_daily(
    date: Annotated[str, typer.Option("--date", help="YYYY-MM-DD: state at the end of that day (Paris)")],
    fmt: Annotated[str, typer.Option("--format", help="csv, xlsx or fhir (MeasureReport JSON)")] = "csv",
    scope: Annotated[str, typer.Option(help="national, region:53, departement:35")] = "national",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="file (default: standard output)")] = None,
) -> None:
    """DGOS daily report of critical-care beds from the capacity history."""
    import orjson

    from ror.geo.service import Geography
    from ror.reporting.formats import to_csv, to_measure_report, to_xlsx
    from ror.reporting.service import FORMATS, build_daily, parse_date

    if fmt not in FORMATS:
        console.print(f"[red]--format must be one of {', '.join(FORMATS)}[/red]")
        raise typer.Exit(2)
    t0 = time.perf_counter()
    engine = _engine()
    report = build_daily(engine, Geography(engine), parse_date(date), scope)
    if fmt == "csv":
        data = to_csv(report).encode()
    elif fmt == "xlsx":
        data = to_xlsx(report)
    else:
        data = orjson.dumps(to_measure_report(report), option=orjson.OPT_INDENT_2)
    if output is None:
        if fmt == "xlsx" and sys.stdout.isatty():
            console.print("[red]XLSX is binary: pass -o FILE[/red]")
            raise typer.Exit(2)
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)
    nation = report.get("nation", "FR")
    n = nation.figures if nation else None
    console.print(
        f"{report.day} ({report.scope}): {len(report.level('etablissement'))} establishments, "
        f"{n.installed if n else 0} installed, {n.available if n else 0} available, "
        f"{n.occupied if n else 0} occupied — {time.perf_counter() - t0:.2f} s"
    )


@quality_app.command("run")
def quality_run(
    scope: Annotated[str, typer.Option(help="national, region:53, departement:35")] = "national",
    rule: Annotated[list[str] | None, typer.Option("--rule", help="run only these rules (repeatable)")] = None,
) -> None:
    """Run the quality rules: anomalies as RORTask, weekly indicators, population status; prints counts per rule."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ror.config import get_settings
    from ror.directory.scope import Scope
    from ror.quality.engine import run_quality, select_rules
    from ror.quality.population import STATUS_LABELS
    from ror.services import Services

    services = Services(_engine())
    rules = select_rules(rule)
    with Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("quality rules", total=len(rules))

        def advance(rule_id: str) -> None:
            bar.update(task, advance=1, description=f"quality rules ({rule_id})")

        run = run_quality(
            services.store, Scope.parse(scope), get_settings().reference_data, rules=rule, progress=advance
        )
    table = Table(title=f"Quality rules — {run.scope}")
    for col in ("rule", "title", "status", "checked", "anomalies", "seconds"):
        table.add_column(col, justify="right" if col in ("checked", "anomalies", "seconds") else "left")
    for r in run.results:
        status = "ok" if r.status == "ok" else f"not applicable: {r.reason}"
        table.add_row(r.rule.id, r.rule.title, status, str(len(r.checks)), str(len(r.anomalies)), f"{r.seconds:.2f}")
    Console().print(table)
    counts: dict[str, int] = {}
    for e in run.population:
        counts[e.status] = counts.get(e.status, 0) + 1
    console.print(
        f"tasks: {run.tasks.opened} opened, {run.tasks.updated} updated, {run.tasks.kept} unchanged, "
        f"{run.tasks.closed} closed — population: "
        + ", ".join(f"{STATUS_LABELS[k]} {v}" for k, v in sorted(counts.items()))
        + f" — {run.indicator_rows} indicator rows — {run.seconds:.1f} s"
    )
