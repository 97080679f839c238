"""Recording emergency-department activity (rights per establishment, audit, FHIR subscribers notified in the
same transaction) and reading it back: latest figures per department, aggregated time series per territory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, and_, func, insert, select

from ror.access import audit
from ror.access.rights import Forbidden, Unauthorized, establishment_finess, require_write
from ror.access.tokens import Caller
from ror.db.tables import idx_reference, idx_token, resource, urgences_report
from ror.directory import ids
from ror.errors import InvalidRequest, NotFound
from ror.search.extract import departement_of_commune
from ror.search.normalise import utcnow
from ror.store.meta import commune_code
from ror.store.store import ResourceStore
from ror.subscriptions.criteria import region_facts
from ror.subscriptions.outbox import Focus, Outbox
from ror.urgences.model import CARE_MODE_URGENCES, Figures, Report

u = urgences_report
MAX_FUTURE = timedelta(minutes=5)
MAX_PAST = timedelta(days=7)


@dataclass(frozen=True)
class Department:
    """An emergency department: an offer with care mode 33 and what its reports copy from it."""

    service_id: str
    name: str | None
    location_id: str | None
    organization_id: str | None
    finess: str | None
    region: str | None
    departement: str | None
    content: dict[str, Any]


@dataclass(frozen=True)
class Point:
    at: datetime  # start of the bucket
    present: int
    waiting_bed: int
    passages_24h: int
    departments: int  # how many departments reported in the bucket


def _row(r: Any) -> Report:
    return Report(
        r.pk,
        r.service_id,
        r.location_id,
        r.organization_id,
        r.finess,
        r.region,
        r.departement,
        r.observed_at,
        r.present,
        r.waiting_bed,
        r.passages_24h,
        r.source,
        r.recorded_at,
    )


def _ref(ref: Any, res_type: str) -> str | None:
    value = str((ref or {}).get("reference", "")) if isinstance(ref, dict) else ""
    return value.split("/", 1)[1] if value.startswith(f"{res_type}/") else None


class UrgencesService:
    def __init__(self, store: ResourceStore, outbox: Outbox) -> None:
        self.store = store
        self.engine: Engine = store.engine
        self.outbox = outbox

    # -- departments --------------------------------------------------------------------------------------------
    def department(self, conn: Connection, service_id: str | None, location_id: str | None = None) -> Department:
        if service_id is None and location_id is not None:
            service_id = conn.execute(
                select(resource.c.res_id)
                .join(idx_reference, idx_reference.c.resource_pk == resource.c.pk)
                .where(
                    idx_reference.c.res_type == "HealthcareService",
                    idx_reference.c.param == "location",
                    idx_reference.c.target_id == location_id,
                    resource.c.deleted.is_(False),
                )
                .order_by(resource.c.pk)
                .limit(1)
            ).scalar()
        row = conn.execute(
            select(resource.c.region, resource.c.content).where(
                resource.c.res_type == "HealthcareService",
                resource.c.res_id == (service_id or ""),
                resource.c.deleted.is_(False),
            )
        ).first()
        if row is None or service_id is None:
            raise NotFound(f"emergency department {service_id or location_id} is not known", expression="subject")
        hs = orjson.loads(row.content)
        modes = {
            c.get("code")
            for ch in hs.get("characteristic") or []
            for c in ch.get("coding") or []
            if c.get("system") == ids.TRE_R213
        }
        if CARE_MODE_URGENCES not in modes:
            raise InvalidRequest(
                f"HealthcareService/{service_id} is not an emergency department (care mode 33 Accueil des urgences)",
                expression="subject",
            )
        loc_id = location_id or next(
            (_ref(x, "Location") for x in hs.get("location") or [] if _ref(x, "Location")), None
        )
        dep = None
        if loc_id:
            content = conn.execute(
                select(resource.c.content).where(resource.c.res_type == "Location", resource.c.res_id == loc_id)
            ).scalar()
            commune = commune_code(orjson.loads(content)) if content else None
            dep = departement_of_commune(commune) if commune else None
        org_id = _ref(hs.get("providedBy"), "Organization")
        org = conn.execute(
            select(resource.c.content).where(resource.c.res_type == "Organization", resource.c.res_id == (org_id or ""))
        ).scalar()
        own = establishment_finess(conn, orjson.loads(org)) if org else set()
        direct = [i.get("value") for i in orjson.loads(org).get("identifier") or [] if i.get("system") == ids.FINESS]
        eg = next((str(v) for v in direct if v), None) if org else None
        eg = eg or (sorted(own)[0] if own else None)
        return Department(service_id, hs.get("name"), loc_id, org_id, eg, row.region, dep, hs)

    def departments(self, region: str | None = None) -> list[Department]:
        """Every emergency department (of a region)."""
        q = (
            select(resource.c.res_id)
            .join(idx_token, idx_token.c.resource_pk == resource.c.pk)
            .where(
                idx_token.c.res_type == "HealthcareService",
                idx_token.c.param == "characteristic",
                idx_token.c.code == CARE_MODE_URGENCES,
                idx_token.c.system == ids.TRE_R213,
                resource.c.deleted.is_(False),
            )
        )
        if region:
            q = q.where(resource.c.region == region)
        with self.engine.connect() as c:
            found = sorted(set(c.execute(q).scalars()))
            return [self.department(c, sid) for sid in found]

    # -- writes -------------------------------------------------------------------------------------------------
    def record(
        self,
        caller: Caller,
        figures: Figures,
        *,
        service_id: str | None = None,
        location_id: str | None = None,
        observed_at: datetime | None = None,
        source: str = "feed",
        remote_addr: str | None = None,
    ) -> Report:
        now = utcnow()
        at = observed_at or now
        if at > now + MAX_FUTURE or at < now - MAX_PAST:
            raise InvalidRequest("the observation time must be within the last 7 days", expression="MeasureReport.date")
        try:
            with self.store.write_tx() as c:
                dep = self.department(c, service_id, location_id)
                require_write(c, caller, dep.content)
                report = self._insert(c, dep, figures, at, source, now, caller)
                audit.record(
                    c,
                    actor_type=caller.kind,
                    actor_id=caller.subject,
                    action="create",
                    outcome="success",
                    res_type="MeasureReport",
                    res_id=report.id,
                    remote_addr=remote_addr,
                    detail=f"urgences {dep.service_id}: {figures.present}/{figures.waiting_bed}/{figures.passages_24h}",
                )
        except (Forbidden, Unauthorized) as exc:  # audited after the rollback (SQLite: one writer at a time)
            audit.failure(
                self.engine,
                caller,
                exc,
                action="denied",
                res_type="MeasureReport",
                res_id=service_id or location_id or "?",
                remote_addr=remote_addr,
            )
            raise
        return report

    def _insert(
        self,
        c: Connection,
        dep: Department,
        f: Figures,
        at: datetime,
        source: str,
        now: datetime,
        caller: Caller | None,
    ) -> Report:
        pk = c.execute(
            insert(u).values(
                service_id=dep.service_id,
                location_id=dep.location_id,
                organization_id=dep.organization_id,
                finess=dep.finess,
                region=dep.region,
                departement=dep.departement,
                observed_at=at,
                present=f.present,
                waiting_bed=f.waiting_bed,
                passages_24h=f.passages_24h,
                source=source,
                recorded_at=now,
                recorded_by=f"{caller.kind}:{caller.subject or ''}" if caller else "system",
            )
        ).inserted_primary_key[0]
        report = _row(c.execute(select(u).where(u.c.pk == pk)).one())
        facts = {
            "_tag": region_facts(report.region),
            "subject": {f"Location/{report.location_id}", f"HealthcareService/{report.service_id}"},
            "departement": {report.departement} if report.departement else set(),
        }
        content = orjson.dumps(report.measure_report()).decode()
        self.outbox.publish(c, Focus("MeasureReport", report.id, 1, content), facts)
        return report

    def load(self, rows: Sequence[tuple[Department, Figures, datetime]], source: str = "demo") -> int:
        """Bulk insert (demo, imports): no rights check, one transaction."""
        now = utcnow()
        with self.store.write_tx() as c:
            for dep, f, at in rows:
                self._insert(c, dep, f, at, source, now, None)
        return len(rows)

    # -- reads --------------------------------------------------------------------------------------------------
    def get(self, report_id: str) -> Report:
        if not report_id.startswith("urg-") or not report_id[4:].isdigit():
            raise NotFound(f"MeasureReport/{report_id} is not known", expression="MeasureReport")
        with self.engine.connect() as c:
            r = c.execute(select(u).where(u.c.pk == int(report_id[4:]))).first()
        if r is None:
            raise NotFound(f"MeasureReport/{report_id} is not known", expression="MeasureReport")
        return _row(r)

    def search(
        self,
        *,
        region: str | None = None,
        departement: str | None = None,
        service_id: str | None = None,
        location_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        finess_in: Sequence[str] | None = None,
        limit: int = 200,
    ) -> list[Report]:
        conds = []
        for col, v in (
            (u.c.region, region),
            (u.c.departement, departement),
            (u.c.service_id, service_id),
            (u.c.location_id, location_id),
        ):
            if v:
                conds.append(col == v)
        if since is not None:
            conds.append(u.c.observed_at >= since)
        if until is not None:
            conds.append(u.c.observed_at <= until)
        if finess_in is not None:
            conds.append(u.c.finess.in_(list(finess_in)))
        q = select(u).where(and_(*conds)) if conds else select(u)
        with self.engine.connect() as c:
            rows = c.execute(q.order_by(u.c.observed_at.desc(), u.c.pk.desc()).limit(limit)).all()
        return [_row(r) for r in rows]

    def latest(self, region: str | None = None, at: datetime | None = None) -> list[Report]:
        """The last report of each department (at or before `at`)."""
        at = at or utcnow() + MAX_FUTURE
        inner = select(u.c.service_id, func.max(u.c.observed_at).label("last")).where(u.c.observed_at <= at)
        if region:
            inner = inner.where(u.c.region == region)
        last = inner.group_by(u.c.service_id).subquery()
        q = (
            select(u)
            .join(last, and_(last.c.service_id == u.c.service_id, last.c.last == u.c.observed_at))
            .order_by(u.c.service_id, u.c.pk.desc())
        )
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        out: dict[str, Report] = {}
        for r in rows:
            out.setdefault(r.service_id, _row(r))
        return list(out.values())

    def series(
        self,
        since: datetime,
        until: datetime,
        step: timedelta = timedelta(hours=1),
        *,
        region: str | None = None,
        departement: str | None = None,
        service_id: str | None = None,
    ) -> list[Point]:
        """One point per bucket [since + k·step, +step): each department's last report in the bucket, summed over
        the departments that reported in it (a department silent in a bucket is not counted there)."""
        if step <= timedelta(0) or until <= since:
            raise InvalidRequest("the series needs since < until and a positive step", expression="step")
        reports = self.search(
            region=region, departement=departement, service_id=service_id, since=since, until=until, limit=100_000
        )
        buckets: dict[int, dict[str, Report]] = {}
        for r in sorted(reports, key=lambda x: (x.observed_at, x.pk)):
            k = int((r.observed_at - since) / step)
            buckets.setdefault(k, {})[r.service_id] = r  # later wins
        n = int((until - since) / step) + (1 if (until - since) % step else 0)
        points = []
        for k in range(n):
            last = buckets.get(k, {}).values()
            points.append(
                Point(
                    since + k * step,
                    sum(x.present for x in last),
                    sum(x.waiting_bed for x in last),
                    sum(x.passages_24h for x in last),
                    len(last),
                )
            )
        return points
