"""Tableau de bord (ARS, SAMU, crisis cells): the tile-grid map of France colored by critical-care availability,
the table by département (installed / available / occupied / % occupancy), a département's establishments, the
stale-data list and CSV downloads of the tables shown."""

from __future__ import annotations

import csv
import io
from html import escape
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from ror.capacity.crisis import CRISIS_TYPES, DEFAULT_CRISIS_FRESHNESS_MIN, CrisisRegistry
from ror.capacity.stream import Subscription, follow
from ror.directory import ids
from ror.web.app_errors import may_not_see
from ror.web.charts import Series, step_chart
from ror.web.dashboard import (
    CATEGORY_LABELS,
    LEGEND,
    TREND_DAYS,
    Totals,
    add,
    available_trend,
    by_departement,
    color,
    critical_units,
    read_contents,
    stale_units,
)
from ror.web.data import finess_of, ref_id, region_of
from ror.web.pages_crisis import covering, may_declare, may_manage
from ror.web.render import age, now_utc, percent, render
from ror.web.session import WebError, require_session
from ror.web.tilegrid import grid

router = APIRouter(include_in_schema=False)
TILE, GAP = 46, 3
TREND_COLORS = {"rea": "#ce0500", "si": "#000091", "sc": "#18753c"}


def _session(request: Request) -> Any:
    session = require_session(request)
    if not session.person.role_info.dashboard:
        raise may_not_see(request)
    return session


def _region(request: Request, session: Any) -> str | None:
    asked = request.query_params.get("region")
    if asked is not None:
        return asked or None
    return session.person.region if session.person.role == "regional_admin" else None


def map_svg(totals: dict[str, Totals], names: dict[str, str]) -> str:
    cells = grid()
    cols = max(c for c, _ in cells.values()) + 1
    rows = max(r for _, r in cells.values()) + 1
    w, h = cols * (TILE + GAP), rows * (TILE + GAP)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="group" '
        'aria-label="Carte des départements (une case par département) : lits de soins critiques disponibles">'
    ]
    for code, (c, r) in sorted(cells.items()):
        t = totals.get(code)
        fill, ink, label = color(t)
        x, y = c * (TILE + GAP), r * (TILE + GAP)
        name = names.get(code, code)
        figures = f"{t.available} disponibles sur {t.installed} installés" if t and t.installed else label
        out.append(
            f'<a href="/tableau-de-bord/departements/{code}" aria-label="{escape(code)} {escape(name)} : {figures}">'
            f'<rect x="{x}" y="{y}" width="{TILE}" height="{TILE}" rx="3" fill="{fill}" stroke="#fff"/>'
            f"<title>{escape(code)} {escape(name)} — {figures}</title>"
            f'<text x="{x + TILE / 2}" y="{y + 18}" font-size="13" font-weight="bold" text-anchor="middle" '
            f'fill="{ink}">{escape(code)}</text>'
            f'<text x="{x + TILE / 2}" y="{y + 36}" font-size="12" text-anchor="middle" fill="{ink}">'
            f"{t.available if t and t.installed else ''}</text></a>"
        )
    out.append("</svg>")
    return "".join(out)


