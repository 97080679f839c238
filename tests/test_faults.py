"""Faults (issue 9, item 4), over a live uvicorn **subprocess** on the test database:

(a) kill -9 during a burst of capacity PATCHes, restart → every write acknowledged with 200 is there with its
    history; no partial Location version (each resource's versions are 1..version_id, the index rows are those
    of the current content, the capacity projection equals the indicators of the stored Location, one
    capacity_event per version, chained); `PRAGMA integrity_check` on SQLite; the restarted server writes on.
(b) read-only SQLite file or directory → writes are a 503 OperationOutcome with Retry-After, reads still work,
    nothing is corrupted.
(c) PostgreSQL connections lost (`pg_terminate_backend` on the server's backends during a burst) → clients get
    200 or 503 + Retry-After, never another 5xx, and the service recovers without a restart.
(d) SQLite disk full → writes are a 503 OperationOutcome with Retry-After, reads still work, writes work again
    once space is freed, `PRAGMA integrity_check` ok and no partial version. Two variants: a real full filesystem
    (a small tmpfs mounted for the test, filled to the last byte: root only, skipped where `mount` is refused) and
    a page quota (`PRAGMA max_page_count` on every connection of the server: the database file cannot grow, the
    same SQLITE_FULL error path as a full disk; no privilege needed, always runs).

Run on SQLite by default and on PostgreSQL with ROR_TEST_DATABASE_URL ((b) and (d) need SQLite, (c) PostgreSQL)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Connection, Engine, select, text

from ror.access.clients import ClientRegistry
from ror.capacity import projection
from ror.capacity.model import KEY_FIELDS, indicators_of
from ror.db import migrate
from ror.db.engine import is_sqlite, make_engine
from ror.db.tables import api_client, capacity, capacity_event, idx_reference, idx_token, resource, resource_version
from ror.search.extract import extract
from ror.search.registry import default_registry
from ror.store import ResourceStore
from ror.terminology.loader import load_nos
from tests.search_fixtures import capacity as cap
from tests.search_fixtures import location, org
from tests.test_capacity_patch import AVAILABLE_F, body, selector

KEY = "faults-test-key-0123456789-abcdefghijklmnopq"
FINESS = "350000741"
LOCS = [f"loc-fault-{i}" for i in range(4)]
ROOT = os.geteuid() == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@dataclass
class Server:
    """`uvicorn ror.server:create_app --factory` in its own process (optionally without root's capabilities)."""

    url: str
    workdir: Path
    unprivileged: bool = False
    launcher: str | None = None  # Python code run instead of `-m uvicorn` (argv: port); it must serve the app
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / f"server-{id(self)}.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.port = free_port()
        env = {
            **os.environ,
            "ROR_DATABASE_URL": self.url,
            "ROR_SECRET_KEY": KEY,
            "ROR_WRITE_RATE": "1000000/60",
            "ROR_EXPORT_DIR": str(self.workdir / "exports"),
            "HOME": str(self.workdir),
            "PYTHONDONTWRITEBYTECODE": "1",
            **self.extra_env,
        }
        cmd = [sys.executable, "-m", "uvicorn", "ror.server:create_app", "--factory", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--log-level", "warning"]
        if self.launcher is not None:
            cmd = [sys.executable, "-c", self.launcher, str(self.port)]
        if self.unprivileged and ROOT:  # root ignores file modes: without its capabilities, it meets them
            cmd = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *cmd]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)

        def up() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"server exited: {self.log()}"
            try:
                return httpx.get(f"{self.base}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, 90, "uvicorn to start")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(20)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Every server a test starts is stopped (killed if need be) at the end, whatever happens."""
    started: list[Server] = []
    yield started
    for s in started:
        s.stop()


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ror-faults-"))
    yield d
    d.chmod(0o777)
    shutil.rmtree(d, ignore_errors=True)


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def seed(engine: Engine, reference_dir: Path) -> tuple[str, str]:
    """NOS, an establishment with four critical-care units, a feeder (client id, secret) on an emptied store."""
    from tests.conftest import truncate_store

    truncate_store(engine)
    load_nos(engine, reference_dir / "nos")
    store = ResourceStore(engine)
    projection.install(store)
    indicators = [cap("01", 20), cap("02", 3, gender="01")]
    units = [
        location(loc, f"Réa {i}", 48.12, -1.69, "35238", "35033", indicators, org_id=f"eg-{FINESS}")
        for i, loc in enumerate(LOCS)
    ]
    store.bulk_upsert([org(f"eg-{FINESS}", "CHU", finess=FINESS), *units])
    with engine.begin() as c:
        c.execute(api_client.delete())
    creds = ClientRegistry(engine).add("feeder", 1, [FINESS])
    return creds.client.client_id, creds.secret


def bearer(base: str, client: tuple[str, str]) -> dict[str, str]:
    r = httpx.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client[0], "client_secret": client[1]},
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}", "Content-Type": "application/fhir+json"}


