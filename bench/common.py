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


def _proc_cpu(pid: int) -> tuple[float, str, int]:
    """(CPU seconds used, command name, parent pid) of one process, from /proc (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, "", 0
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), name, int(fields[1])


def cpu_by_role(server_pid: int | None) -> dict[str, float]:
    """CPU seconds used so far by the server (`server_pid` and its descendants: uvicorn's workers), PostgreSQL's
    processes and this process (the load generator): two readings around a phase give what each side spent on
    it, so that a throughput figure can be read as CPU per request on a machine shared by all three."""
    procs: dict[int, tuple[float, str, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            procs[int(entry.name)] = _proc_cpu(int(entry.name))
    server: set[int] = set()
    if server_pid is not None:
        server.add(server_pid)
        grew = True
        while grew:
            grew = False
            for pid, (_, _, ppid) in procs.items():
                if ppid in server and pid not in server:
                    server.add(pid)
                    grew = True
    workers = sorted(p for p in server if p != server_pid and p in procs)
    return {
        "server": sum(procs[p][0] for p in server if p in procs),
        **{f"worker{i}": procs[p][0] for i, p in enumerate(workers)},
        "postgres": sum(cpu for cpu, name, _ in procs.values() if name.startswith("postgres")),
        "client": sum(os.times()[:4]),
    }


def cpu_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """CPU milliseconds per request of each role between two `cpu_by_role` readings (`workerN`: each server
    worker process on its own — an uneven share says the connections went mostly to one worker)."""
    n = max(requests, 1)
    return {role: round((after.get(role, 0.0) - before[role]) * 1000 / n, 2) for role in before}


def write_result(name: str, data: Any) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    if isinstance(data, dict) and "machine_speed" not in data:
        data = {**data, "machine_speed": machine_speed()}
    path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    return path
