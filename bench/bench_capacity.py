"""Sustained capacity feed over real HTTP against a live server (docs/capacity.md; issue 4 targets: ≥ 300 single
PATCH/s and ≥ 1,000 indicator updates/s counting bulk feeds, PostgreSQL, 2 workers).

For each backend: a fresh database loaded with the Bretagne demo (`ror demo --scope region:53`), a uvicorn server
spawned as a subprocess on a free port (`uvicorn ror.server:create_app --factory`, as `ror serve` without the access
log; 2 workers on PostgreSQL, 1 on SQLite), a feeder client of profile 1 granted every establishment, then:

1. single PATCH: `--clients` concurrent keep-alive clients (`lean_http`; httpx with `--client httpx`) send
   FHIRPath Patches (`replace` of a unit's current availability, a new number each time) to random units for
   `--seconds` → requests/s, latency p50/p95; meanwhile
   one SSE subscriber on /api/capacity/stream matches every event to its write → write-to-delivery p50/p95
   (from the moment the PATCH was sent, and from the moment its 200 came back);
2. bulk feed: the same clients send `Bundle` batches of `--batch` PATCH entries (distinct units) for `--seconds`
   → indicator updates/s (entries answered 200), bundle latency p50/p95 — first with random units (concurrent
   bundles overlap and wait on each other's row locks: the worst case), then with each client feeding only its
   own establishments' units, as hospital software does ("own units").

    .venv/bin/python bench/bench_capacity.py [--backend sqlite|postgresql|both] [--seconds 15] [--clients 16]
        [--skip-load]

Each phase also prints the CPU milliseconds per request spent by the server's processes, PostgreSQL and the load
generator (`cpu_ms_per_…`, from /proc): on a 2-core machine shared by all three, the throughput is their sum.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sqlalchemy import and_, select

from common import cpu_by_role, cpu_per_request, fresh_postgres, percentiles, write_result
from lean_http import LeanClient
from ror.access.clients import ClientRegistry
from ror.capacity import patch
from ror.db.engine import make_engine
from ror.db.tables import capacity, idx_reference, resource
from ror.directory import ids

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SECRET = "bench-capacity-secret-key-0123456789-abcdefghijklmnop"


@dataclass(frozen=True)
class Unit:
    location_id: str
    nature: str
    gender: str  # '' when the availability has no gender
    establishment: str = ""  # the EG (Organization id) the unit belongs to


def _cc(url: str, system: str, code: str) -> dict[str, Any]:
    return {"url": url, "valueCodeableConcept": {"coding": [{"system": system, "code": code}]}}


def patch_body(unit: Unit, nb: int) -> dict[str, Any]:
    """FHIRPath Patch `replace` of the unit's current availability (docs/ror-fhir-api.md §3.4)."""
    codes = {"capacityType": unit.nature, "capacityStatus": "02", "temporalityCapacity": "01"}
    if unit.gender:
        codes["genderCapacityAvailable"] = unit.gender
    codes["temporaryAssignement"] = "01"
    conds = "".join(
        f" and extension.where(url='{u}' and valueCodeableConcept.coding[0].code='{c}')" for u, c in codes.items()
    )
    ext = [
        _cc("capacityType", ids.TRE_R329, unit.nature),
        _cc("capacityStatus", ids.TRE_R330, "02"),
        _cc("temporalityCapacity", ids.TRE_R331, "01"),
        {"url": "nbCapacity", "valueInteger": nb},
        _cc("capacitySourceType", ids.TRE_R335, "02"),
        {"url": "capacityUpdateDate", "valueDateTime": datetime.now(UTC).replace(microsecond=0).isoformat()},
        _cc("temporaryAssignement", ids.TRE_R337, "01"),
    ]
    if unit.gender:
        ext.append(_cc("genderCapacityAvailable", ids.TRE_R332, unit.gender))
    path = f"Location.extension.where(url='{ids.EXT_CAPACITY}'{conds})"
    return patch.parameters(patch.operation("replace", path, [{"url": ids.EXT_CAPACITY, "extension": ext}]))


# --- setup ----------------------------------------------------------------------------------------------------
def load_demo(url: str) -> float:
    env = {**os.environ, "ROR_DATABASE_URL": url}
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(Path(PYTHON).parent / "ror"), "demo", "--scope", "region:53"], env=env, cwd=ROOT, capture_output=True
    )
    if done.returncode:
        raise RuntimeError(f"ror demo failed: {done.stderr.decode()[-2000:]}")
    return time.perf_counter() - t0


