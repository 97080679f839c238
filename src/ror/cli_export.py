"""`ror export …` commands: the open-data extraction (public view as CSV)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from ror.config import get_settings
from ror.db import migrate
from ror.db.database import get_engine
from ror.export.opendata import write_opendata
from ror.export.runner import query_parser
from ror.services import Services

export_app = typer.Typer(help="Exports: open data (public view as CSV)", no_args_is_help=True)


@export_app.command("opendata")
def opendata(
    directory: Annotated[
        Path | None,
        typer.Argument(help="output folder (default: ROR_EXPORT_DIR/opendata/<date>, served by the web page)"),
    ] = None,
    on: Annotated[str | None, typer.Option("--date", help="extraction date written in metadata (YYYY-MM-DD)")] = None,
) -> None:
    """Write structures.csv, offres.csv, lieux.csv, dictionnaire.csv, README.md and metadata.json (profile 0)."""
    engine = get_engine()
    migrate.upgrade(engine)
    day = date.fromisoformat(on) if on else date.today()
    target = directory or get_settings().export_dir / "opendata" / day.isoformat()
    result = write_opendata(engine, query_parser(Services(engine)), target, day)
    counts = ", ".join(f"{name} {n}" for name, n in result.counts.items())
    typer.echo(f"open data of {day.isoformat()} written to {result.directory}: {counts}")
