"""Declaring, amending and ending tension levels; the regional board and the history. Every write is authorised
per establishment (`access.rights.require_write`), audited, queued for FHIR subscribers (outbox, same
transaction) and published on the live stream after commit (ARS/SAMU pages get the alert)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, insert, select, update

from ror.access import audit
from ror.access.policy import Profile
from ror.access.rights import Forbidden, Unauthorized, require_write
from ror.access.tokens import Caller
from ror.capacity import stream
from ror.db.engine import is_sqlite
from ror.db.tables import idx_token, resource, tension_declaration
from ror.directory import ids
from ror.errors import InvalidRequest, NotFound
from ror.geo.service import Geography
from ror.search.extract import departement_of_commune
from ror.search.normalise import utcnow
from ror.store.meta import commune_code
from ror.store.store import ResourceStore
from ror.subscriptions.criteria import region_facts
from ror.subscriptions.outbox import Focus, Outbox
from ror.tension.model import LEVEL_SYSTEM, Action, Declaration, check_actions, check_level, check_reasons

t = tension_declaration
READ_PROFILES = (Profile.ALL, Profile.NO_CONTACTS)  # regulation information: ARS, SAMU, crisis cells
MAX_FUTURE = timedelta(minutes=5)


@dataclass(frozen=True)
class Establishment:
    organization_id: str
    finess: str
    name: str | None
    region: str | None
    departement: str | None
    content: dict[str, Any]


def may_read_all(profile: Profile) -> bool:
    return profile in READ_PROFILES


def readable_finess(caller: Caller) -> tuple[str, ...] | None:
    """None: every establishment; else the FINESS the caller may follow (its own feeds). 401/403 otherwise."""
    if caller.kind == "anonymous":
        raise Unauthorized("tension levels need an access token (POST /oauth/token)")
    if may_read_all(caller.profile):
        return None
    if caller.feeds:
        return caller.feeds
    raise Forbidden(f"access profile {int(caller.profile)} may not see tension levels (profiles 1 and 4 may)")


def _row(r: Any) -> Declaration:
    return Declaration(
        r.pk,
        r.finess,
        r.organization_id,
        r.organization_name,
        r.region,
        r.departement,
        r.level,
        r.previous_level,
        tuple(orjson.loads(r.reasons)),
        tuple(Action(a["code"], a.get("quantity")) for a in orjson.loads(r.actions)),
        r.comment,
        r.started_at,
        r.ended_at,
        r.declared_by,
        r.ended_by,
        r.updated_at,
        r.version_id,
    )


def _actor(caller: Caller) -> str:
    return f"{caller.kind}:{caller.subject or ''}"


class TensionService:
    def __init__(self, store: ResourceStore, outbox: Outbox, geography: Geography | None = None) -> None:
        self.store = store
        self.engine: Engine = store.engine
        self.outbox = outbox
        self.geography = geography

    # -- establishments ----------------------------------------------------------------------------------------
    def establishment(
        self, conn: Connection, organization_id: str | None = None, finess: str | None = None, lock: bool = False
    ) -> Establishment:
        rid = organization_id
        if rid is None and finess:
            rid = self._org_by_finess(conn, finess)
        q = select(resource.c.res_id, resource.c.region, resource.c.content).where(
            resource.c.res_type == "Organization", resource.c.res_id == (rid or ""), resource.c.deleted.is_(False)
        )
        if lock and not is_sqlite(self.engine):
            q = q.with_for_update()  # serialises the declarations of one establishment
        row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"establishment {organization_id or finess} is not known", expression="Flag.subject")
        res = orjson.loads(row.content)
        own = [i.get("value") for i in res.get("identifier") or [] if i.get("system") == ids.FINESS and i.get("value")]
        if not own:
            raise InvalidRequest(
                f"Organization/{row.res_id} has no FINESS number: only establishments declare tension",
                expression="Flag.subject",
            )
        commune = commune_code(res)
        dep = departement_of_commune(commune) if commune else None
        if dep is None:
            address = res.get("address")
            address = address[0] if isinstance(address, list) and address else address
            postal = (address or {}).get("postalCode") if isinstance(address, dict) else None
            dep = postal[:2] if postal else None
        return Establishment(row.res_id, str(own[0]), res.get("name"), row.region, dep, res)

    @staticmethod
    def _org_by_finess(conn: Connection, finess: str) -> str | None:
        eg = ids.eg_id(finess)
        found = conn.execute(
            select(resource.c.res_id).where(resource.c.res_type == "Organization", resource.c.res_id == eg)
        ).scalar()
        if found:
            return found
        return conn.execute(
            select(resource.c.res_id)
            .join(idx_token, idx_token.c.resource_pk == resource.c.pk)
            .where(
                idx_token.c.res_type == "Organization",
                idx_token.c.param == "identifier",
                idx_token.c.code == finess,
                resource.c.deleted.is_(False),
            )
            .limit(1)
        ).scalar()

    # -- writes -------------------------------------------------------------------------------------------------
    @contextmanager
    def _authorised(self, caller: Caller, action: str, target: str, remote_addr: str | None) -> Iterator[None]:
        try:
            yield
        except (Forbidden, Unauthorized) as exc:
            audit.failure(
                self.engine,
                caller,
                exc,
                action="denied",
                res_type="Flag",
                res_id=target,
                remote_addr=remote_addr,
                detail=f"{action}: {exc.diagnostics}",
            )
            raise

    def declare(
        self,
        caller: Caller,
        *,
        level: int,
        organization_id: str | None = None,
        finess: str | None = None,
        reasons: Sequence[str] = (),
        actions: Sequence[Action] = (),
        comment: str | None = None,
        start: datetime | None = None,
        remote_addr: str | None = None,
    ) -> Declaration:
        """A new level for an establishment: the declaration in force (if any) ends when this one starts."""
        level = check_level(level, "Flag.code")
        reasons_t = check_reasons(list(reasons), "Flag.extension")
        actions_t = check_actions(list(actions), "Flag.extension")
        now = utcnow()
        start = start or now
        if start > now + MAX_FUTURE:
            raise InvalidRequest("a tension level cannot start in the future", expression="Flag.period.start")
        target = organization_id or finess or "?"
        with self._authorised(caller, "declare", target, remote_addr), self.store.write_tx() as c:
            est = self.establishment(c, organization_id, finess, lock=True)
            require_write(c, caller, est.content)
            current = self._current(c, est.finess)
            if current is not None and start < current.started_at:
                raise InvalidRequest("a new level cannot start before the one in force", expression="Flag.period.start")
            if current is not None:
                self._close(c, current, start, caller, now)
            pk = c.execute(
                insert(t).values(
                    finess=est.finess,
                    organization_id=est.organization_id,
                    organization_name=est.name,
                    region=est.region,
                    departement=est.departement,
                    level=level,
                    previous_level=current.level if current else 0,
                    reasons=orjson.dumps(list(reasons_t)).decode(),
                    actions=orjson.dumps([a.as_json() for a in actions_t]).decode(),
                    comment=comment,
                    started_at=start,
                    declared_by=_actor(caller),
                    recorded_at=now,
                    updated_at=now,
                    version_id=1,
                )
            ).inserted_primary_key[0]
            created = self._get(c, pk)
            self._publish(c, created)
            audit.record(
                c,
                actor_type=caller.kind,
                actor_id=caller.subject,
                action="create",
                outcome="success",
                res_type="Flag",
                res_id=created.id,
                version_id=1,
                remote_addr=remote_addr,
                detail=f"{est.finess} niveau {level} (précédent {created.previous_level})",
            )
        return created

    def amend(
        self,
        caller: Caller,
        flag_id: str,
        *,
        reasons: Sequence[str] | None = None,
        actions: Sequence[Action] | None = None,
        comment: str | None = None,
        end: datetime | None = None,
        remote_addr: str | None = None,
    ) -> Declaration:
        """Change the reasons/actions/comment of a declaration, or end it (`end`: back to normal)."""
        pk = self._pk(flag_id)
        now = utcnow()
        with self._authorised(caller, "update", flag_id, remote_addr), self.store.write_tx() as c:
            current = self._get(c, pk)
            est = self.establishment(c, current.organization_id, lock=True)
            require_write(c, caller, est.content)
            current = self._get(c, pk)
            values: dict[str, Any] = {"updated_at": now, "version_id": current.version_id + 1}
            if reasons is not None:
                values["reasons"] = orjson.dumps(list(check_reasons(list(reasons), "Flag.extension"))).decode()
            if actions is not None:
                acts = check_actions(list(actions), "Flag.extension")
                values["actions"] = orjson.dumps([a.as_json() for a in acts]).decode()
            if comment is not None:
                values["comment"] = comment
            if end is not None:
                if current.ended_at is not None:
                    raise InvalidRequest(f"Flag/{flag_id} has already ended", expression="Flag.period.end")
                if end < current.started_at:
                    raise InvalidRequest("period.end is before period.start", expression="Flag.period.end")
                values.update(ended_at=end, ended_by=_actor(caller))
            elif current.ended_at is not None:
                raise InvalidRequest(f"Flag/{flag_id} has ended; declare a new level instead", expression="Flag")
            c.execute(update(t).where(t.c.pk == pk).values(**values))
            changed = self._get(c, pk)
            self._publish(c, changed)
            audit.record(
                c,
                actor_type=caller.kind,
                actor_id=caller.subject,
                action="update",
                outcome="success",
                res_type="Flag",
                res_id=changed.id,
                version_id=changed.version_id,
                remote_addr=remote_addr,
                detail="fin de tension" if end is not None else "motifs / mesures",
            )
        return changed

    def end(
        self, caller: Caller, flag_id: str, at: datetime | None = None, remote_addr: str | None = None
    ) -> Declaration:
        return self.amend(caller, flag_id, end=at or utcnow(), remote_addr=remote_addr)

    def _close(self, c: Connection, current: Declaration, at: datetime, caller: Caller, now: datetime) -> None:
        c.execute(
            update(t)
            .where(t.c.pk == current.pk)
            .values(ended_at=at, ended_by=_actor(caller), updated_at=now, version_id=current.version_id + 1)
        )
        self._publish(c, self._get(c, current.pk), live=False)

    def _publish(self, c: Connection, d: Declaration, live: bool = True) -> None:
        facts = {
            "_tag": region_facts(d.region),
            "subject": {f"Organization/{d.organization_id}", d.organization_id},
            "code": {str(d.level), f"{LEVEL_SYSTEM}|{d.level}"},
            "status": {"active" if d.active else "inactive"},
            "escalation": {"true" if d.active and d.escalation else "false"},
            "departement": {d.departement} if d.departement else set(),
        }
        self.outbox.publish(c, Focus("Flag", d.id, d.version_id, d.flag_json()), facts)
        if live:
            stream.remember(c, [self.live_event(d)])

    @staticmethod
    def live_event(d: Declaration) -> dict[str, Any]:
        return {
            "kind": "tension",
            "flag": d.id,
            "organization": d.organization_id,
            "name": d.organization_name,
            "finess": d.finess,
            "level": d.level if d.active else 0,
            "label": d.label if d.active else "Fin de tension",
            "previous_level": d.previous_level if d.active else d.level,
            "escalation": d.active and d.escalation,
            "region": d.region,
            "departement": d.departement,
            "at": (d.started_at if d.active else (d.ended_at or d.started_at)).isoformat() + "Z",
        }

    # -- reads --------------------------------------------------------------------------------------------------
    @staticmethod
    def _pk(flag_id: str) -> int:
        if not flag_id.startswith("tes-") or not flag_id[4:].isdigit():
            raise NotFound(f"Flag/{flag_id} is not known", expression="Flag")
        return int(flag_id[4:])

    @staticmethod
    def _current(c: Connection, finess: str) -> Declaration | None:
        r = c.execute(select(t).where(t.c.finess == finess, t.c.ended_at.is_(None)).order_by(t.c.pk.desc())).first()
        return _row(r) if r is not None else None

    @staticmethod
    def _get(c: Connection, pk: int) -> Declaration:
        r = c.execute(select(t).where(t.c.pk == pk)).first()
        if r is None:
            raise NotFound(f"Flag/tes-{pk} is not known", expression="Flag")
        return _row(r)

    def get(self, flag_id: str, finess_in: Sequence[str] | None = None) -> Declaration:
        with self.engine.connect() as c:
            d = self._get(c, self._pk(flag_id))
        if finess_in is not None and d.finess not in finess_in:
            raise NotFound(f"Flag/{flag_id} is not known", expression="Flag")
        return d

    def search(
        self,
        *,
        region: str | None = None,
        departement: str | None = None,
        organization_id: str | None = None,
        finess: str | None = None,
        active: bool | None = None,
        levels: Sequence[int] | None = None,
        finess_in: Sequence[str] | None = None,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[Declaration]:
        conds = []
        if region:
            conds.append(t.c.region == region)
        if departement:
            conds.append(t.c.departement == departement)
        if organization_id:
            conds.append(t.c.organization_id == organization_id)
        if finess:
            conds.append(t.c.finess == finess)
        if active is not None:
            conds.append(t.c.ended_at.is_(None) if active else t.c.ended_at.is_not(None))
        if levels:
            conds.append(t.c.level.in_(list(levels)))
        if finess_in is not None:
            conds.append(t.c.finess.in_(list(finess_in)))
        if since is not None:
            conds.append(t.c.started_at >= since)
        q = select(t).where(and_(*conds)) if conds else select(t)
        with self.engine.connect() as c:
            rows = c.execute(q.order_by(t.c.started_at.desc(), t.c.pk.desc()).limit(limit)).all()
        return [_row(r) for r in rows]

    def board(self, region: str | None = None) -> list[Declaration]:
        """Establishments in tension now, highest level first."""
        items = self.search(region=region, active=True, limit=1000)
        return sorted(items, key=lambda d: (-d.level, d.started_at))

    def escalations(self, region: str | None, since: datetime) -> list[Declaration]:
        return [d for d in self.search(region=region, since=since, limit=200) if d.escalation]


__all__ = ["READ_PROFILES", "TensionService", "may_read_all", "readable_finess"]