def available(nb: int) -> dict[str, object]:
    return body("replace", selector(**AVAILABLE_F), cap("02", nb, gender="01", updated="2026-11-30T10:00:00Z"))


def version_of(r: httpx.Response) -> int:
    return int(r.headers["etag"].split('"')[1])


@dataclass
class Burst:
    """Feeder threads PATCHing the units with unique values; acknowledged writes are recorded."""

    base: str
    headers: dict[str, str]
    writers: int = 8
    acked: list[tuple[str, int, int]] = field(default_factory=list)  # (Location, version, nb)
    statuses: Counter[int] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)  # non-200 answers other than 503 + Retry-After
    transport_errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)
    stop_on_transport_error: bool = True

    def writer(self, w: int) -> None:
        loc = LOCS[w % len(LOCS)]
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=30) as client:
            for i in range(100_000):
                if self.stop.is_set():
                    return
                nb = 1_000_000 * (w + 1) + i  # unique: every write changes the value and can be found
                try:
                    r = client.patch(f"/fhir/Location/{loc}", json=available(nb))
                except httpx.TransportError:
                    with self.lock:
                        self.transport_errors += 1
                    if self.stop_on_transport_error:
                        return  # the server died: this write's outcome is unknown (committed or not)
                    continue
                with self.lock:
                    self.statuses[r.status_code] += 1
                    if r.status_code == 200:
                        self.acked.append((loc, version_of(r), nb))
                    elif not _is_clean_503(r):
                        self.refused.append(f"{r.status_code} {dict(r.headers)} {r.text[:300]}")

    def start(self) -> Burst:
        self.threads = [threading.Thread(target=self.writer, args=(w,), daemon=True) for w in range(self.writers)]
        for t in self.threads:
            t.start()
        return self

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads), "a writer did not finish"


def _is_clean_503(r: httpx.Response) -> bool:
    if r.status_code != 503 or not r.headers.get("retry-after", "").isdigit():
        return False
    out = r.json()
    return out.get("resourceType") == "OperationOutcome" and bool(out["issue"][0].get("diagnostics"))


def assert_projection_matches(c: Connection, pk: int, res: dict[str, Any], label: str) -> None:
    """The capacity projection of Location `pk` is exactly the indicators of its stored content `res` (key →
    number, source type, source update date, version)."""
    cols = [*(capacity.c[f] for f in KEY_FIELDS), capacity.c.nb, capacity.c.source_type, capacity.c.updated_at]
    rows = c.execute(select(*cols, capacity.c.version_id).where(capacity.c.location_pk == pk)).all()
    got = {tuple(r[: len(KEY_FIELDS)]): tuple(r[len(KEY_FIELDS) :]) for r in rows}
    version = int(res["meta"]["versionId"])
    want = {i.key: (i.nb, i.source_type, i.updated_at, version) for i in indicators_of(res)}
    assert {k: v[0] for k, v in got.items()} == {k: v[0] for k, v in want.items()}, f"{label}: numbers"
    assert {k: v[1:3] for k, v in got.items()} == {k: v[1:3] for k, v in want.items()}, f"{label}: sources, dates"
    assert all(v[3] <= version for v in got.values()), f"{label}: a row of a later version"


