"""Audit trail: every write and every denied access, recorded in the database."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, insert

from ror.db.tables import audit_event
from ror.search.normalise import utcnow


def record(
    target: Engine | Connection,
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
) -> None:
    stmt = insert(audit_event).values(
        recorded=utcnow(),
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        outcome=outcome,
        res_type=res_type,
        res_id=res_id,
        version_id=version_id,
        remote_addr=remote_addr,
        detail=detail[:2000] if detail else None,
    )
    if isinstance(target, Connection):
        target.execute(stmt)
    else:
        with target.begin() as c:
            c.execute(stmt)
