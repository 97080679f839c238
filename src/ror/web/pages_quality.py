"""Qualité des données (`/qualite`), for regional and national administrators: anomalies per rule × territory from
the latest weekly run (quality_indicator), drill-down to the anomalies (RORTask) with CSV download, and the
population status (Finalisé / En cours / À faire) per territory and per establishment. The rules run with
`ror quality run` (docs/quality.md)."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from ror.db.tables import quality_indicator, resource
from ror.directory.scope import Scope
from ror.quality.data import QualityData
from ror.quality.population import FLAG_LABELS, FLAGS, STATUS_LABELS, population
from ror.quality.rules import ALL_RULES, RULES_BY_ID
from ror.quality.tasks import DEPARTEMENT_TAG, RULE_TAG
from ror.store.meta import REGION_SYSTEM
from ror.web.app_errors import may_not_see
from ror.web.render import render
from ror.web.session import WebError, require_session

router = APIRouter(include_in_schema=False)
MAX_ROWS = 2000


def _session(request: Request) -> Any:
    session = require_session(request)
    if session.person.role_info.writes not in ("all", "region"):
        raise may_not_see(request)
    return session


def _region(request: Request, session: Any) -> str | None:
    if session.person.role == "regional_admin":
        return session.person.region
    return request.query_params.get("region") or None


def _latest(conn: Any, kind: str) -> str | None:
    q = quality_indicator
    return conn.execute(select(func.max(q.c.period)).where(q.c.kind == kind)).scalar()


def _indicators(conn: Any, kind: str, period: str | None, tkind: str, codes: list[str]) -> dict[tuple[str, str], int]:
    if period is None or not codes:
        return {}
    q = quality_indicator
    rows = conn.execute(
        select(q.c.code, q.c.territory_code, q.c.value).where(
            q.c.kind == kind, q.c.period == period, q.c.territory_kind == tkind, q.c.territory_code.in_(codes)
        )
    )
    return {(code, terr): value for code, terr, value in rows}


@router.get("/qualite")
def quality_page(request: Request) -> Response:
    session = _session(request)
    svc = request.app.state.services
    region = _region(request, session)
    geo = svc.geography
    if region:
        territories = [(d.code, d.name) for d in geo.departements(region)] + [(region, "Région")]
        kinds = ["departement"] * (len(territories) - 1) + ["region"]
    else:
        territories = [(r.code, r.name) for r in geo.regions()] + [("FR", "France")]
        kinds = ["region"] * (len(territories) - 1) + ["nation"]
    with svc.engine.connect() as conn:
        week, quarter = _latest(conn, "rule"), _latest(conn, "population")
        values: dict[tuple[str, str, str], int] = {}
        pop: dict[tuple[str, str, str], int] = {}
        for tkind in set(kinds):
            codes = [c for c, k in zip([t[0] for t in territories], kinds, strict=True) if k == tkind]
            for (code, terr), v in _indicators(conn, "rule", week, tkind, codes).items():
                values[(code, tkind, terr)] = v
            for (code, terr), v in _indicators(conn, "population", quarter, tkind, codes).items():
                pop[(code, tkind, terr)] = v
        history = conn.execute(
            select(quality_indicator.c.period, quality_indicator.c.code, quality_indicator.c.value).where(
                quality_indicator.c.kind == "population",
                quality_indicator.c.territory_kind == ("region" if region else "nation"),
                quality_indicator.c.territory_code == (region or "FR"),
            )
        ).all()
    cols = list(zip(territories, kinds, strict=True))
    table = []
    for rule in ALL_RULES:
        cells = []
        for (code, _name), tkind in cols:
            per = values.get((f"{rule.id}:perimetre", tkind, code))
            bad = values.get((f"{rule.id}:ecarts", tkind, code), 0)
            link = f"/qualite/anomalies?rule={rule.id}&{'departement' if tkind == 'departement' else 'region'}={code}"
            if tkind == "nation":
                link = f"/qualite/anomalies?rule={rule.id}"
            cells.append({"perimeter": per, "anomalies": bad if per is not None else None, "link": link})
        table.append({"rule": rule, "cells": cells})
    quarters: dict[str, dict[str, int]] = {}
    for period, code, value in history:
        quarters.setdefault(period, {})[code] = value
    population_rows = []
    for (code, name), tkind in cols:
        per = pop.get(("perimetre", tkind, code))
        if per is None:
            continue
        fin = pop.get(("finalise", tkind, code), 0)
        link = f"/qualite/peuplement?{'departement' if tkind == 'departement' else 'region'}={code}"
        population_rows.append(
            {
                "code": code,
                "name": name,
                "perimeter": per,
                "finalise": fin,
                "en_cours": pop.get(("en_cours", tkind, code), 0),
                "a_faire": pop.get(("a_faire", tkind, code), 0),
                "link": link if tkind != "nation" else None,
            }
        )
    return render(
        request,
        "quality.html",
        {
            "title": "Qualité des données",
            "nav": "qualite",
            "region": region,
            "region_name": geo.region(region).name if region and geo.region(region) else None,
            "regions": geo.regions(),
            "may_choose": session.person.role != "regional_admin",
            "week": week,
            "quarter": quarter,
            "columns": [t for t, _ in cols],
            "table": table,
            "population": population_rows,
            "quarters": sorted(quarters.items()),
        },
    )


def _anomalies(request: Request, session: Any) -> list[dict[str, Any]]:
    rule = request.query_params.get("rule")
    if rule and rule not in RULES_BY_ID:
        raise WebError(404, "Règle inconnue", f"Aucune règle {rule!r}.")
    region = _region(request, session) or request.query_params.get("region")
    dep = request.query_params.get("departement")
    q = select(resource.c.res_id, resource.c.content).where(
        resource.c.res_type == "Task", resource.c.res_id.like("qa-%"), resource.c.deleted.is_(False)
    )
    if region:
        q = q.where(resource.c.region == region)
    out = []
    with request.app.state.services.engine.connect() as conn:
        for rid, content in conn.execute(q):
            task = orjson.loads(content)
            if task.get("status") != "ready":
                continue
            tags = {t.get("system"): t.get("code") for t in (task.get("meta") or {}).get("tag") or []}
            if (rule and tags.get(RULE_TAG) != rule) or (dep and tags.get(DEPARTEMENT_TAG) != dep):
                continue
            inputs = {i["type"]["coding"][0]["code"]: i for i in task.get("input") or []}
            focus = task.get("focus") or {}
            out.append(
                {
                    "id": rid,
                    "rule": tags.get(RULE_TAG),
                    "region": tags.get(REGION_SYSTEM),
                    "departement": tags.get(DEPARTEMENT_TAG),
                    "focus": focus.get("reference") or f"FINESS {(focus.get('identifier') or {}).get('value')}",
                    "description": task.get("description", ""),
                    "error": (inputs.get("errorValue") or {}).get("valueString", ""),
                    "proposed": (inputs.get("proposedValue") or {}).get("valueString", ""),
                    "path": ((inputs.get("pathElementError") or {}).get("valueExpression") or {}).get("expression", ""),
                    "since": task.get("authoredOn", ""),
                }
            )
    out.sort(key=lambda a: (a["rule"] or "", a["departement"] or "", a["focus"]))
    return out


@router.get("/qualite/anomalies")
def anomalies_page(request: Request) -> Response:
    session = _session(request)
    items = _anomalies(request, session)
    rule = request.query_params.get("rule")
    return render(
        request,
        "quality_anomalies.html",
        {
            "title": "Anomalies",
            "nav": "qualite",
            "rule": RULES_BY_ID.get(rule or ""),
            "items": items[:MAX_ROWS],
            "count": len(items),
            "csv_url": "/qualite/anomalies.csv" + (f"?{request.url.query}" if request.url.query else ""),
        },
    )


@router.get("/qualite/anomalies.csv")
def anomalies_csv(request: Request) -> Response:
    session = _session(request)
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";")
    cols = ["rule", "region", "departement", "focus", "description", "error", "proposed", "path", "since", "id"]
    w.writerow(["règle", "région", "département", "objet", "description", "valeur en erreur", "valeur proposée",
                "chemin FHIRPath", "depuis", "tâche"])  # fmt: skip
    for a in _anomalies(request, session):
        w.writerow([a[c] or "" for c in cols])
    return Response(
        "\ufeff" + buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="anomalies.csv"', "Cache-Control": "no-store"},
    )


def _region_of_departement(svc: Any, dep: str) -> str | None:
    if svc.geography.loaded:
        return svc.geography.region_of_departement(dep)
    return QualityData(svc.engine, Scope("national")).departement_regions.get(dep)  # from the establishments


@router.get("/qualite/peuplement")
def population_page(request: Request) -> Response:
    session = _session(request)
    svc = request.app.state.services
    dep = request.query_params.get("departement")
    region = _region(request, session)
    if dep:
        if region and _region_of_departement(svc, dep) != region:
            raise may_not_see(request)
        scope = Scope("departement", dep)
    elif region or request.query_params.get("region"):
        scope = Scope("region", region or request.query_params.get("region"))
    else:
        raise WebError(400, "Territoire manquant", "Choisissez une région ou un département.")
    from ror.config import get_settings

    egs = population(QualityData(svc.engine, scope, get_settings().reference_data))
    return render(
        request,
        "quality_population.html",
        {
            "title": "Peuplement",
            "nav": "qualite",
            "scope": scope,
            "egs": egs,
            "flags": FLAGS,
            "flag_labels": FLAG_LABELS,
            "status_labels": STATUS_LABELS,
        },
    )
