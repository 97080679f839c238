"""The DGOS daily report of critical-care beds for a given date, computed from the capacity history.

State as of the end of the date (Europe/Paris): for every critical-care Location × indicator key, the last event of
`capacity_event` whose *effective time* is before the cutoff. The effective time of an event is the
`capacityUpdateDate` the source gave (the moment the figure describes), and the reception time for a removal (a
removal carries the date of the indicator it removes). Ties are broken by event order. `known_at` optionally
restricts the history to what the ROR had received by then (a report reproducible bit for bit).

Two queries, whatever the number of units: the units (offer activity → family, establishment, territory) and the
last events (a window function over the history). docs/reports.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Connection, and_, case, func, select

from ror.db.tables import capacity_event, idx_reference, idx_token, resource
from ror.directory import ids
from ror.reporting.activities import FAMILIES, FAMILY_OF_CODE, family_of

PARIS = ZoneInfo("Europe/Paris")
STALE_AFTER = timedelta(hours=24)
NONE_ASSIGNED = ("", "01")  # no temporary assignment
COVID_POS, COVID_NEG = "02", "03"
LEVELS = ("etablissement", "departement", "region", "nation")


@dataclass
class Assigned:
    """Beds under a temporary assignment (Covid+ or Covid−)."""

    installed: int = 0
    available: int = 0
    occupied: int = 0

    def add(self, other: Assigned) -> None:
        self.installed += other.installed
        self.available += other.available
        self.occupied += other.occupied


@dataclass
class Figures:
    units: int = 0  # critical-care Locations with at least one figure as of the cutoff
    installed: int = 0
    available: int = 0
    occupied: int = 0
    supplementary: int = 0
    covid_pos: Assigned = field(default_factory=Assigned)
    covid_neg: Assigned = field(default_factory=Assigned)
    oldest_update: datetime | None = None  # oldest among the units' latest availability updates
    stale: int = 0  # units without availability or whose availability is older than 24 h at the cutoff

    def add(self, other: Figures) -> None:
        self.units += other.units
        self.installed += other.installed
        self.available += other.available
        self.occupied += other.occupied
        self.supplementary += other.supplementary
        self.covid_pos.add(other.covid_pos)
        self.covid_neg.add(other.covid_neg)
        self.stale += other.stale
        if other.oldest_update is not None:
            self.oldest_update = (
                other.oldest_update if self.oldest_update is None else min(self.oldest_update, other.oldest_update)
            )

    def age_hours(self, cutoff: datetime) -> float | None:
        if self.oldest_update is None:
            return None
        return round((cutoff - self.oldest_update).total_seconds() / 3600, 1)


@dataclass(frozen=True)
class Unit:
    location_id: str
    family: str
    establishment: str | None  # Organization id (the offer's providedBy)
    region: str | None
    departement: str | None


@dataclass
class Row:
    level: str  # etablissement | departement | region | nation
    code: str  # FINESS / département / région code / FR
    label: str
    region: str | None
    departement: str | None
    family: str  # a family key, or "total"
    figures: Figures


@dataclass
class DailyReport:
    day: date
    cutoff: datetime  # naive UTC: end of the day in Paris
    scope: str
    generated_at: datetime
    rows: list[Row]

    def level(self, level: str, family: str = "total") -> list[Row]:
        return [r for r in self.rows if r.level == level and r.family == family]

    def get(self, level: str, code: str, family: str = "total") -> Row | None:
        return next((r for r in self.rows if r.level == level and r.code == code and r.family == family), None)


def cutoff_of(day: date) -> datetime:
    """End of `day` in Paris as naive UTC."""
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=PARIS)
    return end.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


# --- queries --------------------------------------------------------------------------------------------------
def _units_query(region: str | None, departement: str | None, include_sensitive: bool) -> Any:
    """(location pk, location id, R211 code, establishment id, region, département) of critical-care Locations."""
    rl, sp, ro = idx_reference.alias("rl"), idx_token.alias("sp"), idx_reference.alias("ro")
    loc, dep = resource.alias("loc"), idx_token.alias("dep")
    q = (
        select(
            loc.c.pk.label("location_pk"),
            loc.c.res_id.label("location_id"),
            sp.c.code,
            ro.c.target_id.label("org_id"),
            loc.c.region,
            dep.c.code.label("departement"),
        )
        .select_from(
            rl.join(sp, and_(sp.c.resource_pk == rl.c.resource_pk, sp.c.param == "specialty"))
            .join(loc, and_(loc.c.res_type == "Location", loc.c.res_id == rl.c.target_id))
            .outerjoin(
                ro,
                and_(
                    ro.c.resource_pk == rl.c.resource_pk,
                    ro.c.param == "organization",
                    ro.c.target_type == "Organization",
                ),
            )
            .outerjoin(dep, and_(dep.c.resource_pk == loc.c.pk, dep.c.param == "departement"))
        )
        .where(
            rl.c.res_type == "HealthcareService",
            rl.c.param == "location",
            rl.c.target_type == "Location",
            sp.c.res_type == "HealthcareService",
            sp.c.system == ids.TRE_R211,
            sp.c.code.in_(sorted(FAMILY_OF_CODE)),
        )
    )
    if not include_sensitive:
        sens = idx_token.alias("sens")
        q = q.where(
            ~select(sens.c.resource_pk)
            .where(
                sens.c.resource_pk == rl.c.resource_pk,
                sens.c.param == "sensitive-unit",
                sens.c.code == "true",
            )
            .exists()
        )
    if region:
        q = q.where(loc.c.region == region)
    if departement:
        q = q.where(dep.c.code == departement)
    return q


def load_units(
    conn: Connection, *, region: str | None = None, departement: str | None = None, include_sensitive: bool = True
) -> dict[int, Unit]:
    codes: dict[int, set[str]] = {}
    facts: dict[int, tuple[str, str | None, str | None, str | None]] = {}
    for row in conn.execute(_units_query(region, departement, include_sensitive)):
        codes.setdefault(row.location_pk, set()).add(row.code)
        prev = facts.get(row.location_pk)
        org = row.org_id or (prev[1] if prev else None)
        facts[row.location_pk] = (row.location_id, org, row.region, row.departement)
    out = {}
    for pk, (loc_id, org, reg, dep) in facts.items():
        fam = family_of(codes[pk])
        if fam is not None:
            out[pk] = Unit(loc_id, fam, org, reg, dep)
    return out


def _last_events(conn: Connection, location_pks: list[int], cutoff: datetime, known_at: datetime | None) -> list[Any]:
    """The last event per Location × key effective before `cutoff` (indicators existing then), in one query."""
    e = capacity_event
    eff = case((e.c.nb_after.is_(None), e.c.received_at), else_=func.coalesce(e.c.updated_at, e.c.received_at))
    keys = [e.c.location_pk, *(e.c[k] for k in ("nature", "status", "temporality", "gender"))]
    keys += [e.c[k] for k in ("closing_type", "additional_bed_type", "crisis_type", "temporary_assignment")]
    rn = func.row_number().over(partition_by=keys, order_by=(eff.desc(), e.c.pk.desc()))
    inner = select(
        e.c.location_pk,
        e.c.status,
        e.c.temporary_assignment,
        e.c.nb_after,
        e.c.updated_at,
        rn.label("rn"),
    ).where(
        e.c.nature == "01",
        e.c.temporality == "01",
        e.c.status.in_(("01", "02", "03", "06")),
        eff < cutoff,
    )
    if known_at is not None:
        inner = inner.where(e.c.received_at <= known_at)
    rows: list[Any] = []
    for start in range(0, len(location_pks), 900):
        chunk = inner.where(e.c.location_pk.in_(location_pks[start : start + 900])).subquery("last")
        q = select(chunk).where(chunk.c.rn == 1, chunk.c.nb_after.is_not(None))
        rows.extend(conn.execute(q).all())
    return rows


def _unit_figures(events: list[Any], cutoff: datetime) -> dict[int, Figures]:
    out: dict[int, Figures] = {}
    latest: dict[int, datetime] = {}
    for ev in events:
        f = out.setdefault(ev.location_pk, Figures(units=1))
        nb, status, assigned = ev.nb_after, ev.status, ev.temporary_assignment
        if assigned in NONE_ASSIGNED:
            if status == "01":
                f.installed += nb
            elif status == "02":
                f.available += nb
                if ev.updated_at is not None:
                    latest[ev.location_pk] = max(latest.get(ev.location_pk, ev.updated_at), ev.updated_at)
            elif status == "03":
                f.occupied += nb
            else:
                f.supplementary += nb
        elif assigned in (COVID_POS, COVID_NEG):
            a = f.covid_pos if assigned == COVID_POS else f.covid_neg
            if status == "01":
                a.installed += nb
            elif status == "02":
                a.available += nb
            elif status == "03":
                a.occupied += nb
    for pk, f in out.items():
        last = latest.get(pk)
        f.oldest_update = last
        f.stale = int(last is None or cutoff - last > STALE_AFTER)
    return out


def _organizations(conn: Connection, org_ids: set[str]) -> dict[str, tuple[str, str]]:
    """id -> (FINESS, name) of the establishments, in batched reads."""
    out: dict[str, tuple[str, str]] = {}
    wanted = sorted(org_ids)
    for start in range(0, len(wanted), 900):
        q = select(resource.c.res_id, resource.c.content).where(
            resource.c.res_type == "Organization", resource.c.res_id.in_(wanted[start : start + 900])
        )
        for rid, content in conn.execute(q):
            res = orjson.loads(content)
            finess = next((i.get("value") for i in res.get("identifier") or [] if i.get("system") == ids.FINESS), None)
            out[rid] = (finess or rid, res.get("name") or rid)
    return out


# --- the report -----------------------------------------------------------------------------------------------
def daily_report(
    conn: Connection,
    day: date,
    *,
    region: str | None = None,
    departement: str | None = None,
    include_sensitive: bool = True,
    known_at: datetime | None = None,
    names: dict[tuple[str, str], str] | None = None,
    generated_at: datetime | None = None,
) -> DailyReport:
    """The report for `day`. `names`: {("region"|"departement", code): label} for the territory rows."""
    cutoff = cutoff_of(day)
    units = load_units(conn, region=region, departement=departement, include_sensitive=include_sensitive)
    figures = _unit_figures(_last_events(conn, sorted(units), cutoff, known_at), cutoff)
    orgs = _organizations(conn, {u.establishment for pk, u in units.items() if u.establishment and pk in figures})
    names = names or {}
    acc: dict[tuple[str, str, str], Row] = {}

    def add(level: str, code: str, label: str, reg: str | None, dep: str | None, fam: str, f: Figures) -> None:
        for family in (fam, "total"):
            row = acc.get((level, code, family))
            if row is None:
                row = acc[(level, code, family)] = Row(level, code, label, reg, dep, family, Figures())
            row.figures.add(f)

    for pk, f in figures.items():
        u = units[pk]
        finess, org_name = orgs.get(u.establishment or "", (u.establishment or "?", u.establishment or "?"))
        add("etablissement", finess, org_name, u.region, u.departement, u.family, f)
        dep = u.departement or "?"
        add("departement", dep, names.get(("departement", dep), dep), u.region, dep, u.family, f)
        reg = u.region or "?"
        add("region", reg, names.get(("region", reg), reg), reg, None, u.family, f)
        add("nation", "FR", "France", None, None, u.family, f)
    order = {lvl: i for i, lvl in enumerate(reversed(LEVELS))}
    fam_order = {f.key: i for i, f in enumerate(FAMILIES)} | {"total": len(FAMILIES)}
    rows = sorted(acc.values(), key=lambda r: (order[r.level], r.region or "", r.code, fam_order[r.family]))
    scope = f"region:{region}" if region else f"departement:{departement}" if departement else "national"
    return DailyReport(day, cutoff, scope, generated_at or datetime.now(ZoneInfo("UTC")).replace(tzinfo=None), rows)
