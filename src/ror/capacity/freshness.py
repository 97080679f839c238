"""Freshness: every current availability indicator has an age; a unit is stale when its current availability
(status 02, temporality 01) is older than the rule of its territory (24 h, or the active crisis's interval), or
when it has installed capacity and no availability at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from ror.capacity.crisis import CrisisRegistry, limit_for
from ror.db.tables import capacity
from ror.search.normalise import utcnow


@dataclass(frozen=True)
class UnitFreshness:
    location_id: str
    region: str | None
    departement: str | None
    last_update: datetime | None  # newest capacityUpdateDate of its current availability; None = never
    limit: timedelta

    def age(self, at: datetime) -> timedelta | None:
        return None if self.last_update is None else at - self.last_update

    def stale(self, at: datetime) -> bool:
        age = self.age(at)
        return age is None or age > self.limit


def unit_freshness(
    engine: Engine, *, region: str | None = None, departement: str | None = None, at: datetime | None = None
) -> list[UnitFreshness]:
    """Freshness of every unit with installed capacity in the territory (one query + the active crises)."""
    at = at or utcnow()
    c = capacity
    q = (
        select(c.c.location_id, c.c.region, c.c.departement, c.c.status, c.c.temporality, func.max(c.c.updated_at))
        .where(c.c.status.in_(("01", "02")), c.c.temporality == "01")
        .group_by(c.c.location_id, c.c.region, c.c.departement, c.c.status, c.c.temporality)
    )
    if region:
        q = q.where(c.c.region == region)
    if departement:
        q = q.where(c.c.departement == departement)
    installed: dict[str, tuple[str | None, str | None]] = {}
    latest: dict[str, datetime] = {}
    with engine.connect() as conn:
        for loc, reg, dep, status, _temporality, updated in conn.execute(q):
            if status == "01":
                installed[loc] = (reg, dep)
            else:
                latest[loc] = updated
    active = CrisisRegistry(engine).active(at)
    return [
        UnitFreshness(loc, reg, dep, latest.get(loc), limit_for(active, reg, dep))
        for loc, (reg, dep) in sorted(installed.items())
    ]
