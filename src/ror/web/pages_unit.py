"""Établissement / unité: the offer delivered at one Location, its capacity panel (current and forecast), data
freshness and the 7-day capacity history (from `capacity_event`), as the person's profile may see them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy import select

from ror.access.policy import RULES
from ror.capacity.model import Indicator, indicators_of
from ror.capacity.rules import STATUS_NAMES
from ror.capacity.timeseries import capacity_series
from ror.db.tables import capacity_event
from ror.directory import ids
from ror.errors import RorError
from ror.web.charts import Series, step_chart
from ror.web.data import age_range, contacts, display, finess_of, offers_of_locations, read_many, ref_id, region_of
from ror.web.render import now_utc, render
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
HISTORY_DAYS = 7


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


def _history(conn: Any, location_id: str, nature: str, statuses: set[str]) -> tuple[str, list[Any]]:
    """The 7-day chart (SVG) of available / occupied / installed from the hourly capacity time series
    (ror.capacity.timeseries: the state at the end of each hour, carried forward); and the events themselves
    (newest first) for the table under the chart. `nature`: lits (01) or places (02), as the unit counts them."""
    shown = statuses & {"01", "02", "03"}
    ts = capacity_series(
        conn, "location", location_id, days=HISTORY_DAYS, bucket="hour", nature=nature, statuses=frozenset(shown)
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

    def points(measure: str) -> list[tuple[Any, int]]:
        out: list[tuple[Any, int]] = []
        for p in ts.points:
            v = p.values.get(measure)
            if v is not None and (not out or out[-1][1] != v):
                out.append((p.at, v))
        return out

    series = [
        Series("Installés", "#666666", points("installed"), dashed=True),
        Series("Occupés", "#000091", points("occupied")),
        Series("Disponibles", "#18753c", points("available")),
    ]
    series = [s for s, st in zip(series, ("01", "03", "02"), strict=True) if st in statuses]
    title = f"Capacités des {HISTORY_DAYS} derniers jours : disponibles (vert), occupés (bleu), installés (tirets)"
    return step_chart(series, start, end, title), events


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
        chart, events = _history(conn, location_id, next((i.nature for i in inds if i.status == "01"), "01"), statuses)
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
            "events": events[:50],
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
