"""Concurrent writers on one Location over real HTTP (a live uvicorn, httpx clients in threads): no lost update —
every accepted PATCH is in the history as one version and one event whose `before` is the previous event's
`after`, and the final state is the last accepted write; with If-Match, exactly one of the racing writers wins
and the others get 412."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, func, select

from ror.access.clients import ClientRegistry
from ror.access.tokens import TokenService
from ror.db.tables import api_client, capacity, capacity_event, resource, resource_version
from ror.server import create_app
from ror.store import ResourceStore
from ror.terminology.loader import load_nos
from tests.search_fixtures import capacity as cap
from tests.search_fixtures import location, org
from tests.test_capacity_patch import AVAILABLE_F, body, selector

KEY = "concurrency-test-key-0123456789-abcdefghij"
FINESS = "350000741"
WRITERS, EACH = 6, 8


@pytest.fixture(scope="module")
def nos(engine: Engine, reference_dir: Path) -> None:
    load_nos(engine, reference_dir / "nos")


@pytest.fixture
def live(store: ResourceStore, engine: Engine, nos: None) -> Iterator[tuple[str, dict[str, str]]]:
    """A uvicorn server on a free port (in a thread) over the test database, and a feeder's headers."""
    store.bulk_upsert(
        [
            org("eg-" + FINESS, "CHU", finess=FINESS),
            location(
                "loc-rea",
                "Réa",
                48.12,
                -1.69,
                "35238",
                "35033",
                [cap("01", 20), cap("02", 3, gender="01")],
                org_id="eg-" + FINESS,
            ),
        ]
    )
    with engine.begin() as c:
        c.execute(api_client.delete())
    creds = ClientRegistry(engine).add("feeder", 1, [FINESS])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine, tokens=TokenService(KEY)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    try:
        tok = httpx.post(
            f"{base}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds.client.client_id,
                "client_secret": creds.secret,
            },
        ).json()["access_token"]
        yield base, {"Authorization": f"Bearer {tok}", "Content-Type": "application/fhir+json"}
    finally:
        server.should_exit = True
        thread.join(20)


def available(nb: int) -> dict[str, object]:
    return body("replace", selector(**AVAILABLE_F), cap("02", nb, gender="01", updated="2026-11-30T10:00:00Z"))


def run_threads(n: int, target: object) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]  # type: ignore[arg-type]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a writer did not finish"


def test_concurrent_patches_lose_no_update(live: tuple[str, dict[str, str]], engine: Engine) -> None:
    base, h = live
    accepted: list[tuple[int, int]] = []  # (version, nb)
    refused: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(WRITERS)

    def writer(w: int) -> None:
        with httpx.Client(base_url=base, headers=h, timeout=60) as client:
            start.wait()
            for i in range(EACH):
                nb = 100 * (w + 1) + i  # unique: every write changes the value
                r = client.patch("/fhir/Location/loc-rea", json=available(nb))
                with lock:
                    if r.status_code == 200:
                        accepted.append((int(r.headers["etag"].split('"')[1]), nb))
                    else:
                        refused.append(f"{r.status_code} {r.text[:200]}")

    run_threads(WRITERS, writer)
    assert refused == []  # without If-Match every writer is served in turn, none is refused
    accepted.sort()
    versions = [v for v, _ in accepted]
    assert versions == list(range(2, 2 + WRITERS * EACH))  # one version per accepted PATCH, none shared
    with engine.connect() as c:
        e = capacity_event
        events = c.execute(
            select(e.c.version_id, e.c.nb_before, e.c.nb_after)
            .where(e.c.location_id == "loc-rea", e.c.status == "02", e.c.version_id > 1)
            .order_by(e.c.version_id)
        ).all()
        pk = c.execute(select(resource.c.pk).where(resource.c.res_id == "loc-rea")).scalar_one()
        n_versions = c.execute(
            select(func.count()).select_from(resource_version).where(resource_version.c.resource_pk == pk)
        ).scalar_one()
        final = c.execute(
            select(capacity.c.nb).where(capacity.c.location_id == "loc-rea", capacity.c.status == "02")
        ).scalar_one()
    assert [(v, after) for v, _, after in events] == accepted  # every accepted write is in the history
    befores = [before for _, before, _ in events]
    assert befores == [3] + [after for _, _, after in events[:-1]]  # each write saw the previous one
    assert n_versions == 1 + WRITERS * EACH
    assert final == accepted[-1][1]  # the final state is the last accepted write
    loc = httpx.get(f"{base}/fhir/Location/loc-rea", headers=h).json()
    assert loc["meta"]["versionId"] == str(accepted[-1][0])


def race(base: str, h: dict[str, str], etag: str, racers: int, first_nb: int) -> list[int]:
    """`racers` PATCHes with the same If-Match, released together; their status codes."""
    codes: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(racers)

    def racer(i: int) -> None:
        with httpx.Client(base_url=base, headers={**h, "If-Match": etag}, timeout=60) as client:
            start.wait()
            r = client.patch("/fhir/Location/loc-rea", json=available(first_nb + i))
            with lock:
                codes.append(r.status_code)

    run_threads(racers, racer)
    return codes


def test_if_match_race_has_one_winner(live: tuple[str, dict[str, str]], engine: Engine) -> None:
    base, h = live
    rounds, racers = 5, 5
    for rnd in range(rounds):
        etag = httpx.get(f"{base}/fhir/Location/loc-rea", headers=h).headers["etag"]
        codes = race(base, h, etag, racers, 10 * rnd)
        assert sorted(codes) == [200] + [412] * (racers - 1), codes
    with engine.connect() as c:
        version = c.execute(select(resource.c.version_id).where(resource.c.res_id == "loc-rea")).scalar_one()
        events = c.execute(
            select(func.count()).select_from(capacity_event).where(capacity_event.c.version_id > 1)
        ).scalar_one()
    assert version == 1 + rounds and events == rounds
