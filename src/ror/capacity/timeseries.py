"""Capacity time series from the history (`capacity_event`): per unit (Location) and aggregated per establishment,
département, région or the nation, optionally for one critical-care activity family (the mapping of
`ror.reporting.activities`, e.g. `rea-adulte` = the R211 codes of quality-rules EX3).

Semantics (docs/capacity.md, "Time series"):

* the window is `days` × 24 h ending at the end of the current bucket (hour or day, UTC), one point per bucket;
* a point's value is the state **at the end of its bucket**: for every Location × indicator key, the last event
  whose effective time is before the bucket end — the value *carries forward* through buckets without events;
* the effective time of an event is the `capacityUpdateDate` the source gave, or the reception time for a
  removal — the same rule as the DGOS daily report (`ror.reporting.daily`), so a day bucket ending at the report's
  cutoff gives the report's figures;
* counted: current indicators (temporality 01) of one nature (default 01 Lit) without temporary assignment,
  summed per status (installed 01, available 02 all genders, occupied 03, reserved 04, closed 05,
  supplementary 06); a removed indicator counts 0; a measure no selected unit ever reported is `None`.

One query computes the series in SQL whatever the number of units: the last event per Location × key × bucket
(window function), its change from the previous bucket of the same key (`LAG`), summed per status and bucket and
accumulated over the buckets (`SUM(SUM(…)) OVER`). Buckets without any change repeat the previous point."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Integer, and_, case, cast, func, literal, not_, select
from sqlalchemy.sql import Select

from ror.access.context import hide_sensitive
from ror.db.tables import capacity_event, idx_reference, idx_token, resource
from ror.directory import ids
from ror.errors import InvalidRequest
from ror.reporting.activities import FAMILIES, FAMILY_BY_KEY
from ror.search.normalise import utcnow

LEVELS = ("location", "etablissement", "departement", "region", "national")
BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
MEASURES = {
    "01": "installed",
    "02": "available",
    "03": "occupied",
    "04": "reserved",
    "05": "closed",
    "06": "supplementary",
}
MAX_DAYS = 31
NO_ASSIGNMENT = ("", "01")
CURRENT = "01"
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Point:
    at: datetime  # start of the bucket (naive UTC); values are the state at its end
    values: dict[str, int | None]  # measure name -> beds/places (None: never reported by the selected units)


@dataclass(frozen=True)
class TimeSeries:
    level: str
    code: str | None
    activity: str | None
    nature: str
    bucket: str
    start: datetime
    end: datetime
    units: int  # Locations selected (level, code, activity, visibility)
    measures: tuple[str, ...]
    points: list[Point]

    def as_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "code": self.code,
            "activity": self.activity,
            "nature": self.nature,
            "bucket": self.bucket,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "units": self.units,
            "measures": list(self.measures),
            "points": [{"t": _iso(p.at), **p.values} for p in self.points],
        }


def _iso(dt: datetime) -> str:
    return dt.replace(microsecond=0).isoformat() + "Z"


def window(days: int, bucket: str, end: datetime | None = None) -> tuple[datetime, datetime]:
    """(start, stop) of a window of `days` whose stop is the first bucket boundary at or after `end` (default
    now), naive UTC."""
    step = BUCKETS[bucket]
    at = end or utcnow()
    floor = (
        at.replace(minute=0, second=0, microsecond=0)
        if bucket == "hour"
        else at.replace(hour=0, minute=0, second=0, microsecond=0)
    )
    stop = floor + step if floor < at else floor
    return stop - timedelta(days=days), stop


def check_params(level: str, code: str | None, activity: str | None, days: int, bucket: str) -> None:
    if level not in LEVELS:
        raise InvalidRequest(f"level must be one of {', '.join(LEVELS)}", expression="level")
    if level != "national" and not code:
        raise InvalidRequest(f"level {level} needs a code", expression="code")
    if activity is not None and activity not in FAMILY_BY_KEY:
        raise InvalidRequest(f"activity must be one of {', '.join(FAMILY_BY_KEY)}", expression="activity")
    if bucket not in BUCKETS:
        raise InvalidRequest(f"bucket must be one of {', '.join(BUCKETS)}", expression="bucket")
    if not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"days must be between 1 and {MAX_DAYS}", expression="days")


def _offers_with(codes: tuple[str, ...]) -> Select[Any]:
    """Location ids delivering an offer whose operational activity (R211) is one of `codes`."""
    rl, sp = idx_reference.alias(), idx_token.alias()
    return (
        select(rl.c.target_id)
        .select_from(rl.join(sp, and_(sp.c.resource_pk == rl.c.resource_pk, sp.c.param == "specialty")))
        .where(
            rl.c.res_type == "HealthcareService",
            rl.c.param == "location",
            rl.c.target_type == "Location",
            rl.c.target_id.is_not(None),
            sp.c.res_type == "HealthcareService",
            sp.c.system == ids.TRE_R211,
            sp.c.code.in_(codes),
        )
    )


def units_query(
    level: str, code: str | None, activity: str | None = None, *, include_sensitive: bool = True
) -> Select[Any]:
    """SELECT pk of the live Locations a series covers."""
    loc = resource.alias("loc")
    q = select(loc.c.pk).where(loc.c.res_type == "Location", loc.c.deleted.is_(False))
    if level == "location":
        q = q.where(loc.c.res_id == code)
    elif level == "etablissement":
        assert code is not None
        r = idx_reference.alias()
        q = q.where(
            loc.c.pk.in_(
                select(r.c.resource_pk).where(
                    r.c.res_type == "Location",
                    r.c.param == "organization",
                    r.c.target_type == "Organization",
                    r.c.target_id.in_(sorted({code, ids.eg_id(code)})),
                )
            )
        )
    elif level == "departement":
        t = idx_token.alias()
        q = q.where(
            loc.c.pk.in_(
                select(t.c.resource_pk).where(t.c.res_type == "Location", t.c.param == "departement", t.c.code == code)
            )
        )
    elif level == "region":
        q = q.where(loc.c.region == code)
    if activity is not None:
        # the family of a Location is the first of FAMILIES its offers belong to (as in the daily report)
        family = FAMILY_BY_KEY[activity]
        higher = tuple(c for f in FAMILIES[: FAMILIES.index(family)] for c in f.codes)
        q = q.where(loc.c.res_id.in_(_offers_with(family.codes)))
        if higher:
            q = q.where(not_(loc.c.res_id.in_(_offers_with(higher))))
    if not include_sensitive:
        q = q.where(hide_sensitive(loc, "Location"))
    return q


def _epoch_seconds(conn: Connection, col: ColumnElement[Any]) -> ColumnElement[Any]:
    if conn.dialect.name == "sqlite":
        return cast(func.strftime("%s", col), Integer)
    return cast(func.floor(func.extract("epoch", col)), Integer)


def _bucket_index(conn: Connection, eff: ColumnElement[Any], start: datetime, step: timedelta) -> ColumnElement[Any]:
    """-1 for events before the window (the state it starts from), else floor((eff - start) / step)."""
    seconds = int(step.total_seconds())
    offset = int((start - _EPOCH).total_seconds())
    inside = (_epoch_seconds(conn, eff) - offset) // literal(seconds, Integer)  # operands ≥ 0: floors
    return case((eff < start, literal(-1, Integer)), else_=inside)


def capacity_series(
    conn: Connection,
    level: str,
    code: str | None = None,
    *,
    activity: str | None = None,
    days: int = 7,
    bucket: str = "hour",
    nature: str = "01",
    statuses: frozenset[str] | None = None,
    include_sensitive: bool = True,
    end: datetime | None = None,
) -> TimeSeries:
    """The series of `level`/`code` (see the module doc). `statuses`: the capacity statuses the caller may see
    (None = all); the other measures are left out. `end`: the window stops at the first bucket boundary at or
    after it (default now: the current bucket is the last point)."""
    check_params(level, code, activity, days, bucket)
    step = BUCKETS[bucket]
    start, stop = window(days, bucket, end)
    shown = tuple(s for s in MEASURES if statuses is None or s in statuses)
    units = units_query(level, code, activity, include_sensitive=include_sensitive).subquery("units")
    n_units = int(conn.execute(select(func.count()).select_from(units)).scalar_one())
    n_buckets = int((stop - start) / step)
    starts = [start + k * step for k in range(n_buckets)]
    totals: dict[str, dict[int, int]] = {MEASURES[s]: {} for s in shown}
    if n_units and shown:
        e = capacity_event
        eff = case((e.c.nb_after.is_(None), e.c.received_at), else_=func.coalesce(e.c.updated_at, e.c.received_at))
        key = [e.c.location_pk, e.c.status, e.c.gender, e.c.closing_type, e.c.additional_bed_type, e.c.crisis_type]
        key.append(e.c.temporary_assignment)
        b = _bucket_index(conn, eff, start, step).label("b")
        last_in_bucket = (
            select(
                *key,
                b,
                func.coalesce(e.c.nb_after, 0).label("nb"),
                func.row_number().over(partition_by=[*key, b], order_by=(eff.desc(), e.c.pk.desc())).label("rn"),
            )
            .where(
                e.c.location_pk.in_(select(units.c.pk)),
                e.c.nature == nature,
                e.c.temporality == CURRENT,
                e.c.temporary_assignment.in_(NO_ASSIGNMENT),
                e.c.status.in_(shown),
                eff < stop,
            )
            .subquery("last_in_bucket")
        )
        lk = [last_in_bucket.c[c.name] for c in key]
        prev = func.lag(last_in_bucket.c.nb, 1, 0).over(partition_by=lk, order_by=last_in_bucket.c.b)
        changes = (
            select(last_in_bucket.c.status, last_in_bucket.c.b, (last_in_bucket.c.nb - prev).label("delta"))
            .where(last_in_bucket.c.rn == 1)
            .subquery("changes")
        )
        running = func.sum(func.sum(changes.c.delta)).over(partition_by=changes.c.status, order_by=changes.c.b)
        q = select(changes.c.status, changes.c.b, running.label("total")).group_by(changes.c.status, changes.c.b)
        for status, k, total in conn.execute(q):
            totals[MEASURES[status]][int(k)] = int(total)
    points: list[Point] = []
    current: dict[str, int | None] = {}
    for name, by_bucket in totals.items():
        current[name] = by_bucket.get(-1)
    for k, at in enumerate(starts):
        for name, by_bucket in totals.items():
            if k in by_bucket:
                current[name] = by_bucket[k]
        points.append(Point(at, dict(current)))
    return TimeSeries(
        level, code, activity, nature, bucket, start, stop, n_units, tuple(MEASURES[s] for s in shown), points
    )
