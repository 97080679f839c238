"""The figures of the dashboard, in a few SQL queries over the capacity projection (`capacity`): critical-care
capacity (réanimation, soins intensifs, surveillance continue — the activity of the offer delivered at the Location,
via the search indexes) by département and by establishment, and the units whose availability is stale."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, and_, case, func, select

from ror.db.tables import capacity, capacity_event, idx_reference, idx_token, resource
from ror.directory import ids

CRITICAL: dict[str, tuple[str, ...]] = {
    "rea": tuple(f"{n}" for n in range(121, 131)),
    "si": ("351", "354", "356", "369"),
    "sc": ("373", "391"),
}
CATEGORY_LABELS = {"rea": "Réanimation", "si": "Soins intensifs", "sc": "Surveillance continue"}
CATEGORY_OF = {code: cat for cat, codes in CRITICAL.items() for code in codes}
STALE_AFTER = timedelta(hours=24)


@dataclass(slots=True)
class Totals:
    installed: int = 0
    available: int = 0
    occupied: int = 0
    by_category: dict[str, int] = field(default_factory=dict)  # available per category
    updated_at: datetime | None = None  # oldest availability update among the units

    @property
    def occupancy(self) -> float | None:
        return self.occupied / self.installed if self.installed else None

    @property
    def rate(self) -> float | None:
        """available / installed."""
        return self.available / self.installed if self.installed else None


@dataclass(slots=True)
class UnitFigures:
    location_id: str
    category: str
    departement: str | None
    totals: Totals


def critical_locations() -> Any:
    """SELECT (location id, activity code) of the Locations where a critical-care offer is delivered.

    The critical-care offers (a few thousand `specialty` index rows) are selected first, in an aggregate
    sub-select that both engines materialise, and only then their `location` references, by offer pk. Written as
    one join, SQLite without planner statistics drove from the `location` references of *every* offer (25k on
    the national demo) and probed the token index 16 times each: 190 ms instead of 3-10 ms."""
    r, t = idx_reference.alias("r"), idx_token.alias("t")
    offers = (
        select(t.c.resource_pk, func.min(t.c.code).label("code"))
        .where(
            t.c.res_type == "HealthcareService",
            t.c.param == "specialty",
            t.c.system == ids.TRE_R211,
            t.c.code.in_(sorted(CATEGORY_OF)),
        )
        .group_by(t.c.resource_pk)
        .subquery("crit_offers")
    )
    return (
        select(r.c.target_id.label("location_id"), func.min(offers.c.code).label("code"))
        .select_from(offers.join(r, r.c.resource_pk == offers.c.resource_pk))
        .where(r.c.res_type == "HealthcareService", r.c.param == "location", r.c.target_type == "Location")
        .group_by(r.c.target_id)
        .subquery("crit")
    )


def critical_units(conn: Connection, *, region: str | None = None, departement: str | None = None) -> list[UnitFigures]:
    """Current installed / available / occupied of every critical-care Location of the scope (one query, summed
    per Location in SQL: a few thousand rows instead of one per indicator)."""
    crit = critical_locations()
    c = capacity
    loc = resource.alias("loc")

    def total(status: str) -> Any:
        return func.sum(case((c.c.status == status, c.c.nb), else_=0))

    # critical-care Locations drive (a few thousand), each finds its capacity rows through the primary key of
    # `capacity` (location_pk first): scanning the capacity of every status and probing the set was 3-5x slower
    q = (
        select(
            c.c.location_id,
            crit.c.code,
            func.min(c.c.departement).label("departement"),
            total("01").label("installed"),
            total("02").label("available"),
            total("03").label("occupied"),
            func.max(case((c.c.status == "02", c.c.updated_at))).label("updated_at"),  # NULL: no availability
        )
        .select_from(
            crit.join(loc, and_(loc.c.res_type == "Location", loc.c.res_id == crit.c.location_id)).join(
                c, c.c.location_pk == loc.c.pk
            )
        )
        .where(
            and_(
                c.c.temporality == "01",
                c.c.temporary_assignment.in_(("", "01")),
                c.c.status.in_(("01", "02", "03")),
            )
        )
        .group_by(c.c.location_id, crit.c.code)
    )
    if region:
        q = q.where(c.c.region == region)
    if departement:
        q = q.where(c.c.departement == departement)
    out = []
    for location_id, code, dep, installed, available, occupied, updated_at in conn.execute(q):
        category = CATEGORY_OF[code]
        by_category = {category: available} if updated_at is not None else {}
        out.append(
            UnitFigures(location_id, category, dep, Totals(installed, available, occupied, by_category, updated_at))
        )
    return out


def add(into: Totals, t: Totals) -> None:
    into.installed += t.installed
    into.available += t.available
    into.occupied += t.occupied
    for k, v in t.by_category.items():
        into.by_category[k] = into.by_category.get(k, 0) + v
    if t.updated_at is not None:
        into.updated_at = t.updated_at if into.updated_at is None else min(into.updated_at, t.updated_at)


def by_departement(units: list[UnitFigures]) -> dict[str, Totals]:
    out: dict[str, Totals] = {}
    for u in units:
        add(out.setdefault(u.departement or "?", Totals()), u.totals)
    return out


def stale_units(
    conn: Connection, now: datetime, *, region: str | None = None, departement: str | None = None, limit: int = 100
) -> tuple[int, list[tuple[str, datetime, str | None]]]:
    """(count, [(location id, last availability update, département)]) of the Locations of the scope whose
    current availability is older than 24 h, oldest first."""
    c = capacity
    last = func.max(c.c.updated_at)
    q = (
        select(c.c.location_id, last.label("last"), func.min(c.c.departement).label("dep"))
        .where(c.c.status == "02", c.c.temporality == "01")
        .group_by(c.c.location_id)
        .having(last < now - STALE_AFTER)
    )
    if region:
        q = q.where(c.c.region == region)
    if departement:
        q = q.where(c.c.departement == departement)
    # one pass over the grouped rows (a count and a LIMIT query ran the grouping twice); sorted here
    rows = sorted(conn.execute(q).all(), key=lambda r: (r.last, r.location_id))
    return len(rows), [(r.location_id, r.last, r.dep) for r in rows[:limit]]


def read_contents(
    conn: Connection, res_type: str, res_ids: list[str], keys: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """{id: {key: value}} of the live resources of one type, only the top-level elements `keys`, for the dashboard
    roles (access profile 1, who see every element: no access filtering, hence no context queries).

    `res_type = ? AND res_id IN (…)` and nothing else, so that both engines take the unique index (with `deleted`
    in the condition, SQLite without planner statistics scanned every Location through `ix_resource_live_updated`:
    65 ms for 100 ids); deleted rows are dropped here. Only `keys` are kept so that the parsed documents are freed
    at once (a page holding 200 whole documents promoted ~10k objects to the oldest GC generation per request)."""
    out: dict[str, dict[str, Any]] = {}
    wanted = sorted(set(res_ids))
    for start in range(0, len(wanted), 500):
        q = select(resource.c.res_id, resource.c.deleted, resource.c.content).where(
            resource.c.res_type == res_type, resource.c.res_id.in_(wanted[start : start + 500])
        )
        for res_id, deleted, content in conn.execute(q):
            if not deleted and content is not None:
                doc = orjson.loads(content)
                out[res_id] = {k: doc[k] for k in keys if k in doc}
    return out


TREND_DAYS = 7


def available_trend(
    conn: Connection, units: list[UnitFigures], now: datetime, *, region: str | None = None, days: int = TREND_DAYS
) -> tuple[datetime, dict[str, list[tuple[datetime, int]]]]:
    """(start, {category: [(hour, available beds at that hour)]}) over the last `days`, for the critical-care
    units of the scope. Reconstructed backwards from the current figures (`units`, the projection) through the
    changes of `capacity_event` received since, in one query — the projection is the state after every event
    received, so walking back by `nb_after - nb_before` gives the state at each hour (reception time)."""
    start = (now - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    current = {cat: 0 for cat in CATEGORY_LABELS}
    for u in units:
        current[u.category] += u.totals.available
    crit = critical_locations()
    e = capacity_event
    loc = resource.alias("loc")
    # each critical-care Location reads its own recent events (index on location_pk, received_at): the cost
    # follows the critical-care units' changes, not every change of the country within the window
    q = (
        select(crit.c.code, e.c.received_at, e.c.nb_before, e.c.nb_after)
        .select_from(
            crit.join(loc, and_(loc.c.res_type == "Location", loc.c.res_id == crit.c.location_id)).join(
                e, e.c.location_pk == loc.c.pk
            )
        )
        .where(
            e.c.received_at >= start,
            e.c.status == "02",
            e.c.temporality == "01",
            e.c.temporary_assignment.in_(("", "01")),
        )
    )
    if region:  # the units of the région are known already (a few hundred at most): an IN list
        q = q.where(e.c.location_id.in_(sorted({u.location_id for u in units})))
    hours = int((now - start).total_seconds() // 3600) + 1
    deltas: dict[str, list[int]] = {cat: [0] * (hours + 1) for cat in CATEGORY_LABELS}
    for code, received, before, after in conn.execute(q):
        # the change is seen from the first hour mark after its reception on
        k = min(hours, int((received - start).total_seconds() // 3600) + 1)
        deltas[CATEGORY_OF[code]][k] += (after or 0) - (before or 0)
    out: dict[str, list[tuple[datetime, int]]] = {}
    for cat, d in deltas.items():
        value, points = current[cat], []
        for k in range(hours, -1, -1):  # backwards from now
            points.append((start + timedelta(hours=k), value))
            value -= d[k]
        points.reverse()
        points[-1] = (now, current[cat])
        out[cat] = points
    return start, out


def color(t: Totals | None) -> tuple[str, str, str]:
    """(fill, text colour, legend label) of a département tile by its critical-care availability rate."""
    if t is None or not t.installed:
        return "#e5e5e5", "#161616", "pas de données"
    rate = t.rate or 0.0
    if t.available == 0:
        return "#ce0500", "#ffffff", "aucun lit disponible"
    if rate < 0.05:
        return "#fc5d00", "#161616", "moins de 5 % disponibles"
    if rate < 0.10:
        return "#ffca00", "#161616", "5 à 10 % disponibles"
    return "#18753c", "#ffffff", "10 % ou plus disponibles"


LEGEND = [
    ("#18753c", "10 % ou plus des lits installés disponibles"),
    ("#ffca00", "5 à 10 %"),
    ("#fc5d00", "moins de 5 %"),
    ("#ce0500", "aucun lit disponible"),
    ("#e5e5e5", "pas de données"),
]
