"""Établissement / unité: the offer delivered at one Location, its capacity panel (current and forecast), data
freshness and the 7- or 30-day capacity history (`?historique=7|30`, from `capacity_event` through the time
series of `ror.capacity.timeseries`), as the person's profile may see them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy import select

from ror.access.policy import RULES
from ror.capacity.model import Indicator, indicators_of
from ror.capacity.rules import STATUS_NAMES
from ror.capacity.timeseries import TimeSeries, capacity_series
from ror.db.tables import capacity_event
from ror.directory import ids
from ror.errors import RorError
from ror.web.charts import Series, step_chart
from ror.web.data import age_range, contacts, display, finess_of, offers_of_locations, read_many, ref_id, region_of
from ror.web.render import PARIS, now_utc, render
from ror.web.session import WebError, require_session

router = APIRouter(include_in_schema=False)
TEMPORALITIES = {
    "01": "Courant",
    "02": "Prévisionnel 1 h",
    "03": "Prévisionnel 24 h",
    "04": "Prévisionnel 48 h",
    "05": "Prévisionnel 7 j",
}
GENDERS = {"01": "femmes", "02": "hommes", "04": "indéterminé"}
CLOSING = {"01": "réactivable", "02": "non réactivable", "03": "indéterminé"}
EXTRA = {"01": "mobilisé", "02": "mobilisable sans RH", "03": "mobilisable avec RH"}
HISTORY_CHOICES = (7, 30)  # days of history the page offers (`?historique=`), the first is the default
MEASURES = (("available", "02"), ("occupied", "03"), ("installed", "01"))


def _label(ind: Indicator) -> str:
    text = STATUS_NAMES.get(ind.status, ind.status)
    if ind.gender:
        text += f" ({GENDERS.get(ind.gender, ind.gender)})"
    if ind.closing_type:
        text += f" ({CLOSING.get(ind.closing_type, ind.closing_type)})"
    if ind.additional_bed_type:
        text += f" ({EXTRA.get(ind.additional_bed_type, ind.additional_bed_type)})"
    if ind.temporary_assignment not in ("", "01"):
        text += f" — affectation temporaire {ind.temporary_assignment}"
    return text


@dataclass(frozen=True)
class DayEnd:
    """The capacity at the end of one Paris day of the history (or now, for today)."""

    day: date  # Paris date
    at: datetime  # naive UTC instant of the values
    values: dict[str, int | None]  # measure -> beds/places (None: not reported)


def history_days(raw: str | None) -> int:
    """The window asked for by `?historique=` (7 or 30); anything else is the default 7."""
    return int(raw) if raw is not None and raw.strip() in {str(d) for d in HISTORY_CHOICES} else HISTORY_CHOICES[0]


def day_ends(ts: TimeSeries, now: datetime) -> list[DayEnd]:
    """The hourly series read at each Paris midnight of the window (a Paris midnight is a UTC hour boundary: the
    value is the one of the hour ending there), then now for today; oldest first."""
    by_start = {p.at: p.values for p in ts.points}
    out: list[DayEnd] = []
    day = ts.start.replace(tzinfo=UTC).astimezone(PARIS).date()  # the Paris day the window starts in
    while (midnight := _utc(datetime.combine(day + timedelta(days=1), time(), PARIS))) <= now:
        values = by_start.get(midnight - timedelta(hours=1))
        if values is not None:
            out.append(DayEnd(day, midnight, values))
        day += timedelta(days=1)
    if ts.points:
        out.append(DayEnd(day, now, ts.points[-1].values))
    return out


def _utc(aware: datetime) -> datetime:
    return aware.astimezone(UTC).replace(tzinfo=None)


def _history(
    conn: Any, location_id: str, nature: str, statuses: set[str], days: int
) -> tuple[str, list[Any], list[DayEnd]]:
    """The chart (SVG) of available / occupied / installed over `days` from the hourly capacity time series
    (ror.capacity.timeseries: the state at the end of each hour, carried forward), the events themselves (newest
    first) for the table under the chart, and the values at the end of each day (the chart's text alternative).
    `nature`: lits (01) or places (02), as the unit counts them."""
    shown = statuses & {"01", "02", "03"}
    ts = capacity_series(
        conn, "location", location_id, days=days, bucket="hour", nature=nature, statuses=frozenset(shown)
    )
    start, end = ts.start, now_utc()
    e = capacity_event
    events = conn.execute(
        select(e.c.status, e.c.gender, e.c.nb_before, e.c.nb_after, e.c.received_at, e.c.updated_at, e.c.actor)
        .where(
            e.c.location_id == location_id,
            e.c.temporality == "01",
            e.c.status.in_(sorted(shown)),
            e.c.received_at >= start,
        )
        .order_by(e.c.received_at.desc(), e.c.pk.desc())
    ).all()
    series = [
        Series("Installés", "#666666", step_points(ts, "installed"), dashed=True),
        Series("Occupés", "#000091", step_points(ts, "occupied")),
        Series("Disponibles", "#18753c", step_points(ts, "available")),
    ]
    series = [s for s, st in zip(series, ("01", "03", "02"), strict=True) if st in statuses]
    title = f"Capacités des {days} derniers jours : disponibles (vert), occupés (bleu), installés (tirets)"
    return step_chart(series, start, end, title), events, day_ends(ts, end)


def step_points(ts: TimeSeries, measure: str) -> list[tuple[datetime, int]]:
    """The steps of one measure: (start of the hour, value at its end) where the value changes."""
    out: list[tuple[datetime, int]] = []
    for p in ts.points:
        v = p.values.get(measure)
        if v is not None and (not out or out[-1][1] != v):
            out.append((p.at, v))
    return out


@router.get("/unites/{location_id}")
def unit_page(request: Request, location_id: str) -> Response:
    session = require_session(request)
    person = session.person
    profile = person.profile
    svc = request.app.state.services
    with svc.store.read_conn() as conn:
        offers = offers_of_locations(conn, [location_id]).get(location_id, [])
        seen = read_many(conn, profile, [("Location", location_id)] + [("HealthcareService", h) for _, h in offers])
        loc = seen.get(("Location", location_id))
        if loc is None:
            raise WebError(404, "Unité introuvable", f"Aucune unité {location_id} visible avec votre compte.")
        hss = [seen[("HealthcareService", h)] for _, h in offers if ("HealthcareService", h) in seen]
        org_id = ref_id(loc.get("managingOrganization"), "Organization")
        org = read_many(conn, profile, [("Organization", org_id)]).get(("Organization", org_id)) if org_id else None
        try:
            inds = indicators_of(loc)
        except RorError:
            inds = []
        rule = RULES[profile]
        statuses = set(rule.capacity) if rule.capacity is not None else {"01", "02", "03", "04", "05", "06"}
        nature = next((i.nature for i in inds if i.status == "01"), "01")
        days = history_days(request.query_params.get("historique"))
        chart, events, daily = _history(conn, location_id, nature, statuses, days)
    current = sorted((i for i in inds if i.temporality == "01"), key=lambda i: i.key)
    forecast = sorted((i for i in inds if i.temporality != "01"), key=lambda i: (i.temporality, i.key))
    stamps = [i.updated_at for i in current if i.status in ("02", "03")]
    finess = finess_of(org)
    offers_view = [
        {
            "id": hs.get("id"),
            "name": hs.get("name"),
            "activities": display(hs.get("specialty"), ids.TRE_R211),
            "modes": display(hs.get("characteristic"), ids.TRE_R213),
            "fields": display(hs.get("type"), ids.TRE_R227),
            "categories": _codings(hs.get("category")),
            "ages": age_range(hs),
            "phones": contacts(hs),
        }
        for hs in hss
    ]
    return render(
        request,
        "unit.html",
        {
            "title": str(loc.get("name") or location_id),
            "nav": "recherche",
            "loc": loc,
            "org": org,
            "finess": finess,
            "may_write": bool(finess) and person.may_write(finess or "", region_of(org)),
            "offers": offers_view,
            "org_phones": contacts(org),
            "current": [(i, _label(i)) for i in current],
            "forecast": [(i, _label(i), TEMPORALITIES.get(i.temporality, i.temporality)) for i in forecast],
            "freshness": max(stamps) if stamps else None,
            "chart": Markup(chart),
            "history_days": days,
            "history_choices": HISTORY_CHOICES,
            "daily": daily,
            "daily_measures": [(m, STATUS_NAMES.get(st, m)) for m, st in MEASURES if st in statuses],
            "events": events[:50],
            "events_count": len(events),
            "history_since": min((e.received_at for e in events), default=None),
            "status_names": STATUS_NAMES,
            "genders": GENDERS,
        },
    )


def _codings(cc_list: Any) -> list[tuple[str, str]]:
    items = cc_list if isinstance(cc_list, list) else [cc_list] if cc_list else []
    return [
        (str(c.get("code")), str(c.get("display") or c.get("code"))) for cc in items for c in cc.get("coding") or []
    ]
