"""Quality engine and DGOS daily report on an already loaded database (default: the national demo that
`bench_search.py` leaves in /tmp/ror-bench-search.db): time of the full rule run (first run: every anomaly becomes
a RORTask; second run: idempotent, nothing rewritten), seconds per rule, and the daily report for today."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb, write_result
from ror.config import get_settings
from ror.db.engine import make_engine
from ror.directory.scope import Scope
from ror.quality.engine import run_quality
from ror.reporting.service import build_daily
from ror.services import Services


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database", default="sqlite:////tmp/ror-bench-search.db")
    ap.add_argument("--scope", default="national")
    args = ap.parse_args()
    services = Services(make_engine(args.database))
    scope = Scope.parse(args.scope)
    runs = []
    for label in ("first", "again"):
        run = run_quality(services.store, scope, get_settings().reference_data)
        runs.append(
            {
                "run": label,
                "seconds": round(run.seconds, 2),
                "tasks": vars(run.tasks),
                "rules": {
                    r.rule.id: {
                        "status": r.status,
                        "checked": len(r.checks),
                        "anomalies": len(r.anomalies),
                        "seconds": round(r.seconds, 2),
                    }
                    for r in run.results
                },
            }
        )
        print(f"quality {label}: {run.seconds:.1f} s, tasks {vars(run.tasks)}", flush=True)
        for r in run.results:
            print(f"  {r.rule.id:6} {r.status:15} {len(r.checks):>8} checked {len(r.anomalies):>7} anomalies "
                  f"{r.seconds:6.2f} s")  # fmt: skip
    t0 = time.perf_counter()
    report = build_daily(services.engine, services.geography, date.today(), args.scope)
    daily_s = time.perf_counter() - t0
    print(f"daily report ({args.scope}): {len(report.rows)} rows in {daily_s:.2f} s; peak RSS {peak_rss_mb():.0f} MB")
    write_result(
        "quality",
        {
            "database": args.database.split("@")[-1],
            "scope": args.scope,
            "runs": runs,
            "daily_report_seconds": round(daily_s, 2),
            "peak_rss_mb": round(peak_rss_mb()),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