def audit(engine: Engine, acked: list[tuple[str, int, int]]) -> dict[str, int]:
    """The store is whole: see the module docstring. Returns the current version of each unit."""
    registry = default_registry()
    current: dict[str, int] = {}
    with engine.connect() as c:
        for loc in LOCS:
            pk, version, content = c.execute(
                select(resource.c.pk, resource.c.version_id, resource.c.content).where(
                    resource.c.res_type == "Location", resource.c.res_id == loc
                )
            ).one()
            current[loc] = version
            versions = c.execute(
                select(resource_version.c.version_id)
                .where(resource_version.c.resource_pk == pk)
                .order_by(resource_version.c.version_id)
            ).scalars()
            assert list(versions) == list(range(1, version + 1)), f"{loc}: versions are not 1..{version}"
            res = orjson.loads(content)
            assert res["meta"]["versionId"] == str(version), f"{loc}: content of another version"
            assert_projection_matches(c, pk, res, loc)
            # one event per PATCH (each changes one indicator to a new value), chained before → after
            events = c.execute(
                select(capacity_event.c.version_id, capacity_event.c.nb_before, capacity_event.c.nb_after)
                .where(capacity_event.c.location_pk == pk, capacity_event.c.version_id > 1)
                .order_by(capacity_event.c.version_id)
            ).all()
            assert [e.version_id for e in events] == list(range(2, version + 1)), f"{loc}: events ≠ versions"
            afters = [3] + [e.nb_after for e in events]
            assert [e.nb_before for e in events] == afters[:-1], f"{loc}: a write did not see the previous one"
            available_now = next(i.nb for i in indicators_of(res) if i.status == "02")
            assert afters[-1] == available_now, loc
            # the index rows are those of the current content
            want = extract(registry, res)
            for table, expected in ((idx_token, want.token), (idx_reference, want.reference)):
                cols = [col for col in table.c if col.name != "resource_pk"]
                got = c.execute(select(*cols).where(table.c.resource_pk == pk)).all()
                assert Counter(tuple(r) for r in got) == Counter(tuple(e) for e in expected), (loc, table.name)
        # every acknowledged write is there, at the version its ETag named
        event_keys = {
            (r.location_id, r.version_id, r.nb_after)
            for r in c.execute(
                select(capacity_event.c.location_id, capacity_event.c.version_id, capacity_event.c.nb_after)
            )
        }
        lost = [a for a in acked if a not in event_keys]
        assert lost == [], f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}"
        if is_sqlite(engine):
            assert c.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert c.execute(text("PRAGMA foreign_key_check")).all() == []
    return current


# ---------------------------------------------------------------------------------------------- (a) kill -9


def test_kill9_during_write_burst_loses_no_acknowledged_write(
    engine: Engine, reference_dir: Path, servers: list[Server], workdir: Path
) -> None:
    client = seed(engine, reference_dir)
    for round_ in range(2):  # twice: the restarted server is killed again, the store stays whole
        server = Server(url_of(engine), workdir)
        servers.append(server.start())
        headers = bearer(server.base, client)
        burst = Burst(server.base, headers).start()
        before = burst.count()
        wait_until(lambda b=burst, n=before: b.count() >= n + 60, 120, "60 acknowledged writes")
        server.kill9()  # mid-burst: writers are in every stage of a request
        burst.join()
        assert burst.refused == [], burst.refused[:3]
        assert burst.transport_errors >= 1  # the kill did cut requests in flight
        engine.dispose()  # the test's own pool: connections to a file another process wrote
        current = audit(engine, burst.acked)
        print(f"round {round_}: {len(burst.acked)} acknowledged, versions {current}")
    # the restarted server writes on from the last committed version
    server = Server(url_of(engine), workdir)
    servers.append(server.start())
    headers = bearer(server.base, client)
    r = httpx.patch(f"{server.base}/fhir/Location/{LOCS[0]}", json=available(7), headers=headers)
    assert r.status_code == 200 and version_of(r) == current[LOCS[0]] + 1
    audit(engine, [(LOCS[0], current[LOCS[0]] + 1, 7)])


# ---------------------------------------------------------------------------------------------- (b) read-only SQLite


@pytest.mark.parametrize("readonly", ["file", "directory"])
def test_read_only_sqlite_refuses_writes_with_503_and_serves_reads(
    reference_dir: Path, servers: list[Server], workdir: Path, readonly: str
) -> None:
    db = workdir / "ro.db"
    eng = make_engine(f"sqlite:///{db}")
    migrate.upgrade(eng)
    client = seed(eng, reference_dir)
    eng.dispose()
    server = Server(f"sqlite:///{db}", workdir, unprivileged=True)
    servers.append(server.start())
    headers = bearer(server.base, client)
    ok = httpx.patch(f"{server.base}/fhir/Location/{LOCS[0]}", json=available(5), headers=headers)
    assert ok.status_code == 200  # writable: the feeder writes
    server.stop()
    with sqlite3.connect(db) as c:  # a clean state on disk, then take the write permission away
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for p in workdir.glob("ro.db*"):
        p.chmod(0o444)
    if readonly == "directory":
        workdir.chmod(0o555)
    try:
        server = Server(f"sqlite:///{db}", Path(tempfile.gettempdir()) if readonly == "directory" else workdir)
        server.unprivileged = True
        server.log_path = Path(tempfile.mkstemp(prefix="ror-faults-ro-", suffix=".log")[1])
        servers.append(server.start())
        base = server.base
        for _ in range(3):  # every write is refused cleanly, again and again (no poisoned pool)
            r = httpx.patch(f"{base}/fhir/Location/{LOCS[0]}", json=available(6), headers=headers)
            assert _is_clean_503(r), (r.status_code, r.headers, r.text[:300], server.log())
            assert r.json()["issue"][0]["code"] == "transient"
        loc = httpx.get(f"{base}/fhir/Location/{LOCS[0]}", headers=headers)
        assert loc.status_code == 200 and loc.json()["meta"]["versionId"] == "2"  # reads still work
        found = httpx.get(f"{base}/fhir/Location", params={"_id": ",".join(LOCS)}, headers=headers)
        assert found.status_code == 200 and found.json()["total"] == len(LOCS)
        assert httpx.get(f"{base}/health").status_code == 200
        server.stop()
        server.log_path.unlink(missing_ok=True)
    finally:
        workdir.chmod(0o777)
        for p in workdir.glob("ro.db*"):
            p.chmod(0o666)
    eng = make_engine(f"sqlite:///{db}")
    try:
        audit(eng, [(LOCS[0], 2, 5)])  # integrity_check ok, the refused writes left nothing behind
    finally:
        eng.dispose()


