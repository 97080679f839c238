"""Test fixtures: a real database — SQLite by default, PostgreSQL when ROR_TEST_DATABASE_URL is set.

When ROR_TEST_DATABASE_URL is set and the server cannot be reached, the suite fails (it never skips): CI runs it
on purpose against PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from ror.config import _default_reference_dir
from ror.db import migrate
from ror.db.engine import is_sqlite, make_engine, normalise_url
from ror.db.tables import INDEX_TABLES, capacity, capacity_event, import_run, resource, resource_version
from ror.store import ResourceStore

STORE_TABLES = [*INDEX_TABLES, capacity, capacity_event, resource_version, resource, import_run]

# Apps built by tests start no background subscription-delivery worker unless a test asks for one
# (test_subscriptions.py sets it to 1): a worker left behind by a live server of one test, running on real time,
# would otherwise claim the outbox rows that a later test delivers itself with simulated time.
os.environ.setdefault("ROR_SUBSCRIPTION_WORKER", "0")


def _postgres_engine(url: str) -> Engine:
    engine = make_engine(url)
    try:
        with engine.begin() as c:
            c.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            c.execute(text("CREATE SCHEMA public"))
    except Exception as exc:  # pragma: no cover - exercised only when PostgreSQL is down
        pytest.fail(f"ROR_TEST_DATABASE_URL is set but PostgreSQL cannot be used: {exc}", pytrace=False)
    return engine


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    url = os.environ.get("ROR_TEST_DATABASE_URL")
    if url:
        eng = _postgres_engine(normalise_url(url))
    else:
        path = tmp_path_factory.mktemp("db") / "ror-test.db"
        eng = make_engine(f"sqlite:///{path}")
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


def truncate_store(engine: Engine) -> None:
    with engine.begin() as c:
        if is_sqlite(engine):
            for t in STORE_TABLES:
                c.execute(t.delete())
        else:
            names = ", ".join(t.name for t in STORE_TABLES)
            c.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def store(engine: Engine) -> ResourceStore:
    """A store on an emptied database, with the capacity projection installed (as in the running server)."""
    from ror.capacity import projection

    truncate_store(engine)
    s = ResourceStore(engine)
    projection.install(s)
    return s


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The shared reference data (`ROR_REFERENCE_DATA` or ../shared/data). Tests that need it fail without it
    under CI, and are skipped on a developer machine that does not have it."""
    ref = _default_reference_dir()
    if ref is None or not ref.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("reference data directory not found (set ROR_REFERENCE_DATA)", pytrace=False)
        pytest.skip("reference data directory not found (set ROR_REFERENCE_DATA)")
    return ref
