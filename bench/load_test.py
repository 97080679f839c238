"""Load test (issue 9, item 3): ≥ 200 concurrent simulated clients against a live uvicorn on loopback, then an
audit that every acknowledged write is stored with its history (0 lost).

    .venv/bin/python bench/load_test.py --backend sqlite --duration 120
    .venv/bin/python bench/load_test.py --backend postgres --duration 120      # 2 uvicorn workers

Clients are asyncio tasks: regulators run the IG search queries, feeders PATCH the available-bed indicator of a
unit of their establishments (FHIRPath Patch), bulk feeders send `Bundle` batches of such PATCHes, and
establishment staff (one web account each, `establishment_manager` of one establishment) log in, open the
"Saisie des disponibilités" page of their establishment and save the whole form (CSRF token, a few changed rows).
Think time 1–3 s (staff 2–6 s). Feeders and staff work on disjoint establishments (an establishment feeds by
software or by hand), so no write is refused for a concurrent edit. Every acknowledged write — the ETag of a
PATCH or of a Bundle entry, the 303 of a form save (each changed row: the posted version + 1) — is audited
afterwards: its version row and its capacity event are stored (0 lost). The latency bounds (`BOUNDS`, per kind of
request: search, PATCH, Bundle, form page, form save, login) are printed with the figures.

The database is a fresh `ror demo --scope region:53` (Bretagne: ~15k resources) unless `--skip-load`. Prints one
table per request kind and writes bench/results/load.json. Not part of `make test` (10 minutes by default); never
run two benchmarks at once."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fresh_postgres, write_result
from ror.access.clients import ClientRegistry
from ror.access.people import PersonRegistry
from ror.capacity import patch
from ror.capacity.model import CAPACITY_URL, indicators_of
from ror.db.engine import make_engine
from ror.db.tables import capacity, capacity_event, resource, resource_version
from ror.directory import ids

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KEY = "load-test-key-0123456789-abcdefghijklmnopqrstuvw"
INC = "_include=HealthcareService:organization&_include:iterate=Organization:partof&_include=HealthcareService:location"
SEARCHES = {  # the regulators' questions (IG §3.3) as the FHIR API receives them
    "search C1 réa + includes": f"/fhir/HealthcareService?specialty=R211|127&{INC}",
    "search C6 réa ≤ 50 km": f"/fhir/HealthcareService?specialty=R211|127&location.near=48.11|-1.68|50|km&{INC}",
    "search D1 bed available now": "/fhir/HealthcareService?specialty=R211|127&location.capacity-status=R330|02"
    "&location.nb-capacity=gt0&_include=HealthcareService:location",
    "search A2 postcodes": "/fhir/Location?address-postalcode=35,22,29,56&_revinclude=HealthcareService:location",
    "search H type 001": "/fhir/Location?type=R343|001",
}
PATCH = "feeder PATCH capacity"
BUNDLE = "feeder Bundle (batch of PATCHes)"
FORM_PAGE = "staff GET entry page"
FORM_SAVE = "staff POST entry form"
LOGIN = "staff login"
FAMILY = {PATCH: "patch", BUNDLE: "bundle", FORM_PAGE: "form page", FORM_SAVE: "form save", LOGIN: "login"}
BOUNDS: dict[str, Any] = {  # stated bounds on this shared 2-core machine, 200 clients, 1–3 s think time
    "error_rate": 0.01,  # non-2xx/3xx answers other than 503 + Retry-After (which clients retry), per kind
    "p95_ms": {"search": 2000.0, "patch": 1000.0, "bundle": 3000.0, "form page": 1000.0, "form save": 2000.0},
    "p99_ms": {"search": 5000.0, "patch": 3000.0, "bundle": 8000.0, "form page": 3000.0, "form save": 5000.0},
}
BOUNDS["p95_ms"]["login"], BOUNDS["p99_ms"]["login"] = 3000.0, 5000.0  # argon2 check, once per person
STAFF_PASSWORD = "load-test-staff-password-0123"
BUNDLE_SIZE = 10
FIELD = re.compile(r'name="([aovn]-[^"]+)" value="([^"]*)"')
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(url: str, scope: str, skip_load: bool) -> None:
    env = {**os.environ, "ROR_DATABASE_URL": url}
    if skip_load:
        return
    for cmd in (["db", "upgrade"], ["demo", "--scope", scope]):
        t0 = time.perf_counter()
        subprocess.run([str(BIN / "ror"), *cmd], env=env, check=True, cwd=ROOT)
        print(f"ror {' '.join(cmd)}: {time.perf_counter() - t0:.0f} s", flush=True)


@dataclasses.dataclass
class Unit:
    location_id: str
    finess: str
    selector: str
    indicator: Any  # capacity.model.Indicator of the available-bed indicator


def feeder_units(url: str, limit: int) -> list[Unit]:
    """Units with a current available-bed indicator, and the FINESS of the establishment that manages them."""
    engine = make_engine(url)
    with engine.connect() as c:
        loc_ids = (
            c.execute(
                select(capacity.c.location_id)
                .where(capacity.c.status == "02", capacity.c.temporality == "01")
                .distinct()
                .order_by(capacity.c.location_id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
        rows = c.execute(
            select(resource.c.res_id, resource.c.content).where(
                resource.c.res_type == "Location", resource.c.res_id.in_(loc_ids)
            )
        ).all()
        orgs = dict(
            c.execute(select(resource.c.res_id, resource.c.content).where(resource.c.res_type == "Organization")).all()
        )
    engine.dispose()
    units = []
    for res_id, content in rows:
        res = orjson.loads(content)
        org_id = (res.get("managingOrganization") or {}).get("reference", "").removeprefix("Organization/")
        org = orjson.loads(orgs.get(org_id) or "{}")
        finess = next((i["value"] for i in org.get("identifier") or [] if i.get("system") == ids.FINESS), None)
        ind = next((i for i in indicators_of(res) if i.status == "02" and i.temporality == "01"), None)
        if finess is None or ind is None:
            continue
        codes = [
            f"extension.where(url='{sub['url']}' and valueCodeableConcept.coding[0].code="
            f"'{sub['valueCodeableConcept']['coding'][0]['code']}')"
            for sub in ind.to_extension()["extension"]
            if "valueCodeableConcept" in sub and sub["url"] != "capacitySourceType"
        ]
        selector = f"Location.extension.where(url='{CAPACITY_URL}' and " + " and ".join(codes) + ")"
        units.append(Unit(res_id, finess, selector, ind))
    return units


def patch_parameters(unit: Unit, nb: int) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ext = dataclasses.replace(unit.indicator, nb=nb, update_date=now).to_extension()
    return patch.parameters(patch.operation("replace", unit.selector, [ext]))


def patch_body(unit: Unit, nb: int) -> bytes:
    return orjson.dumps(patch_parameters(unit, nb))


def bundle_body(chosen: list[Unit], values: list[int]) -> bytes:
    entries = [
        {"request": {"method": "PATCH", "url": f"Location/{u.location_id}"}, "resource": patch_parameters(u, nb)}
        for u, nb in zip(chosen, values, strict=True)
    ]
    return orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries})


def ok_status(code: int) -> bool:
    return 200 <= code < 400  # a form save answers 303 (redirect to the page)


def partition(units: list[Unit], staff: int) -> tuple[list[Unit], list[str]]:
    """(units fed by software, establishments entered by hand): `staff` establishments, spread over the sorted
    FINESS list, go to the staff; the feeders keep the units of the others."""
    finess = sorted({u.finess for u in units})
    step = max(1, len(finess) // max(1, staff))
    by_hand = finess[::step][:staff]
    return [u for u in units if u.finess not in set(by_hand)], by_hand


@dataclasses.dataclass
class Stats:
    latencies: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    codes: dict[str, dict[int, int]] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)
    acked: list[tuple[str, str, int, int]] = dataclasses.field(default_factory=list)  # (kind, Location, version, nb)

    def record(self, kind: str, ms: float, r: httpx.Response | None, err: str | None = None) -> None:
        self.latencies.setdefault(kind, []).append(ms)
        code = r.status_code if r is not None else 0
        per = self.codes.setdefault(kind, {})
        per[code] = per.get(code, 0) + 1
        clean_503 = r is not None and code == 503 and r.headers.get("retry-after", "").isdigit()
        if not ok_status(code) and not clean_503 and len(self.errors) < 50:
            self.errors.append(f"{kind}: {code} {err or (r.text[:200] if r is not None else '')}")


async def token(client: httpx.AsyncClient, creds: Any) -> dict[str, str]:
    r = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": creds.client.client_id, "client_secret": creds.secret},
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def regulator(client: httpx.AsyncClient, headers: dict[str, str], stats: Stats, end: float, rnd: random.Random):
    while time.monotonic() < end:
        await asyncio.sleep(rnd.uniform(1, 3))
        kind, path = rnd.choice(list(SEARCHES.items()))
        t0 = time.perf_counter()
        try:
            r = await client.get(path, headers=headers)
            stats.record(kind, (time.perf_counter() - t0) * 1000, r)
        except httpx.HTTPError as exc:
            stats.record(kind, (time.perf_counter() - t0) * 1000, None, repr(exc))


async def feeder(
    client: httpx.AsyncClient, headers: dict[str, str], units: list[Unit], stats: Stats, end: float, rnd: random.Random
):
    h = {**headers, "Content-Type": "application/fhir+json"}
    while time.monotonic() < end:
        await asyncio.sleep(rnd.uniform(1, 3))
        unit = rnd.choice(units)
        nb = rnd.randrange(0, 40)
        t0 = time.perf_counter()
        try:
            r = await client.patch(f"/fhir/Location/{unit.location_id}", content=patch_body(unit, nb), headers=h)
        except httpx.HTTPError as exc:
            stats.record(PATCH, (time.perf_counter() - t0) * 1000, None, repr(exc))
            continue
        stats.record(PATCH, (time.perf_counter() - t0) * 1000, r)
        if r.status_code == 200:
            stats.acked.append((PATCH, unit.location_id, int(r.headers["etag"].split('"')[1]), nb))


async def bundle_feeder(
    client: httpx.AsyncClient, headers: dict[str, str], units: list[Unit], stats: Stats, end: float, rnd: random.Random
):
    h = {**headers, "Content-Type": "application/fhir+json"}
    while time.monotonic() < end:
        await asyncio.sleep(rnd.uniform(1, 3))
        chosen = rnd.sample(units, min(BUNDLE_SIZE, len(units)))
        values = [rnd.randrange(0, 40) for _ in chosen]
        t0 = time.perf_counter()
        try:
            r = await client.post("/fhir", content=bundle_body(chosen, values), headers=h)
        except httpx.HTTPError as exc:
            stats.record(BUNDLE, (time.perf_counter() - t0) * 1000, None, repr(exc))
            continue
        stats.record(BUNDLE, (time.perf_counter() - t0) * 1000, r)
        if r.status_code != 200:
            continue
        for unit, nb, entry in zip(chosen, values, r.json()["entry"], strict=True):
            response = entry["response"]
            if response["status"].startswith("200"):
                stats.acked.append((BUNDLE, unit.location_id, int(response["etag"].split('"')[1]), nb))
            elif len(stats.errors) < 50:
                stats.errors.append(f"{BUNDLE} entry: {response['status']} {str(response.get('outcome'))[:200]}")


async def timed_request(
    client: httpx.AsyncClient, kind: str, stats: Stats, method: str, path: str, **kw: Any
) -> httpx.Response | None:
    t0 = time.perf_counter()
    try:
        r = await client.request(method, path, **kw)
    except httpx.HTTPError as exc:
        stats.record(kind, (time.perf_counter() - t0) * 1000, None, repr(exc))
        return None
    stats.record(kind, (time.perf_counter() - t0) * 1000, r)
    return r


async def log_in(client: httpx.AsyncClient, email: str, stats: Stats) -> bool:
    """Log in; a 503 + Retry-After is retried after the delay it asks (at most 5 attempts), as a person would."""
    for _ in range(5):
        page = await client.get("/connexion")
        csrf = CSRF.search(page.text)
        assert csrf is not None, page.text[:300]
        data = {"email": email, "password": STAFF_PASSWORD, "csrf": csrf.group(1)}
        r = await timed_request(client, LOGIN, stats, "POST", "/connexion", data=data, follow_redirects=False)
        if r is None or r.status_code != 503 or not r.headers.get("retry-after", "").isdigit():
            return r is not None and r.status_code == 303
        await asyncio.sleep(int(r.headers["retry-after"]))
    return False


def form_changes(fields: dict[str, str], rnd: random.Random) -> dict[str, tuple[str, int, int]]:
    """1–3 rows of the form get a new available number: field -> (Location, version to be written, number)."""
    available = sorted(k for k in fields if k.startswith("a-"))
    out: dict[str, tuple[str, int, int]] = {}
    for name in rnd.sample(available, min(len(available), rnd.randint(1, 3))):
        location_id = name[2:].rsplit("-", 1)[0]
        version = fields.get(f"v-{location_id}", "")
        if not version.isdigit() or any(c[0] == location_id for c in out.values()):
            continue
        current = fields[name]
        nb = next(v for v in (rnd.randrange(0, 40) for _ in range(50)) if str(v) != current)
        out[name] = (location_id, int(version) + 1, nb)
    return out


async def staff(base: str, email: str, finess: str, stats: Stats, end: float, rnd: random.Random) -> None:
    """One person: logs in, then opens the entry page of the establishment and saves the whole form."""
    path = f"/etablissements/{finess}/disponibilites"
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:  # its own cookies (session)
        await asyncio.sleep(rnd.uniform(0, 5))  # people do not all log in in the same second
        if not await log_in(client, email, stats):
            return
        while time.monotonic() < end:
            await asyncio.sleep(rnd.uniform(2, 6))
            page = await timed_request(client, FORM_PAGE, stats, "GET", path)
            if page is None or page.status_code != 200:
                continue
            fields = dict(FIELD.findall(page.text))
            csrf = CSRF.search(page.text)
            changes = form_changes(fields, rnd)
            if csrf is None or not changes:
                continue
            data = {**fields, **{k: str(c[2]) for k, c in changes.items()}, "csrf": csrf.group(1), "action": "save"}
            r = await timed_request(client, FORM_SAVE, stats, "POST", path, data=data, follow_redirects=False)
            if r is not None and r.status_code == 303:
                stats.acked += [(FORM_SAVE, *c) for c in changes.values()]


def add_staff(url: str, establishments: list[str]) -> list[tuple[str, str]]:
    """One establishment manager per establishment: (email, FINESS)."""
    engine = make_engine(url)
    people = PersonRegistry(engine)
    stamp = int(time.time())
    out = []
    for f in establishments:
        email = f"load-staff-{f}-{stamp}@ror.invalid"
        people.add(email, f"Cadre {f}", "establishment_manager", STAFF_PASSWORD, [f])
        out.append((email, f))
    engine.dispose()
    return out


@dataclasses.dataclass
class Mix:
    """How many clients of each kind."""

    feeders: int
    bundle_feeders: int
    staff: int
    regulators: int

    @classmethod
    def of(cls, clients: int, staff: int, bundle_feeders: int) -> Mix:
        feeders = max(1, clients * 2 // 5 - bundle_feeders)
        return cls(feeders, bundle_feeders, staff, max(1, clients - feeders - bundle_feeders - staff))


async def run_clients(
    base: str, url: str, units: list[Unit], people: list[tuple[str, str]], mix: Mix, duration: float
) -> Stats:
    engine = make_engine(url)
    registry = ClientRegistry(engine)
    feeds = sorted({u.finess for u in units})
    feeder_creds = registry.add(f"load-feeder-{int(time.time())}", 1, feeds)
    regulator_creds = registry.add(f"load-regulator-{int(time.time())}", 1, [])
    engine.dispose()
    stats = Stats()
    shared = mix.feeders + mix.bundle_feeders + mix.regulators
    limits = httpx.Limits(max_connections=shared, max_keepalive_connections=shared)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        feeder_h = await token(client, feeder_creds)
        regulator_h = await token(client, regulator_creds)
        end = time.monotonic() + duration
        rnd = random.Random
        tasks = [feeder(client, feeder_h, units, stats, end, rnd(i)) for i in range(mix.feeders)]
        tasks += [bundle_feeder(client, feeder_h, units, stats, end, rnd(1000 + i)) for i in range(mix.bundle_feeders)]
        tasks += [staff(base, email, f, stats, end, rnd(2000 + i)) for i, (email, f) in enumerate(people)]
        tasks += [regulator(client, regulator_h, stats, end, rnd(3000 + i)) for i in range(mix.regulators)]
        await asyncio.gather(*tasks)
    return stats


def stored_writes(url: str, locations: list[str]) -> tuple[set[tuple[str, int]], set[tuple[str, int, int | None]]]:
    """(Location, version) of every stored version and (Location, version, nb after) of every capacity event."""
    engine = make_engine(url)
    events: set[tuple[str, int, int | None]] = set()
    versions: set[tuple[str, int]] = set()
    with engine.connect() as c:
        for start in range(0, len(locations), 500):
            chunk = locations[start : start + 500]
            events |= {
                (r.location_id, r.version_id, r.nb_after)
                for r in c.execute(
                    select(capacity_event.c.location_id, capacity_event.c.version_id, capacity_event.c.nb_after).where(
                        capacity_event.c.location_id.in_(chunk)
                    )
                )
            }
            versions |= {
                (r.res_id, r.version_id)
                for r in c.execute(
                    select(resource.c.res_id, resource_version.c.version_id)
                    .join(resource_version, resource_version.c.resource_pk == resource.c.pk)
                    .where(resource.c.res_type == "Location", resource.c.res_id.in_(chunk))
                )
            }
    engine.dispose()
    return versions, events


def audit(url: str, acked: list[tuple[str, str, int, int]]) -> dict[str, Any]:
    """Every acknowledged write (PATCH, Bundle entry, form row): its version row and its capacity event (version,
    value) are stored. Counts per kind."""
    versions, events = stored_writes(url, sorted({a[1] for a in acked}))
    out: dict[str, Any] = {"acknowledged": len(acked), "lost": 0, "versions_without_event": 0, "by_kind": {}}
    for kind in sorted({a[0] for a in acked}):
        mine = [a[1:] for a in acked if a[0] == kind]
        lost = [a for a in mine if (a[0], a[1]) not in versions]
        # a PATCH that sets the value already there writes a version but no capacity event: check the version then
        no_event = [a for a in mine if a not in events and (a[0], a[1]) in versions]
        out["by_kind"][kind] = {"acknowledged": len(mine), "lost": len(lost), "versions_without_event": len(no_event)}
        out["lost"] += len(lost)
        out["versions_without_event"] += len(no_event)
    return out


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


def summarise(stats: Stats, duration: float) -> tuple[list[dict[str, Any]], bool]:
    rows, ok = [], True
    for kind, lat in sorted(stats.latencies.items()):
        codes = stats.codes.get(kind, {})
        total = sum(codes.values())
        bad = sum(n for c, n in codes.items() if not ok_status(c) and c != 503)
        family = FAMILY.get(kind, "search")
        row = {
            "kind": kind,
            "requests": total,
            "per_s": round(total / duration, 2),
            "p50_ms": round(statistics.median(lat), 1),
            "p95_ms": round(pct(lat, 0.95), 1),
            "p99_ms": round(pct(lat, 0.99), 1),
            "errors": bad,
            "503": codes.get(503, 0),
            "error_rate": round(bad / total, 4) if total else 0.0,
            "bound_p95_ms": BOUNDS["p95_ms"][family],
            "bound_p99_ms": BOUNDS["p99_ms"][family],
        }
        row["within_bounds"] = (
            row["error_rate"] <= BOUNDS["error_rate"]
            and row["p95_ms"] <= row["bound_p95_ms"]
            and row["p99_ms"] <= row["bound_p99_ms"]
        )
        ok &= row["within_bounds"]
        rows.append(row)
    return rows, ok


def print_rows(rows: list[dict[str, Any]]) -> None:
    print(f"{'kind':34} {'req':>6} {'req/s':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'err':>5} {'503':>5}  bounds p95/p99")
    for r in rows:
        verdict = "ok" if r["within_bounds"] else "EXCEEDED"
        print(
            f"{r['kind']:34} {r['requests']:>6} {r['per_s']:>6} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8}"
            f" {r['errors']:>5} {r['503']:>5}  ≤ {r['bound_p95_ms']:.0f} / {r['bound_p99_ms']:.0f} ms,"
            f" errors ≤ {BOUNDS['error_rate']:.0%}: {verdict}"
        )


def start_server(url: str, workers: int, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ROR_DATABASE_URL": url, "ROR_SECRET_KEY": KEY, "ROR_WRITE_RATE": "1000000/60"}
    cmd = [str(BIN / "uvicorn"), "ror.server:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers), "--log-level", "warning", "--backlog", "4096"]
    # keep idle connections longer than the clients' think time (2–6 s for staff): with uvicorn's default 5 s, a
    # request sent as the server closes the idle connection fails with "Server disconnected" (a browser would
    # retry it; a reverse proxy keeps its own upstream connections)
    cmd += ["--timeout-keep-alive", "30"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("server did not start")
        time.sleep(0.2)


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    if backend == "sqlite":
        path = Path(args.sqlite_path)
        if not args.skip_load:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        url, workers = f"sqlite:///{path}", 1
    else:
        url = args.postgres if args.skip_load else fresh_postgres(args.postgres.rsplit("/", 1)[1])
        workers = args.workers
    prepare(url, args.scope, args.skip_load)
    mix = Mix.of(args.clients, args.staff, args.bundle_feeders)
    units, by_hand = partition(feeder_units(url, 2000), mix.staff)
    people = add_staff(url, by_hand)
    print(f"{backend}: {mix}; {len(units)} units fed by software ({len({u.finess for u in units})} establishments),")
    print(f"  {len(by_hand)} establishments entered by hand (one person each)", flush=True)
    port = free_port()
    log = Path(f"/tmp/ror-load-{backend}.log")
    proc = start_server(url, workers, port, log)
    load_before = os.getloadavg()
    try:
        t0 = time.perf_counter()
        stats = asyncio.run(run_clients(f"http://127.0.0.1:{port}", url, units, people, mix, args.duration))
        elapsed = time.perf_counter() - t0
        load_after = os.getloadavg()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    rows, ok = summarise(stats, elapsed)
    checked = audit(url, stats.acked)
    ok &= checked["lost"] == 0
    loads = f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} at the end (1 min)"
    print(f"\n{backend} ({workers} worker(s)), {args.clients} clients, {elapsed:.0f} s, {loads}")
    print_rows(rows)
    print(f"audit: {checked}; first errors: {stats.errors[:3]}")
    return {
        "backend": backend,
        "workers": workers,
        "clients": args.clients,
        "duration_s": round(elapsed, 1),
        "units_fed": len(units),
        "mix": dataclasses.asdict(mix),
        "establishments_by_hand": len(by_hand),
        "load_average": {"before": load_before, "end": load_after},
        "rows": rows,
        "audit": checked,
        "errors_sample": stats.errors[:10],
        "within_bounds": ok,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    p.add_argument("--duration", type=float, default=600, help="seconds of load (default 10 minutes)")
    p.add_argument("--clients", type=int, default=200, help="all kinds together")
    p.add_argument("--staff", type=int, default=20, help="establishment staff (web form), one establishment each")
    p.add_argument("--bundle-feeders", type=int, default=10, help="feeders sending Bundles of PATCHes")
    p.add_argument("--workers", type=int, default=2, help="uvicorn workers on PostgreSQL (SQLite: 1)")
    p.add_argument("--scope", default="region:53")
    p.add_argument("--sqlite-path", default="/tmp/ror-load.db")
    p.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/ror_load_test")
    p.add_argument("--skip-load", action="store_true", help="reuse the database loaded by a previous run")
    args = p.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [run_backend(b, args) for b in backends]
    out = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "bounds": BOUNDS, "runs": results}
    print(f"written {write_result('load', out)}")
    if not all(r["within_bounds"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