def _names(conn: Any, location_ids: list[str]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Locations and their establishments, in two batched reads (dashboard roles have access profile 1: they see
    every element, so nothing is filtered out)."""
    locs = read_contents(conn, "Location", location_ids, ("name", "managingOrganization"))
    org_ids = {ref_id(v.get("managingOrganization"), "Organization") for v in locs.values()}
    return locs, read_contents(conn, "Organization", [o for o in org_ids if o], ("name", "identifier", "meta"))


def _stale_view(conn: Any, region: str | None, departement: str | None) -> tuple[int, list[dict]]:
    count, rows = stale_units(conn, now_utc(), region=region, departement=departement)
    locs, orgs = _names(conn, [r[0] for r in rows])
    out = []
    for loc_id, last, dep in rows:
        loc = locs.get(loc_id, {})
        org = orgs.get(ref_id(loc.get("managingOrganization"), "Organization") or "", {})
        out.append(
            {"id": loc_id, "name": loc.get("name", loc_id), "org": org.get("name", ""), "last": last, "dep": dep}
        )
    return count, out


def _live_context(request: Request, session: Any) -> dict[str, Any]:
    """What the live part of the dashboard shows (map, summary, table by département, trend chart): the page
    renders it once, `/tableau-de-bord/direct` again on every change pushed by `/tableau-de-bord/flux`."""
    svc = request.app.state.services
    region = _region(request, session)
    now = now_utc()
    with svc.store.read_conn() as conn:
        units = critical_units(conn, region=region)
        start, trend = available_trend(conn, units, now, region=region)
    deps = by_departement(units)
    total = Totals()
    for t in deps.values():
        add(total, t)
    names = {d.code: d.name for d in svc.geography.departements()}
    series = [Series(CATEGORY_LABELS[k], TREND_COLORS[k], points) for k, points in trend.items()]
    title = f"Lits de soins critiques disponibles, {TREND_DAYS} derniers jours (par heure)"
    return {
        "region": region,
        "map": Markup(map_svg(deps, names)),
        "legend": LEGEND,
        "table": [(code, names.get(code, code), deps[code]) for code in sorted(deps)],
        "total": total,
        "categories": CATEGORY_LABELS,
        "trend": Markup(step_chart(series, start, now, title)),
        "trend_colors": TREND_COLORS,
        "refreshed": now,
    }


@router.get("/tableau-de-bord")
def dashboard(request: Request) -> Response:
    session = _session(request)
    svc = request.app.state.services
    context = _live_context(request, session)
    region = context["region"]
    with svc.store.read_conn() as conn:
        stale_count, stale = _stale_view(conn, region, None)
    geo = svc.geography
    return render(
        request,
        "dashboard.html",
        {
            **context,
            "title": "Tableau de bord",
            "nav": "tableau",
            "region_name": (geo.region(region).name if region and geo.region(region) else None),
            "regions": geo.regions(),
            "stale": stale,
            "stale_count": stale_count,
            "csv_url": "/tableau-de-bord.csv" + (f"?region={region}" if region else ""),
            "crises": covering(request, CrisisRegistry(svc.engine).active(), region),
            "crisis_types": CRISIS_TYPES,
            "may_declare": may_declare(session.person),
            "may_manage": lambda c: may_manage(request, session.person, c.scope_kind, c.scope_codes),
            "default_freshness": DEFAULT_CRISIS_FRESHNESS_MIN,
            "crisis_done": request.query_params.get("crise"),
        },
    )


@router.get("/tableau-de-bord/direct")
def dashboard_live(request: Request) -> Response:
    """The live part of the dashboard alone (HTML fragment), fetched by the page when the stream says so."""
    session = _session(request)
    return render(request, "dashboard_live.html", _live_context(request, session))


@router.get("/tableau-de-bord/flux")
async def dashboard_stream(request: Request) -> StreamingResponse:
    """Server-Sent Events over the web session: `event: capacity` for every accepted change of an availability
    (status 02) of the territory shown; the page then fetches `/tableau-de-bord/direct` (at most every 2 s)."""
    session = await run_in_threadpool(_session, request)
    region = _region(request, session)

    def render(_sub: Subscription, change: dict[str, Any]) -> bytes | None:
        if change.get("kind") == "tension" or (region and change.get("region") != region):
            return None
        if (change.get("key") or {}).get("status") not in ("01", "02", "03"):
            return None
        seen = {k: change.get(k) for k in ("location", "departement", "before", "after", "updated_at")}
        return b"event: capacity\ndata: " + orjson.dumps(seen) + b"\n\n"

    events = follow(request.app.state.capacity_broker, request.is_disconnected, render)
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


def _csv(rows: list[list[Any]], filename: str) -> Response:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";")
    for row in rows:
        writer.writerow(row)
    return Response(
        "\ufeff" + buf.getvalue(),  # BOM: spreadsheets open the UTF-8 accents right
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


HEADER = [
    "installés",
    "disponibles",
    "occupés",
    "% occupation",
    *[f"disponibles {v}" for v in CATEGORY_LABELS.values()],
]


def _figures(t: Totals) -> list[Any]:
    return [t.installed, t.available, t.occupied, percent(t.occupied, t.installed)] + [
        t.by_category.get(k, 0) for k in CATEGORY_LABELS
    ]


@router.get("/tableau-de-bord.csv")
def dashboard_csv(request: Request) -> Response:
    session = _session(request)
    svc = request.app.state.services
    region = _region(request, session)
    with svc.store.read_conn() as conn:
        deps = by_departement(critical_units(conn, region=region))
    names = {d.code: d.name for d in svc.geography.departements()}
    rows: list[list[Any]] = [["département", "nom", *HEADER]]
    rows += [[code, names.get(code, ""), *_figures(deps[code])] for code in sorted(deps)]
    return _csv(rows, f"soins-critiques-{region or 'france'}.csv")


def _establishments(request: Request, code: str) -> tuple[str, list[dict], Totals]:
    svc = request.app.state.services
    dep = svc.geography.departement(code)
    if dep is None:
        raise WebError(404, "Département introuvable", f"Aucun département de code {code!r}.")
    with svc.store.read_conn() as conn:
        units = critical_units(conn, departement=code)
        locs, orgs = _names(conn, [u.location_id for u in units])
    by_org: dict[str, dict] = {}
    total = Totals()
    for u in units:
        loc = locs.get(u.location_id, {})
        org_id = ref_id(loc.get("managingOrganization"), "Organization") or "?"
        org = orgs.get(org_id, {})
        entry = by_org.setdefault(
            org_id,
            {
                "name": org.get("name", org_id),
                "finess": finess_of(org),
                "region": region_of(org),
                "totals": Totals(),
                "units": [],
            },
        )
        add(entry["totals"], u.totals)
        add(total, u.totals)
        entry["units"].append({"id": u.location_id, "name": loc.get("name", u.location_id), "t": u.totals})
    items = sorted(by_org.values(), key=lambda e: e["name"])
    for e in items:
        e["units"].sort(key=lambda x: x["name"])
    return dep.name, items, total


@router.get("/tableau-de-bord/departements/{code}")
def departement_page(request: Request, code: str) -> Response:
    session = _session(request)
    name, items, total = _establishments(request, code)
    with request.app.state.services.store.read_conn() as conn:
        stale_count, stale = _stale_view(conn, None, code)
    return render(
        request,
        "departement.html",
        {
            "title": f"{code} — {name}",
            "nav": "tableau",
            "code": code,
            "name": name,
            "items": items,
            "total": total,
            "categories": CATEGORY_LABELS,
            "stale": stale,
            "stale_count": stale_count,
            "person_may_write": lambda e: bool(e["finess"]) and session.person.may_write(e["finess"], e["region"]),
            "eg_id": ids.eg_id,
        },
    )


@router.get("/tableau-de-bord/departements/{code}/export.csv")
def departement_csv(request: Request, code: str) -> Response:
    _session(request)
    _, items, _ = _establishments(request, code)
    rows: list[list[Any]] = [["FINESS", "établissement", "unité", *HEADER, "mise à jour des disponibilités"]]
    for e in items:
        for u in e["units"]:
            rows.append([e["finess"] or "", e["name"], u["name"], *_figures(u["t"]), age(u["t"].updated_at)])
    return _csv(rows, f"soins-critiques-{code}.csv")
