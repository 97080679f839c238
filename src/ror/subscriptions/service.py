"""Creating, reading, listing and deleting subscriptions; their status and error log. Only authenticated callers
subscribe; a subscription is visible to its owner only (others get 404, as for an unknown id)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, delete, func, insert, select

from ror.access import audit
from ror.access.policy import Profile
from ror.access.rights import Forbidden, Unauthorized
from ror.access.tokens import Caller
from ror.db.tables import subscription, subscription_error, subscription_outbox
from ror.errors import NotFound
from ror.search.normalise import utcnow
from ror.store.store import ResourceStore
from ror.subscriptions import outbox
from ror.subscriptions.model import MODULE_TYPES, REQUESTED, Spec, Subscription, parse_spec, row_to_subscription
from ror.subscriptions.outbox import HANDSHAKE, Outbox

# Tension (Flag) and emergency activity (MeasureReport) are regulation information: profiles that see every
# capacity status (1 everything, 4 everything but contacts) — the same rule as their FHIR searches.
MODULE_PROFILES = (Profile.ALL, Profile.NO_CONTACTS)
s, o, err = subscription, subscription_outbox, subscription_error


def owner_key(caller: Caller) -> str:
    return f"{caller.kind}:{caller.subject or ''}"


@dataclass(frozen=True)
class StatusReport:
    subscription: Subscription
    pending: int
    delivered: int
    expired: int
    errors: list[dict[str, Any]]


class SubscriptionService:
    def __init__(self, store: ResourceStore, box: Outbox) -> None:
        self.store = store
        self.engine: Engine = store.engine
        self.outbox = box
        self.matcher = box.matcher
        box.install(store)

    # -- create / read / delete -----------------------------------------------------------------------------------
    def create(self, caller: Caller, res: dict[str, Any]) -> Subscription:
        self._require_client(caller)
        spec = parse_spec(res)
        if spec.res_type in MODULE_TYPES and caller.profile not in MODULE_PROFILES:
            raise Forbidden(
                f"access profile {int(caller.profile)} may not follow {spec.res_type} (profiles 1 and 4 may)",
                expression="Subscription.criteria",
            )
        self.matcher.check(spec.res_type, spec.criteria)
        return self._insert(caller, spec)

    def _insert(self, caller: Caller, spec: Spec) -> Subscription:
        now = utcnow()
        sub_id = uuid.uuid4().hex
        with self.store.write_tx() as c:
            c.execute(
                insert(s).values(
                    id=sub_id,
                    status=REQUESTED,
                    topic=spec.topic,
                    criteria=spec.criteria,
                    res_type=spec.res_type,
                    endpoint=spec.endpoint,
                    headers=orjson.dumps(list(spec.headers)).decode(),
                    content=spec.content,
                    heartbeat_s=spec.heartbeat_s,
                    heartbeat_due=now + timedelta(seconds=spec.heartbeat_s) if spec.heartbeat_s else None,
                    end_at=spec.end_at,
                    reason=spec.reason,
                    owner=owner_key(caller),
                    profile=int(caller.profile),
                    events=0,
                    failures=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            outbox.enqueue_control(c, sub_id, HANDSHAKE, now)
            audit.record(
                c,
                actor_type=caller.kind,
                actor_id=caller.subject,
                action="create",
                outcome="success",
                res_type="Subscription",
                res_id=sub_id,
                detail=f"{spec.criteria} -> {spec.endpoint}",
            )
        return self.get(caller, sub_id)

    def get(self, caller: Caller, sub_id: str) -> Subscription:
        self._require_client(caller)
        with self.engine.connect() as c:
            r = c.execute(select(s).where(s.c.id == sub_id)).first()
        if r is None or r.owner != owner_key(caller):
            raise NotFound(f"Subscription/{sub_id} is not known", expression="Subscription")
        return row_to_subscription(r)

    def list(self, caller: Caller) -> list[Subscription]:
        self._require_client(caller)
        with self.engine.connect() as c:
            rows = c.execute(select(s).where(s.c.owner == owner_key(caller)).order_by(s.c.created_at, s.c.id)).all()
        return [row_to_subscription(r) for r in rows]

    def delete(self, caller: Caller, sub_id: str) -> None:
        self.get(caller, sub_id)
        with self.store.write_tx() as c:
            c.execute(delete(s).where(s.c.id == sub_id))
            audit.record(
                c,
                actor_type=caller.kind,
                actor_id=caller.subject,
                action="delete",
                outcome="success",
                res_type="Subscription",
                res_id=sub_id,
            )

    def status(self, caller: Caller, sub_id: str, errors: int = 20) -> StatusReport:
        sub = self.get(caller, sub_id)
        with self.engine.connect() as c:
            rows = c.execute(
                select(o.c.status, func.count()).where(o.c.subscription_id == sub_id).group_by(o.c.status)
            ).all()
            counts = {status: n for status, n in rows}
            log = c.execute(
                select(err)
                .where(err.c.subscription_id == sub_id)
                .order_by(err.c.at.desc(), err.c.pk.desc())
                .limit(errors)
            ).all()
        return StatusReport(
            sub,
            counts.get(outbox.PENDING, 0) + counts.get(outbox.DELIVERING, 0),
            counts.get(outbox.DELIVERED, 0),
            counts.get(outbox.EXPIRED, 0),
            [
                {
                    "at": e.at,
                    "attempt": e.attempt,
                    "event_number": e.event_number,
                    "http_status": e.http_status,
                    "error": e.error,
                }
                for e in log
            ],
        )

    @staticmethod
    def _require_client(caller: Caller) -> None:
        if caller.kind == "anonymous":
            raise Unauthorized("subscriptions need an access token (POST /oauth/token)")
