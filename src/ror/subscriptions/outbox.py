"""The outbox: one row per notification to send, written in the same transaction as the change it announces (a
rolled-back write never notifies; a committed one always does), then claimed by delivery workers.

Claiming works with several server processes: on PostgreSQL `SELECT … FOR UPDATE SKIP LOCKED` hands disjoint
rows to concurrent workers; on SQLite the claim is one `BEGIN IMMEDIATE` transaction (writers are serialised).
A claim is a lease: rows of a worker that died are claimed again after `LEASE`."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, insert, or_, select, update

from ror.db.engine import is_sqlite
from ror.db.tables import subscription, subscription_error, subscription_outbox
from ror.search.normalise import utcnow
from ror.store.rawsql import fetch_all, marks
from ror.store.store import ResourceStore, WriteEvent
from ror.subscriptions.criteria import Facts, Matcher, deletion_matches, facts_match
from ror.subscriptions.model import (
    ACTIVE,
    ERROR,
    LIVE_STATUSES,
    OFF,
    RETRY_WINDOW,
    STORE_TYPES,
    Subscription,
    backoff,
    row_to_subscription,
)

PENDING, DELIVERING, DELIVERED, EXPIRED = "pending", "delivering", "delivered", "expired"
HANDSHAKE, HEARTBEAT, EVENT = "handshake", "heartbeat", "event-notification"
LEASE = timedelta(seconds=60)
o, s = subscription_outbox, subscription


@dataclass(frozen=True)
class Focus:
    res_type: str
    res_id: str
    version: int | None = None
    content: str | None = None  # kept for module types (Flag, MeasureReport): the store does not hold them


@dataclass(frozen=True)
class Claimed:
    pk: int
    subscription_id: str
    kind: str
    event_number: int
    focus: Focus | None
    attempts: int
    created_at: datetime


def _write_conn(engine: Engine) -> Any:
    return engine.connect().execution_options(ror_write=True)


# built once: this query runs inside every store write (the capacity feed's hot path)
_LIVE = (
    select(s)
    .where(s.c.res_type.in_(bindparam("types", expanding=True)), s.c.status.in_(LIVE_STATUSES))
    .order_by(s.c.id)
)


def live_subscriptions(conn: Connection, res_types: Iterable[str]) -> list[Subscription]:
    types = sorted(res_types)
    if not types:
        return []
    # most writes find no subscription: a driver-level existence check first (~0.1 ms; `_LIVE` costs ~0.35)
    statuses = sorted(LIVE_STATUSES)
    probe = (
        f"SELECT 1 FROM subscription WHERE res_type IN ({marks(len(types))})"
        f" AND status IN ({marks(len(statuses))}) LIMIT 1"
    )
    if not fetch_all(conn, probe, (*types, *statuses)):
        return []
    rows = conn.execute(_LIVE, {"types": types}).all()
    return [row_to_subscription(r) for r in rows]


def enqueue(conn: Connection, sub_id: str, focuses: Sequence[Focus], now: datetime) -> None:
    """Number the events of one subscription (the row lock of the UPDATE serialises concurrent writers) and add
    them to the outbox."""
    if not focuses:
        return
    conn.execute(update(s).where(s.c.id == sub_id).values(events=s.c.events + len(focuses)))
    last = int(conn.execute(select(s.c.events).where(s.c.id == sub_id)).scalar_one())
    first = last - len(focuses) + 1
    conn.execute(
        insert(o),
        [
            {
                "subscription_id": sub_id,
                "kind": EVENT,
                "event_number": first + i,
                "focus_type": f.res_type,
                "focus_id": f.res_id,
                "focus_version": f.version,
                "focus_content": f.content,
                "created_at": now,
                "status": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
            }
            for i, f in enumerate(focuses)
        ],
    )


def enqueue_control(conn: Connection, sub_id: str, kind: str, now: datetime) -> None:
    """A handshake or heartbeat: carries the current event count, numbers nothing."""
    events = int(conn.execute(select(s.c.events).where(s.c.id == sub_id)).scalar_one())
    conn.execute(
        insert(o).values(
            subscription_id=sub_id,
            kind=kind,
            event_number=events,
            created_at=now,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
        )
    )


class Outbox:
    """Fills the outbox from the store's writes (observer) and from the modules' events (`publish`)."""

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher

    def install(self, store: ResourceStore) -> None:
        for rt in STORE_TYPES:
            if self.observe not in store.observers.get(rt, []):
                store.observe(rt, self.observe)

    def observe(self, conn: Connection, events: list[WriteEvent]) -> None:
        if not events:
            return
        subs = live_subscriptions(conn, {e.res_type for e in events})
        if not subs:
            return
        now = utcnow()
        for sub in subs:
            mine = [e for e in events if e.res_type == sub.res_type]
            live = [e for e in mine if e.current is not None]
            matched = self.matcher.store_matches(conn, sub, [e.pk for e in live]) if live else set()
            focuses = [
                Focus(e.res_type, e.res_id, e.version_id)
                for e in mine
                if (e.pk in matched if e.current is not None else deletion_matches(sub, e.region))
            ]
            enqueue(conn, sub.id, focuses, now)

    def publish(self, conn: Connection, focus: Focus, facts: Facts) -> int:
        """A module event (Flag, MeasureReport) in the module's writing transaction; returns how many
        subscriptions it was queued for."""
        n = 0
        now = utcnow()
        for sub in live_subscriptions(conn, [focus.res_type]):
            if facts_match(sub.items, facts):
                enqueue(conn, sub.id, [focus], now)
                n += 1
        return n


# --- claiming and outcomes -------------------------------------------------------------------------------------
def claim(engine: Engine, worker: str, now: datetime, limit: int = 50) -> tuple[str, list[Claimed]]:
    """Lease up to `limit` due rows (oldest first) of subscriptions not in backoff."""
    token = f"{worker}:{uuid.uuid4().hex[:12]}"
    due = and_(
        o.c.next_attempt_at <= now,
        or_(o.c.status == PENDING, and_(o.c.status == DELIVERING, o.c.lease_until < now)),
        s.c.status.in_(LIVE_STATUSES),
        or_(s.c.retry_at.is_(None), s.c.retry_at <= now),
    )
    stmt = select(o.c.pk).select_from(o.join(s, s.c.id == o.c.subscription_id)).where(due).order_by(o.c.pk)
    stmt = stmt.limit(limit)
    with engine.connect() as c:  # an idle poll never takes the write lock (SQLite: one writer at a time)
        if c.execute(stmt.limit(1)).first() is None:
            return token, []
    with _write_conn(engine) as c, c.begin():
        if not is_sqlite(engine):
            stmt = stmt.with_for_update(skip_locked=True, of=o)
        pks = list(c.execute(stmt).scalars())
        if not pks:
            return token, []
        c.execute(update(o).where(o.c.pk.in_(pks)).values(status=DELIVERING, claimed_by=token, lease_until=now + LEASE))
        rows = c.execute(select(o).where(o.c.pk.in_(pks), o.c.claimed_by == token).order_by(o.c.pk)).all()
    return token, [
        Claimed(
            r.pk,
            r.subscription_id,
            r.kind,
            r.event_number,
            Focus(r.focus_type, r.focus_id, r.focus_version, r.focus_content) if r.focus_type else None,
            r.attempts,
            r.created_at,
        )
        for r in rows
    ]


def delivered(engine: Engine, token: str, row: Claimed, now: datetime) -> bool:
    """Mark one row sent; the subscription is active again and its backoff forgotten. False when the lease was
    lost meanwhile (another worker may have sent it too: the receiver dedups on the idempotency key)."""
    with _write_conn(engine) as c, c.begin():
        done = c.execute(
            update(o)
            .where(o.c.pk == row.pk, o.c.claimed_by == token)
            .values(status=DELIVERED, delivered_at=now, attempts=o.c.attempts + 1, lease_until=None)
        ).rowcount
        values: dict[str, Any] = {
            "failures": 0,
            "first_failure_at": None,
            "retry_at": None,
            "last_delivered_at": now,
            "updated_at": now,
        }
        hb = c.execute(select(s.c.heartbeat_s, s.c.status).where(s.c.id == row.subscription_id)).first()
        if hb is not None and hb.heartbeat_s:
            values["heartbeat_due"] = now + timedelta(seconds=hb.heartbeat_s)
        c.execute(update(s).where(s.c.id == row.subscription_id, s.c.status != OFF).values(status=ACTIVE, **values))
    return bool(done)


def failed(
    engine: Engine, token: str, row: Claimed, now: datetime, error: str, http_status: int | None
) -> datetime | None:
    """Record a failed attempt: error log row, subscription in `error` with its next try after the backoff; past
    the retry window the subscription is turned off and its undelivered rows expire. Returns the retry time."""
    with _write_conn(engine) as c, c.begin():
        sub = c.execute(select(s.c.failures, s.c.first_failure_at).where(s.c.id == row.subscription_id)).first()
        if sub is None:
            return None
        failures = sub.failures + 1
        first = sub.first_failure_at or now
        c.execute(
            insert(subscription_error).values(
                subscription_id=row.subscription_id,
                outbox_pk=row.pk,
                event_number=row.event_number,
                at=now,
                attempt=row.attempts + 1,
                http_status=http_status,
                error=error[:2000],
            )
        )
        if now - first > RETRY_WINDOW:
            message = f"deliveries failed for more than {RETRY_WINDOW}; last error: {error}"[:2000]
            c.execute(
                update(s)
                .where(s.c.id == row.subscription_id)
                .values(status=OFF, failures=failures, last_error=message, retry_at=None, updated_at=now)
            )
            c.execute(
                update(o)
                .where(o.c.subscription_id == row.subscription_id, o.c.status.in_((PENDING, DELIVERING)))
                .values(status=EXPIRED, lease_until=None)
            )
            return None
        retry = now + backoff(failures)
        c.execute(
            update(s)
            .where(s.c.id == row.subscription_id, s.c.status != OFF)
            .values(
                status=ERROR,
                failures=failures,
                first_failure_at=first,
                retry_at=retry,
                last_error=error[:2000],
                updated_at=now,
            )
        )
        c.execute(
            update(o)
            .where(o.c.pk == row.pk, o.c.claimed_by == token)
            .values(status=PENDING, attempts=o.c.attempts + 1, next_attempt_at=retry, claimed_by=None, lease_until=None)
        )
    return retry


def release(engine: Engine, token: str, rows: Sequence[Claimed], at: datetime) -> None:
    """Hand rows back without an attempt (their subscription just failed: they wait for its retry time)."""
    if not rows:
        return
    with _write_conn(engine) as c, c.begin():
        c.execute(
            update(o)
            .where(o.c.pk.in_([r.pk for r in rows]), o.c.claimed_by == token)
            .values(status=PENDING, next_attempt_at=at, claimed_by=None, lease_until=None)
        )


def schedule_heartbeats(engine: Engine, now: datetime) -> int:
    """Queue a heartbeat for each live subscription with a heartbeat period that has been quiet that long. The
    conditional UPDATE is the claim: two workers never queue the same heartbeat."""
    n = 0
    with engine.connect() as c:
        due = c.execute(
            select(s.c.id, s.c.heartbeat_s, s.c.heartbeat_due).where(
                s.c.status.in_((ACTIVE, ERROR)), s.c.heartbeat_s.is_not(None), s.c.heartbeat_due <= now
            )
        ).all()
    for sub_id, period, was in due:
        with _write_conn(engine) as c, c.begin():
            won = c.execute(
                update(s)
                .where(s.c.id == sub_id, s.c.heartbeat_due == was)
                .values(heartbeat_due=now + timedelta(seconds=period))
            ).rowcount
            if won:
                enqueue_control(c, sub_id, HEARTBEAT, now)
                n += 1
    return n


def end_expired(engine: Engine, now: datetime) -> int:
    """Subscriptions past their `end` are turned off."""
    with engine.connect() as c:
        if c.execute(select(s.c.id).where(s.c.end_at <= now, s.c.status != OFF).limit(1)).first() is None:
            return 0
    with _write_conn(engine) as c, c.begin():
        return c.execute(
            update(s)
            .where(s.c.end_at.is_not(None), s.c.end_at <= now, s.c.status != OFF)
            .values(status=OFF, reason=s.c.reason, last_error="end reached", updated_at=now)
        ).rowcount
