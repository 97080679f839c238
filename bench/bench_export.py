"""Full bulk export of an already loaded database (default: the national demo that `bench_search.py` leaves in
/tmp/ror-bench-search.db): time, resources/s, bytes and peak RSS of the ndjson export for profile 1 (content as
stored) and profile 0 (every line filtered), then of the open-data CSV extraction. Nothing is loaded here."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb, write_result
from ror.access.policy import Profile
from ror.db.engine import make_engine
from ror.export.opendata import write_opendata
from ror.export.request import EXPORT_TYPES, ExportRequest
from ror.export.runner import query_parser
from ror.export.stream import ExportWriter
from ror.services import Services


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def export_once(services: Services, profile: Profile, out: Path) -> dict[str, Any]:
    writer = ExportWriter(services.engine, query_parser(services))
    t0 = time.perf_counter()
    files, total = writer.write(ExportRequest(types=EXPORT_TYPES), profile, out, lambda _n: True)
    seconds = time.perf_counter() - t0
    return {
        "what": f"$export profile {int(profile)}",
        "resources": total,
        "files": len(files),
        "seconds": round(seconds, 2),
        "per_s": round(total / seconds) if seconds else None,
        "mb": round(_size(out) / 1e6, 1),
    }


def opendata_once(services: Services, out: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = write_opendata(services.engine, query_parser(services), out, date.today())
    seconds = time.perf_counter() - t0
    rows = sum(result.counts.values())
    return {
        "what": "open data CSV",
        "resources": rows,
        "files": len(list(out.iterdir())),
        "seconds": round(seconds, 2),
        "per_s": round(rows / seconds) if seconds else None,
        "mb": round(_size(out) / 1e6, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database", default="sqlite:////tmp/ror-bench-search.db")
    args = ap.parse_args()
    services = Services(make_engine(args.database))
    results = []
    with tempfile.TemporaryDirectory(prefix="ror-bench-export-") as tmp:
        results.append(export_once(services, Profile.ALL, Path(tmp) / "p1"))
        results.append(export_once(services, Profile.OPEN_DATA, Path(tmp) / "p0"))
        results.append(opendata_once(services, Path(tmp) / "opendata"))
    print(f"{'what':<20} {'resources':>10} {'files':>6} {'s':>8} {'res/s':>8} {'MB':>7}")
    for r in results:
        print(f"{r['what']:<20} {r['resources']:>10} {r['files']:>6} {r['seconds']:>8} {r['per_s']!s:>8} {r['mb']:>7}")
    print(f"peak RSS {peak_rss_mb():.0f} MB")
    write_result("export", {"database": args.database.split("@")[-1], "results": results})


if __name__ == "__main__":
    main()
