"""Shared helpers for the benchmark scripts: databases, timing, peak memory, result files."""

from __future__ import annotations

import json
import os
import resource as _resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def fresh_postgres(name: str) -> str:
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def peak_rss_mb() -> float:
    return _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Run fn `repeat` times; return each duration in milliseconds."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    p50 = statistics.median(s)
    p95 = s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]
    return p50, p95


def machine_speed() -> dict[str, Any]:
    """How fast this machine runs plain Python right now: CPU seconds of a fixed loop (best of three; 0.45 on a
    fast desktop core), the load average and the CPU time stolen by the hypervisor during the loop. The machines
    these benchmarks run on differ by 2x and more between sessions (same code, same data: the national FINESS
    import took 38 s on one, 60 s on another): every result carries this, so that figures of different runs
    can be compared."""
    best = float("inf")
    steal0 = _steal()
    for _ in range(3):
        t0 = time.process_time()
        sum(i * i for i in range(10**7))
        best = min(best, time.process_time() - t0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"reference_loop_s": round(best, 3), "load_1min": load, "steal_s": round(_steal() - steal0, 2)}


def _steal() -> float:
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def write_result(name: str, data: Any) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    if isinstance(data, dict) and "machine_speed" not in data:
        data = {**data, "machine_speed": machine_speed()}
    path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    return path
