"""Engine creation with the same behaviour on SQLite (WAL, foreign keys) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(engine_or_url: Engine | str) -> bool:
    if not isinstance(engine_or_url, str):  # an engine knows its dialect (parsing its URL cost ~0.1 ms per write)
        return bool(engine_or_url.dialect.name == "sqlite")
    return make_url(engine_or_url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()
    from ror.search.geo import register_sqlite_functions

    register_sqlite_functions(dbapi_connection)


def _sqlite_begin(conn: Any) -> None:
    """Writers take the write lock up front (`BEGIN IMMEDIATE`) so two writers never deadlock on upgrade;
    readers use a deferred transaction and never block (WAL)."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("ror_write") else "BEGIN")


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy emit BEGIN itself so that a write transaction is explicit (pysqlite quirk).
        event.listen(engine, "connect", lambda c, _r: setattr(c, "isolation_level", None))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_idle_connections(engine)
    return engine


IDLE_PING_S = 5.0  # a pooled connection unused for longer is checked before use


def _ping_idle_connections(engine: Engine) -> None:
    """SQLAlchemy's `pool_pre_ping` made a round trip on every checkout (two per capacity PATCH, ~0.1 ms of CPU
    each and a wait for the server under load). A connection back in the pool within the last `IDLE_PING_S`
    seconds was alive then; only older ones are pinged (the dialect's own ping), and a dead one is replaced
    (DisconnectionError: the pool retries with a fresh connection). A connection that dies while in use fails
    its request (503 + Retry-After, ror.fhir.app) and the pool drops the connections older than the failure,
    as before."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["ror_checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get("ror_checked_in")
        if last is not None and time.monotonic() - last < IDLE_PING_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(str(exc)) from exc
        if not alive:
            raise DisconnectionError("the connection did not answer the ping")
