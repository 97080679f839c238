"""Live stream of accepted capacity changes.

The projection observer leaves the changes of a transaction in `conn.info`; they are published only after the
commit (never a change that was rolled back). One process (SQLite): published to the in-process broker on
commit. Several processes (PostgreSQL): the transaction also runs `pg_notify('ror_capacity', …)`, which
PostgreSQL delivers at commit to every process LISTENing; each process's listener thread feeds its own broker."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, event, text

from ror.db.engine import is_sqlite
from ror.store.rawsql import Batch

log = logging.getLogger("ror.capacity.stream")
CHANNEL = "ror_capacity"
INFO_KEY = "ror_capacity_changes"
MAX_QUEUE = 1000


@dataclass
class Subscription:
    queue: asyncio.Queue[dict[str, Any]]
    loop: asyncio.AbstractEventLoop
    dropped: int = 0


@dataclass
class Broker:
    subscribers: list[Subscription] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self) -> Subscription:
        sub = Subscription(asyncio.Queue(MAX_QUEUE), asyncio.get_running_loop())
        with self.lock:
            self.subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self.lock:
            if sub in self.subscribers:
                self.subscribers.remove(sub)

    def publish(self, changes: Iterable[dict[str, Any]]) -> None:
        with self.lock:
            subs = list(self.subscribers)
        for change in changes:
            for sub in subs:
                sub.loop.call_soon_threadsafe(_offer, sub, change)


HEARTBEAT_S = 15.0
Render = Callable[[Subscription, dict[str, Any]], bytes | None]


async def follow(
    broker: Broker, is_disconnected: Callable[[], Awaitable[bool]], render: Render, heartbeat_s: float = HEARTBEAT_S
) -> AsyncIterator[bytes]:
    """Server-Sent Events bytes for one subscriber: `: connected`, then `render(sub, change)` for every change it
    keeps (None skips it), `: heartbeat` when quiet; ends when the client has gone, always unsubscribing. Every
    SSE endpoint (FHIR API, dashboard, tension board) is this loop with its own filter."""
    sub = broker.subscribe()
    try:
        yield b": connected\n\n"
        while True:
            try:
                change = await asyncio.wait_for(sub.queue.get(), heartbeat_s)
            except TimeoutError:
                if await is_disconnected():
                    return
                yield b": heartbeat\n\n"
                continue
            out = render(sub, change)
            if out:
                yield out
    finally:
        broker.unsubscribe(sub)


def _offer(sub: Subscription, change: dict[str, Any]) -> None:
    try:
        sub.queue.put_nowait(change)
    except asyncio.QueueFull:  # a slow client loses events rather than slowing writers; it is told so
        sub.dropped += 1


def remember(conn: Connection, changes: list[dict[str, Any]], batch: Batch | None = None) -> None:
    """Called by the projection inside the write transaction (the NOTIFY statements join `batch` when given)."""
    if not changes:
        return
    if getattr(conn.engine, "_ror_brokers", None) is not None:
        # kept for this process's subscribers until the commit (SQLite) — only where `install` put the listeners
        # that take them off the connection again (a command-line load has none: they piled up in memory)
        conn.info.setdefault(INFO_KEY, []).extend(changes)
    if not is_sqlite(conn.engine):
        for payload in _payloads(changes):
            if batch is not None:
                batch.execute(f"SELECT pg_notify({batch.mark}, {batch.mark})", (CHANNEL, payload))
            else:
                conn.execute(_NOTIFY, {"c": CHANNEL, "p": payload})


_NOTIFY = text("SELECT pg_notify(:c, :p)")
MAX_PAYLOAD = 7000  # PostgreSQL's NOTIFY payload limit is 8000 bytes


def _payloads(changes: list[dict[str, Any]]) -> Iterator[str]:
    """The changes as JSON arrays of at most MAX_PAYLOAD bytes: one NOTIFY for a bulk feed's many changes."""
    batch: list[bytes] = []
    size = 2
    for change in changes:
        item = orjson.dumps(change)
        if batch and size + len(item) + 1 > MAX_PAYLOAD:
            yield "[" + b",".join(batch).decode() + "]"
            batch, size = [], 2
        batch.append(item)
        size += len(item) + 1
    if batch:
        yield "[" + b",".join(batch).decode() + "]"


def install(engine: Engine, broker: Broker) -> None:
    """Wire `broker` to `engine`: after-commit publication (SQLite) or a LISTEN thread (PostgreSQL)."""
    brokers: list[Broker] | None = getattr(engine, "_ror_brokers", None)
    if brokers is not None:  # listeners already installed: one more app (broker) on this engine
        brokers.append(broker)
        return
    brokers = [broker]
    engine._ror_brokers = brokers  # type: ignore[attr-defined]

    def publish_all(changes: list[dict[str, Any]]) -> None:
        for b in brokers:
            b.publish(changes)

    @event.listens_for(engine, "rollback")
    def _discard(conn: Connection) -> None:
        if conn.invalidated:  # the database connection was lost (its info went with it): nothing to discard
            return
        conn.info.pop(INFO_KEY, None)

    if is_sqlite(engine):

        @event.listens_for(engine, "commit")
        def _publish(conn: Connection) -> None:
            changes = conn.info.pop(INFO_KEY, None)
            if changes:
                publish_all(changes)

        return

    @event.listens_for(engine, "commit")
    def _forget(conn: Connection) -> None:  # delivered by NOTIFY instead
        conn.info.pop(INFO_KEY, None)

    threading.Thread(target=_listen, args=(engine, publish_all), daemon=True, name="ror-capacity-listen").start()


def _listen(engine: Engine, publish: Any) -> None:
    import time

    import psycopg

    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    while True:
        try:
            with psycopg.connect(url, autocommit=True) as pg:
                pg.execute(f"LISTEN {CHANNEL}")
                for note in pg.notifies():
                    got = orjson.loads(note.payload)
                    publish(got if isinstance(got, list) else [got])
        except Exception as exc:  # the database restarted: listen again
            log.warning("capacity LISTEN connection lost (%s); reconnecting", exc)
            time.sleep(1)