def units_and_client(url: str) -> tuple[list[Unit], str, str]:
    """Units with a current availability indicator (one per Location) and a feeder granted every establishment."""
    engine = make_engine(url)
    c, r = capacity.c, idx_reference.c
    with engine.connect() as conn:
        orgs = set(
            conn.execute(
                select(resource.c.res_id).where(resource.c.res_type == "Organization", resource.c.res_id.like("eg-%"))
            ).scalars()
        )
        rows = conn.execute(
            select(c.location_id, c.nature, c.gender, r.target_id)
            .join(idx_reference, and_(r.resource_pk == c.location_pk, r.param == "organization"))
            .where(c.status == "02", c.temporality == "01", c.temporary_assignment == "01")
            .order_by(c.location_id, c.gender)
        ).all()
    feeds = sorted({o[3:] for o in orgs if len(o) == 12})
    units: dict[str, Unit] = {}
    for loc, nature, gender, org_id in rows:
        if org_id in orgs:  # units whose establishment is in the FINESS extract (the feeder may write them)
            units.setdefault(loc, Unit(loc, nature, gender, org_id))
    creds = ClientRegistry(engine).add("bench feeder", 1, feeds)
    engine.dispose()
    return list(units.values()), creds.client.client_id, creds.secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, workers: int, port: int) -> subprocess.Popen[bytes]:
    # a feeder benchmark is far above the default per-client write quota (ROR_WRITE_RATE 300/60 s): lift it
    env = {**os.environ, "ROR_DATABASE_URL": url, "ROR_SECRET_KEY": SECRET, "ROR_WRITE_RATE": "1000000/60"}
    cmd = [PYTHON, "-m", "uvicorn", "ror.server:create_app", "--factory", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("the server did not start within 60 s")


# --- load -----------------------------------------------------------------------------------------------------
CLIENT = "lean"  # --client: the load generator's HTTP client
# The clients of a phase connect one after the other, CONNECT_GAP_S apart, as feeders do — not in the same
# millisecond: uvicorn's workers share one listening socket and asyncio accepts every pending connection at once,
# so a burst of 16 simultaneous connections often went to one worker (per-worker CPU: 2.14 vs 0.02 ms per
# update), halving the throughput of the whole phase for the rest of it (keep-alive connections stay put).
CONNECT_GAP_S = 0.025


class _HttpxClient:
    """httpx behind the `LeanClient` interface (`--client httpx`: the generator of the earlier figures)."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self._client = httpx.AsyncClient(base_url=base, headers=headers, timeout=120)

    async def __aenter__(self) -> _HttpxClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def request(self, method: str, path: str, body: bytes = b"") -> httpx.Response:
        return await self._client.request(method, path, content=body)


def client_for(base: str, headers: dict[str, str]) -> Any:
    """The load generator's client: `LeanClient` (default: little CPU taken from the server it shares the
    machine with) or httpx."""
    if CLIENT == "httpx":
        return _HttpxClient(base, headers)
    url = httpx.URL(base)
    return LeanClient(url.host, url.port or 80, headers)


@dataclass
class Phase:
    requests: int = 0
    updates: int = 0  # indicator updates accepted (200)
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)


@dataclass
class SseProbe:
    sent: dict[tuple[str, int], float] = field(default_factory=dict)  # (location, nb) -> perf_counter at send
    answered: dict[tuple[str, int], float] = field(default_factory=dict)  # … at the 200 response
    after_send_ms: list[float] = field(default_factory=list)
    after_response_ms: list[float] = field(default_factory=list)
    early: dict[tuple[str, int], float] = field(default_factory=dict)  # events seen before the response
    received: int = 0


async def sse_listener(base: str, headers: dict[str, str], probe: SseProbe, ready: asyncio.Event) -> None:
    async with (
        httpx.AsyncClient(base_url=base, headers=headers, timeout=None) as client,
        client.stream("GET", "/api/capacity/stream") as r,
    ):
        async for line in r.aiter_lines():
            if line.startswith(": connected"):
                ready.set()
            if not line.startswith("data: "):
                continue
            now = time.perf_counter()
            change = orjson.loads(line[6:])
            key = (change.get("location"), change.get("after"))
            probe.received += 1
            if key in probe.sent:
                probe.after_send_ms.append((now - probe.sent[key]) * 1000)
                if key in probe.answered:
                    probe.after_response_ms.append((now - probe.answered[key]) * 1000)
                else:
                    probe.early[key] = now


async def single_patches(
    base: str, headers: dict[str, str], units: list[Unit], clients: int, seconds: float, probe: SseProbe
) -> Phase:
    phase = Phase()
    counter = itertools.count(1000)
    stop = time.perf_counter() + seconds

    async def worker(seed: int) -> None:
        rnd = random.Random(seed)
        await asyncio.sleep(seed * CONNECT_GAP_S)
        async with client_for(base, headers) as client:
            while time.perf_counter() < stop:
                unit = rnd.choice(units)
                nb = next(counter)
                body = orjson.dumps(patch_body(unit, nb))
                t0 = time.perf_counter()
                probe.sent[(unit.location_id, nb)] = t0
                r = await client.request("PATCH", f"/fhir/Location/{unit.location_id}", body)
                t1 = time.perf_counter()
                phase.requests += 1
                phase.latencies_ms.append((t1 - t0) * 1000)
                if r.status_code == 200:
                    phase.updates += 1
                    probe.answered[(unit.location_id, nb)] = t1
                    seen = probe.early.pop((unit.location_id, nb), None)
                    if seen is not None:
                        probe.after_response_ms.append((seen - t1) * 1000)  # delivered before the response
                else:
                    phase.errors[str(r.status_code)] = phase.errors.get(str(r.status_code), 0) + 1

    await asyncio.gather(*(worker(i) for i in range(clients)))
    return phase


def by_feeder(units: list[Unit], clients: int) -> list[list[Unit]]:
    """The units split between `clients` feeders by establishment (each hospital software feeds its own EGs:
    establishments dealt round-robin, largest first)."""
    groups: dict[str, list[Unit]] = {}
    for u in units:
        groups.setdefault(u.establishment, []).append(u)
    shares: list[list[Unit]] = [[] for _ in range(clients)]
    for i, (_, members) in enumerate(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))):
        (shares[i] if i < clients else min(shares, key=len)).extend(members)
    return shares


async def batches(
    base: str,
    headers: dict[str, str],
    units: list[Unit],
    clients: int,
    seconds: float,
    size: int,
    partitioned: bool = False,
) -> Phase:
    """Bundles of `size` PATCH entries: random units (bundles of concurrent clients overlap and wait on each
    other's row locks: the worst case), or with `partitioned` each client feeding its own establishments."""
    phase = Phase()
    counter = itertools.count(10_000_000)
    stop = time.perf_counter() + seconds
    shares = by_feeder(units, clients) if partitioned else [units] * clients

    async def worker(seed: int) -> None:
        rnd = random.Random(seed)
        mine = shares[seed]
        await asyncio.sleep(seed * CONNECT_GAP_S)
        async with client_for(base, headers) as client:
            while time.perf_counter() < stop:
                chosen = rnd.sample(mine, min(size, len(mine)))
                bundle = {
                    "resourceType": "Bundle",
                    "type": "batch",
                    "entry": [
                        {
                            "request": {"method": "PATCH", "url": f"Location/{u.location_id}"},
                            "resource": patch_body(u, next(counter)),
                        }
                        for u in chosen
                    ],
                }
                t0 = time.perf_counter()
                r = await client.request("POST", "/fhir", orjson.dumps(bundle))
                phase.latencies_ms.append((time.perf_counter() - t0) * 1000)
                phase.requests += 1
                if r.status_code != 200:
                    phase.errors[str(r.status_code)] = phase.errors.get(str(r.status_code), 0) + 1
                    continue
                for e in orjson.loads(r.content)["entry"]:
                    status = e["response"]["status"].split()[0]
                    if status == "200":
                        phase.updates += 1
                    else:
                        phase.errors[status] = phase.errors.get(status, 0) + 1

    await asyncio.gather(*(worker(i) for i in range(clients)))
    return phase


async def measure(
    base: str, headers: dict[str, str], units: list[Unit], args: argparse.Namespace, server_pid: int | None = None
) -> dict[str, Any]:
    probe = SseProbe()
    ready = asyncio.Event()
    listener = asyncio.create_task(sse_listener(base, headers, probe, ready))
    await asyncio.wait_for(ready.wait(), 30)
    await single_patches(base, headers, units, 2, 1.0, SseProbe())  # warm-up: connections, caches
    t0, cpu0 = time.perf_counter(), cpu_by_role(server_pid)
    single = await single_patches(base, headers, units, args.clients, args.seconds, probe)
    single_s, single_cpu = time.perf_counter() - t0, cpu_per_request(cpu0, cpu_by_role(server_pid), single.requests)
    deadline = time.perf_counter() + 10  # let the stream catch up (poll, bounded)
    while len(probe.after_send_ms) < single.updates and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    listener.cancel()
    t0 = time.perf_counter()
    bulk = await batches(base, headers, units, args.clients, args.seconds, args.batch)
    bulk_s = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), cpu_by_role(server_pid)
    own = await batches(base, headers, units, args.clients, args.seconds, args.batch, partitioned=True)
    own_s, own_cpu = time.perf_counter() - t0, cpu_per_request(cpu0, cpu_by_role(server_pid), own.updates)
    o50, o95 = percentiles(own.latencies_ms)
    p50, p95 = percentiles(single.latencies_ms)
    b50, b95 = percentiles(bulk.latencies_ms)
    s50, s95 = percentiles(probe.after_send_ms) if probe.after_send_ms else (None, None)
    r50, r95 = percentiles(probe.after_response_ms) if probe.after_response_ms else (None, None)
    return {
        "single_patch_per_s": round(single.updates / single_s),
        "single_p50_ms": round(p50, 1),
        "single_p95_ms": round(p95, 1),
        "single_errors": single.errors,
        "single_cpu_ms_per_patch": single_cpu,
        "bulk_updates_per_s": round(bulk.updates / bulk_s),
        "bulk_bundles": bulk.requests,
        "bulk_p50_ms": round(b50, 1),
        "bulk_p95_ms": round(b95, 1),
        "bulk_errors": bulk.errors,
        "bulk_own_units_updates_per_s": round(own.updates / own_s),
        "bulk_own_units_p50_ms": round(o50, 1),
        "bulk_own_units_p95_ms": round(o95, 1),
        "bulk_own_units_errors": own.errors,
        "bulk_own_units_cpu_ms_per_update": own_cpu,
        "sse_delivered": f"{len(probe.after_send_ms)}/{single.updates}",
        "sse_after_send_p50_ms": s50 and round(s50, 1),
        "sse_after_send_p95_ms": s95 and round(s95, 1),
        "sse_after_response_p50_ms": r50 and round(r50, 1),
        "sse_after_response_p95_ms": r95 and round(r95, 1),
    }