# ---------------------------------------------------------------------------------------------- (c) lost connections


def test_postgres_connections_terminated_under_load_give_503_then_recover(
    engine: Engine, reference_dir: Path, servers: list[Server], workdir: Path
) -> None:
    if is_sqlite(engine):
        pytest.skip("PostgreSQL only: run with ROR_TEST_DATABASE_URL")
    client = seed(engine, reference_dir)
    server = Server(url_of(engine), workdir)
    servers.append(server.start())
    headers = bearer(server.base, client)
    burst = Burst(server.base, headers, stop_on_transport_error=False)
    reads: Counter[int] = Counter()
    bad_reads: list[str] = []

    def reader() -> None:
        with httpx.Client(base_url=server.base, headers=headers, timeout=30) as c:
            while not burst.stop.is_set():
                r = c.get("/fhir/Location", params={"_revinclude": "*", "name": "Réa", "_count": "50"})
                reads[r.status_code] += 1
                if r.status_code != 200 and not _is_clean_503(r):
                    bad_reads.append(f"{r.status_code} {r.text[:300]}")

    burst.start()
    readers = [threading.Thread(target=reader, daemon=True) for _ in range(2)]
    for t in readers:
        t.start()
    db = engine.url.database
    terminated = 0
    for k in range(1, 4):  # three waves of lost connections, each after more acknowledged writes
        wait_until(lambda k=k: burst.count() >= 40 * k, 120, f"{40 * k} acknowledged writes")
        with engine.connect() as c:
            terminated += len(
                c.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": db},
                ).all()
            )
    # recovery without restart: new writes and reads are served again
    wait_until(lambda: burst.count() >= 160, 120, "writes after the last wave")
    burst.join()
    for t in readers:
        t.join(60)
    assert terminated >= 3, "no server backend was terminated"
    assert burst.refused == [] and bad_reads == [], (burst.refused[:3], bad_reads[:3], server.log())
    assert server.proc is not None and server.proc.poll() is None  # the server survived
    fresh = httpx.patch(f"{server.base}/fhir/Location/{LOCS[1]}", json=available(11), headers=headers)
    assert fresh.status_code == 200
    burst.acked.append((LOCS[1], version_of(fresh), 11))
    print(f"writes {dict(burst.statuses)}, reads {dict(reads)}, backends terminated {terminated}")
    audit(engine, burst.acked)


# ---------------------------------------------------------------------------------------------- (d) disk full

# The server with a page quota: every connection it checks out gets `PRAGMA max_page_count` from the quota file
# ("full": the current size of the database, which then cannot grow; anything else: no limit).
QUOTA_SERVER = """
import os
import sys
from pathlib import Path

import uvicorn
from sqlalchemy import event
from sqlalchemy.pool import Pool

QUOTA = Path(os.environ["ROR_TEST_PAGE_QUOTA"])


@event.listens_for(Pool, "checkout")
def _quota(dbapi_connection, _record, _proxy):
    full = QUOTA.read_text().strip() == "full"
    dbapi_connection.execute(f"PRAGMA max_page_count = {1 if full else 1073741823}")


uvicorn.run("ror.server:create_app", factory=True, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""
NOTE_BYTES = 256 * 1024  # a note this long needs new pages (or WAL frames) whatever free room the pages have
NB_AFTER_FREE = 200


def available_with_note(nb: int) -> dict[str, object]:
    """The available-bed PATCH with a long comment: a write that must grow the database."""
    ext = cap("02", nb, gender="01", updated="2026-11-30T10:00:00Z")
    ext["extension"].append({"url": "comment", "valueString": "x" * NOTE_BYTES})
    return body("replace", selector(**AVAILABLE_F), ext)


def fill(directory: Path) -> Path:
    """Write a file in `directory` until its filesystem has no byte left (ENOSPC); returns the file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            chunk = b"\0" * size
            while True:
                try:
                    if os.write(fd, chunk) == 0:
                        break
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def seeded_sqlite(db: Path, reference_dir: Path) -> tuple[str, str]:
    """A migrated, seeded database at `db`, vacuumed (no free page: a growing write needs new ones)."""
    eng = make_engine(f"sqlite:///{db}")
    try:
        migrate.upgrade(eng)
        client = seed(eng, reference_dir)
    finally:
        eng.dispose()
    with sqlite3.connect(db) as c:
        c.execute("VACUUM")
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return client


