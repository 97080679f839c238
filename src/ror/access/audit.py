"""Audit trail: every write and every denied access, recorded in the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, exists, insert, literal, or_, select

from ror.access.tokens import Caller
from ror.db.tables import audit_event, person, resource
from ror.errors import RorError
from ror.search.normalise import utcnow
from ror.store.rawsql import Batch


def entry(
    *,
    actor_type: str,
    actor_id: str | None,
    action: str,
    outcome: str,
    res_type: str | None = None,
    res_id: str | None = None,
    version_id: int | None = None,
    remote_addr: str | None = None,
    detail: str | None = None,
) -> dict[str, object]:
    """One audit row (for `record_many`)."""
    return {
        "recorded": utcnow(),
        "actor_type": actor_type,
        "actor_id": actor_id,
        "action": action,
        "outcome": outcome,
        "res_type": res_type,
        "res_id": res_id,
        "version_id": version_id,
        "remote_addr": remote_addr,
        "detail": detail[:2000] if detail else None,
    }


_AUDIT_COLS = (
    "recorded",
    "actor_type",
    "actor_id",
    "action",
    "outcome",
    "res_type",
    "res_id",
    "version_id",
    "remote_addr",
    "detail",
)


def add(batch: Batch, rows: list[dict[str, object]]) -> None:
    """Audit rows joining a write's batch (one round trip with the write on PostgreSQL)."""
    batch.insert(audit_event, _AUDIT_COLS, [tuple(r.get(col) for col in _AUDIT_COLS) for r in rows])


def record_many(target: Engine | Connection, rows: list[dict[str, object]]) -> None:
    """Several audit rows in one statement (a bulk feed writes one per entry)."""
    if not rows:
        return
    if isinstance(target, Connection):  # inside a write: at driver level (the capacity feed's hot path)
        batch = Batch(target)
        add(batch, rows)
        batch.run()
    else:
        with target.begin() as c:
            c.execute(insert(audit_event), rows)


def record(target: Engine | Connection, **fields: Any) -> None:
    """One audit row (the fields of `entry`)."""
    record_many(target, [entry(**fields)])


def success_entry(caller: Caller, **fields: Any) -> dict[str, object]:
    """The audit row of a write the caller asked for and got (`fields`: `entry`'s action, res_type, res_id,
    version_id, remote_addr, detail)."""
    return entry(actor_type=caller.kind, actor_id=caller.subject, outcome="success", **fields)


def failure_entry(
    caller: Caller,
    exc: RorError,
    *,
    action: str,
    res_type: str | None,
    res_id: str | None,
    remote_addr: str | None = None,
) -> dict[str, object]:
    """The audit row of a write the caller asked for and did not get: outcome `denied` (401/403) or `error`."""
    return entry(
        actor_type=caller.kind,
        actor_id=caller.subject,
        action=action,
        outcome="denied" if exc.status in (401, 403) else "error",
        res_type=res_type,
        res_id=res_id,
        remote_addr=remote_addr,
        detail=exc.diagnostics,
    )


def failure(
    target: Engine | Connection, caller: Caller, exc: RorError, *, detail: str | None = None, **where: Any
) -> None:
    """Record a write the caller asked for and did not get (`failure_entry`, whose keywords `where` are: action,
    res_type, res_id, remote_addr); `detail` replaces the error's diagnostics."""
    row = failure_entry(caller, exc, **where)
    if detail is not None:
        row["detail"] = detail[:2000]
    record_many(target, [row])


# -- reading the trail (administration page, FHIR AuditEvent) ---------------------------------------------------
@dataclass(frozen=True)
class AuditQuery:
    """Criteria of an audit-log search; every field is optional. `before`: keyset cursor (events with a smaller
    pk, newest first). `region`: only the events of a région — about a resource of the région, or made by a
    person of the région (a regional administrator's view)."""

    since: datetime | None = None  # recorded >= since
    until: datetime | None = None  # recorded < until
    actor: str | None = None  # actor_id, exact (a person's email matches its logins and its writes)
    action: str | None = None
    outcome: str | None = None  # success | denied | error
    res_type: str | None = None
    res_id: str | None = None
    region: str | None = None
    before: int | None = None
    limit: int = 50


@dataclass(frozen=True)
class AuditRow:
    pk: int
    recorded: datetime
    actor_type: str
    actor_id: str | None
    action: str
    outcome: str
    res_type: str | None
    res_id: str | None
    version_id: int | None
    remote_addr: str | None
    detail: str | None


def search(conn: Connection, q: AuditQuery) -> tuple[list[AuditRow], int | None]:
    """(events newest first, cursor of the next page or None). One indexed query (pk order)."""
    a = audit_event
    stmt = select(a)
    if q.since is not None:
        stmt = stmt.where(a.c.recorded >= q.since)
    if q.until is not None:
        stmt = stmt.where(a.c.recorded < q.until)
    if q.actor:
        actor = q.actor.strip()
        email = actor.removeprefix("person:").lower()
        stmt = stmt.where(a.c.actor_id.in_(sorted({actor, email, f"person:{email}"})))
    if q.action:
        stmt = stmt.where(a.c.action == q.action)
    if q.outcome:
        stmt = stmt.where(a.c.outcome == q.outcome)
    if q.res_type:
        stmt = stmt.where(a.c.res_type == q.res_type)
    if q.res_id:
        stmt = stmt.where(a.c.res_id == q.res_id)
    if q.region:
        people = select(person.c.email).where(person.c.region == q.region)
        about = exists().where(
            resource.c.res_type == a.c.res_type, resource.c.res_id == a.c.res_id, resource.c.region == q.region
        )
        stmt = stmt.where(
            or_(
                about,
                a.c.actor_id.in_(people),
                a.c.actor_id.in_(select(literal("person:") + person.c.email).where(person.c.region == q.region)),
            )
        )
    if q.before is not None:
        stmt = stmt.where(a.c.pk < q.before)
    rows = conn.execute(stmt.order_by(a.c.pk.desc()).limit(q.limit + 1)).all()
    out = [AuditRow(**{k: getattr(r, k) for k in AuditRow.__dataclass_fields__}) for r in rows[: q.limit]]
    return out, (out[-1].pk if len(rows) > q.limit else None)