def run_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    workers = 2 if backend == "postgresql" else 1
    if args.skip_load and backend == "postgresql":  # the database of an earlier run, as it was left
        url, load_s = "postgresql+psycopg://postgres@127.0.0.1:5432/ror_bench_capacity", 0.0
    else:
        url = fresh_postgres("ror_bench_capacity") if backend == "postgresql" else f"sqlite:///{tmp / 'capacity.db'}"
        print(f"[{backend}] loading the Bretagne demo…", flush=True)
        load_s = load_demo(url)
    units, client_id, secret = units_and_client(url)
    port = free_port()
    proc = start_server(url, workers, port)
    base = f"http://127.0.0.1:{port}"
    try:
        tok = httpx.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {tok}", "Content-Type": "application/fhir+json"}
        print(
            f"[{backend}] {len(units)} units, {workers} worker(s), {args.clients} clients × {args.seconds} s",
            flush=True,
        )
        result = asyncio.run(measure(base, headers, units, args, proc.pid))
    finally:
        proc.terminate()
        proc.wait(30)
    info = {"backend": backend, "workers": workers, "units": len(units), "client": CLIENT}
    return {**info, "demo_load_s": round(load_s, 1), **result}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--seconds", type=float, default=15.0, help="duration of each phase")
    ap.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    ap.add_argument("--batch", type=int, default=50, help="entries per bulk-feed Bundle")
    ap.add_argument("--client", choices=("lean", "httpx"), default="lean", help="load generator's HTTP client")
    ap.add_argument(
        "--skip-load", action="store_true", help="PostgreSQL: reuse the database of an earlier run (no fresh demo)"
    )
    args = ap.parse_args()
    global CLIENT
    CLIENT = args.client
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = []
    with tempfile.TemporaryDirectory(prefix="ror-bench-capacity-") as tmp:
        for backend in backends:
            results.append(run_backend(backend, args, Path(tmp)))
    for r in results:
        print(f"\n{r['backend']} ({r['workers']} worker(s), {r['units']} units, demo loaded in {r['demo_load_s']} s)")
        for k, v in r.items():
            if k not in ("backend", "workers", "units", "demo_load_s"):
                print(f"  {k:<28} {v}")
    write_result("capacity", {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()
