"""`make bench`: every benchmark, one after the other (never two heavy jobs at once on a 2-core machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ["bench_finess_import.py"],
    ["bench_capacity.py"],  # capacity feed over HTTP: its own databases (Bretagne demo), both backends
    ["capacity_instructions.py"],  # instructions per capacity write (callgrind), on the PostgreSQL one left behind
    ["bench_search.py", "--repeat", "20"],
    ["bench_export.py"],  # full $export + open data of the database bench_search.py leaves behind
    ["bench_quality.py"],  # full quality rule run (twice) + DGOS daily report on the same database
    ["bench_pages.py"],  # server time of the main web pages on a copy of the same database (300 ms target)
    ["bench_roundtrip.py"],  # $export → validate → load into an empty instance → compare, same database
]


def main() -> int:
    failed = 0
    for script in SCRIPTS:
        print(f"\n=== {' '.join(script)} ===", flush=True)
        failed |= subprocess.call([sys.executable, str(HERE / script[0]), *script[1:]])
    subprocess.call([sys.executable, str(HERE / "summary.py")])  # one table of the headline figures + JSON
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
