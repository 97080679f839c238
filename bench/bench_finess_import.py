"""FINESS import benchmark: the national flat file (95,333 establishments -> 237,750 resources) into a fresh SQLite
database and a fresh PostgreSQL database, then a re-import (idempotent: nothing written).

    python bench/bench_finess_import.py [--postgres URL | --postgres none] [--file PATH] [--backends sqlite,postgres]

Each backend runs in its own process (spawned), so that the peak RSS reported is the import's own. The geography
(COG + La Poste centroids) is loaded first and timed separately. The PostgreSQL database named in the URL
(default ror_bench) is dropped and created before, and dropped after. Prints one table; writes
bench/results/finess_import.json."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb, write_result
from ror.config import get_settings
from ror.db import migrate
from ror.db.engine import make_engine

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/ror_bench"
NATIONAL = Path("finess") / "finess_et_20210108_flat_from_fhir.csv.gz"


# --- databases ------------------------------------------------------------------------------------------------
def _libpq(url: str, database: str) -> str:
    """The libpq URL of another database on the same server (psycopg speaks libpq URLs, not SQLAlchemy ones)."""
    u = make_url(url).set(drivername="postgresql", database=database)
    return u.render_as_string(hide_password=False)


def recreate_postgres(url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(_libpq(url, "postgres"), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')


def drop_postgres(url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(_libpq(url, "postgres"), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- one backend (runs in a child process) --------------------------------------------------------------------
def run_backend(backend: str, url: str, source: str, geo_dir: str) -> dict[str, Any]:
    from ror.directory.finess import import_finess
    from ror.geo.loader import load_geography
    from ror.geo.service import Geography
    from ror.store import ResourceStore

    engine = make_engine(url)
    migrate.upgrade(engine)
    t0 = time.perf_counter()
    load_geography(engine, Path(geo_dir))
    geography = Geography(engine)
    geography.reload()
    geo_seconds = time.perf_counter() - t0
    store = ResourceStore(engine, region_of=geography.region_of_commune)
    t0 = time.perf_counter()
    first = import_finess(store, source, geography=geography)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = import_finess(store, source, geography=geography)
    reimport_seconds = time.perf_counter() - t0
    engine.dispose()
    written = first.eg.created + first.ej.created + first.locations.created
    return {
        "backend": backend,
        "geography_seconds": round(geo_seconds, 2),
        "rows": first.rows_read,
        "resources_written": written,
        "seconds": round(seconds, 2),
        "rows_per_s": round(first.rows_read / seconds),
        "resources_per_s": round(written / seconds),
        "reimport_seconds": round(reimport_seconds, 2),
        "reimport_written": second.eg.created + second.eg.updated + second.locations.created + second.ej.created,
        "peak_rss_mb": round(peak_rss_mb()),
        "errors": len(first.errors),
        "commune_match": first.commune_match,
    }


def _child(queue: Any, backend: str, url: str, source: str, geo_dir: str) -> None:
    queue.put(run_backend(backend, url, source, geo_dir))


def in_child_process(backend: str, url: str, source: str, geo_dir: str) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, backend, url, source, geo_dir))
    proc.start()
    result = queue.get()
    proc.join()
    return result


# --- main -----------------------------------------------------------------------------------------------------
def print_table(results: list[dict[str, Any]]) -> None:
    head = f"{'backend':<11} {'rows':>7} {'seconds':>8} {'rows/s':>7} {'re-import s':>11} {'peak RSS MB':>11}"
    print(head + f" {'geography s':>11}")
    for r in results:
        print(
            f"{r['backend']:<11} {r['rows']:>7} {r['seconds']:>8.1f} {r['rows_per_s']:>7} "
            f"{r['reimport_seconds']:>11.1f} {r['peak_rss_mb']:>11} {r['geography_seconds']:>11.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--postgres", default=DEFAULT_POSTGRES, help="database URL (created and dropped), or 'none'")
    ap.add_argument("--file", default="", help="FINESS file (default: the national flat file of the reference data)")
    ap.add_argument("--backends", default="sqlite,postgres")
    args = ap.parse_args()
    ref = get_settings().reference_data
    if ref is None:
        sys.exit("reference data not found: set ROR_REFERENCE_DATA")
    source = args.file or str(ref / NATIONAL)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.postgres == "none":
        backends = [b for b in backends if b != "postgres"]
    results: list[dict[str, Any]] = []
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory(prefix="ror-bench-finess-") as tmp:
            results.append(in_child_process("sqlite", f"sqlite:///{tmp}/ror.db", source, str(ref / "geo")))
    if "postgres" in backends:
        recreate_postgres(args.postgres)
        try:
            results.append(in_child_process("postgresql", args.postgres, source, str(ref / "geo")))
        finally:
            drop_postgres(args.postgres)
    print_table(results)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    data = {"file": source, "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine}
    path = write_result("finess_import", {**data, "results": results})
    print(f"written {path}")


if __name__ == "__main__":
    main()