@contextmanager
def small_filesystem(mountpoint: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` MB mounted at `mountpoint` for the block (skips the test where mounting is refused)."""
    if not ROOT:
        pytest.skip("mounting a small filesystem needs root")
    mountpoint.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0777", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"mount refused: {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def check_disk_full_cycle(
    server: Server, client: tuple[str, str], make_full: Callable[[], object], free: Callable[[], object]
) -> None:
    """Full → 3 refused writes (clean 503), reads served; freed → the same kind of write is stored."""
    headers = bearer(server.base, client)  # the token request writes (audit): before the disk is full
    base = server.base
    make_full()
    for k in range(3):  # refused cleanly, again and again (the pool is not poisoned)
        r = httpx.patch(f"{base}/fhir/Location/{LOCS[0]}", json=available_with_note(100 + k), headers=headers)
        assert _is_clean_503(r), (r.status_code, r.headers, r.text[:300], server.log())
        assert r.json()["issue"][0]["code"] == "transient"
    assert "database or disk is full" in server.log()  # SQLITE_FULL, not another failure
    loc = httpx.get(f"{base}/fhir/Location/{LOCS[0]}", headers=headers)
    assert loc.status_code == 200 and loc.json()["meta"]["versionId"] == "1"  # reads still work
    found = httpx.get(f"{base}/fhir/Location", params={"_id": ",".join(LOCS)}, headers=headers)
    assert found.status_code == 200 and found.json()["total"] == len(LOCS)
    assert httpx.get(f"{base}/health").status_code == 200
    free()
    r = httpx.patch(f"{base}/fhir/Location/{LOCS[0]}", json=available_with_note(NB_AFTER_FREE), headers=headers)
    assert r.status_code == 200 and version_of(r) == 2, (r.status_code, r.text[:300], server.log())


def audit_file(db: Path, acked: list[tuple[str, int, int]]) -> None:
    eng = make_engine(f"sqlite:///{db}")
    try:
        audit(eng, acked)  # integrity_check ok, versions 1..n, projection = content: the refused writes left nothing
        with eng.connect() as c:
            content = c.execute(
                select(resource.c.content).where(resource.c.res_type == "Location", resource.c.res_id == LOCS[0])
            ).scalar_one()
        assert content.count("x" * 1000) >= 1  # the write after freeing space is the stored one
    finally:
        eng.dispose()


def test_disk_full_page_quota_refuses_writes_with_503_then_recovers(
    reference_dir: Path, servers: list[Server], workdir: Path
) -> None:
    """Page quota variant (`PRAGMA max_page_count`, SQLITE_FULL): runs everywhere, no privilege needed."""
    db = workdir / "quota.db"
    client = seeded_sqlite(db, reference_dir)
    quota = workdir / "quota"
    quota.write_text("free")
    server = Server(f"sqlite:///{db}", workdir, launcher=QUOTA_SERVER, extra_env={"ROR_TEST_PAGE_QUOTA": str(quota)})
    servers.append(server.start())
    check_disk_full_cycle(server, client, lambda: quota.write_text("full"), lambda: quota.write_text("free"))
    server.stop()
    audit_file(db, [(LOCS[0], 2, NB_AFTER_FREE)])


def test_disk_full_filesystem_refuses_writes_with_503_then_recovers(
    reference_dir: Path, servers: list[Server], workdir: Path
) -> None:
    """Real full filesystem variant: the database on a small tmpfs filled to the last byte (root only)."""
    with small_filesystem(workdir / "disk", 64) as disk:
        db = disk / "full.db"
        client = seeded_sqlite(db, reference_dir)
        server = Server(f"sqlite:///{db}", workdir)
        servers.append(server.start())
        filler: list[Path] = []
        check_disk_full_cycle(server, client, lambda: filler.append(fill(disk)), lambda: filler[0].unlink())
        server.stop()
        audit_file(db, [(LOCS[0], 2, NB_AFTER_FREE)])
