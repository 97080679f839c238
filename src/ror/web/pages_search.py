"""Recherche: offers (HealthcareService) by activity, care mode, patient age, territory or distance, and beds
available now — through the core search (QueryParser + SearchEngine), filtered for the person's profile. Every
criterion is a GET parameter, so a result page is a shareable URL."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ror.access.context import hide_sensitive
from ror.access.policy import RULES, Profile
from ror.capacity.model import indicators_of
from ror.directory import ids
from ror.errors import RorError
from ror.geo.service import Commune, Geography
from ror.search.engine import SearchEngine
from ror.search.geo import haversine_km
from ror.search.query import QueryParser
from ror.search.systems import make_system_resolver
from ror.web.data import Res, age_range, contacts, display, read_many, ref_id
from ror.web.render import render
from ror.web.session import require_session

router = APIRouter(include_in_schema=False)
PAGE = 30
ACTIVITIES, CARE_MODES = "J17", "J19"
GENDERS = {"": "Tous", "01": "Femme", "02": "Homme"}
_CODE = re.compile(r"^\s*(\d{2,4})\b")
_COMMUNE_CODE = re.compile(r"\b(\d[0-9AB]\d{3})\b")


def _core(request: Request) -> tuple[QueryParser, SearchEngine]:
    state = request.app.state
    if getattr(state, "web_search", None) is None:
        svc = state.services
        parser = QueryParser(svc.registry, make_system_resolver(svc.terminology.resolve_system), svc.geography.centroid)
        state.web_search = (parser, SearchEngine(svc.engine))
    return state.web_search


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).lower().replace("-", " ").replace("'", " ").strip()


class CommuneIndex:
    """Commune names (normalised) for the commune field and its suggestions, built once from the geography."""

    def __init__(self, geography: Geography) -> None:
        self.items: list[tuple[str, Commune]] = []
        for dep in geography.departements():
            for c in geography.communes_of_departement(dep.code):
                if c.type == "commune-actuelle" and c.centroid is not None:
                    self.items.append((_norm(c.name), c))
        self.items.sort(key=lambda item: -(item[1].population or 0))

    def find(self, text: str, limit: int = 10) -> list[Commune]:
        needle = _norm(text)
        if not needle:
            return []
        exact = [c for n, c in self.items if n == needle]
        starts = [c for n, c in self.items if n.startswith(needle) and n != needle]
        return (exact + starts)[:limit]


def communes(request: Request) -> CommuneIndex:
    state = request.app.state
    if getattr(state, "web_communes", None) is None:
        state.web_communes = CommuneIndex(state.services.geography)
    return state.web_communes


@dataclass
class Criteria:
    activite: str = ""
    mode: str = ""
    age: str = ""
    departement: str = ""
    commune: str = ""
    rayon: str = "50"
    dispo: bool = False
    genre: str = ""
    cursor: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    activity_code: str | None = None
    commune_found: Commune | None = None

    @classmethod
    def from_query(cls, q: Any) -> Criteria:
        return cls(
            activite=str(q.get("activite", "")).strip(),
            mode=str(q.get("mode", "")).strip(),
            age=str(q.get("age", "")).strip(),
            departement=str(q.get("departement", "")).strip(),
            commune=str(q.get("commune", "")).strip(),
            rayon=str(q.get("rayon", "50")).strip() or "50",
            dispo=q.get("dispo") in ("1", "on", "true"),
            genre=str(q.get("genre", "")).strip(),
            cursor=str(q.get("page", "")).strip(),
        )

    @property
    def empty(self) -> bool:
        return not any((self.activite, self.mode, self.age, self.departement, self.commune, self.dispo))

    def params(self, **extra: str) -> str:
        items = [
            (k, v)
            for k, v in (
                ("activite", self.activite),
                ("mode", self.mode),
                ("age", self.age),
                ("departement", self.departement),
                ("commune", self.commune),
                ("rayon", self.rayon if self.commune else ""),
                ("dispo", "1" if self.dispo else ""),
                ("genre", self.genre if self.dispo else ""),
            )
            if v
        ]
        items += [(k, v) for k, v in extra.items() if v]
        return urlencode(items)


def _resolve(request: Request, c: Criteria) -> list[tuple[str, str]]:
    """The FHIR search items of the criteria (HealthcareService); errors in French go to `c.errors`."""
    svc = request.app.state.services
    items: list[tuple[str, str]] = []
    if c.activite:
        m = _CODE.match(c.activite)
        found = svc.terminology.expand(ACTIVITIES, text=m.group(1) if m else c.activite, limit=1)
        if m and not any(x.code == m.group(1) for x in found):
            found = []
        if not found:
            c.errors["activite"] = f"Activité inconnue : « {c.activite} ». Choisissez-la dans la liste proposée."
        else:
            c.activity_code = found[0].code
            items.append(("specialty", f"{ids.TRE_R211}|{found[0].code}"))
    if c.mode:
        items.append(("characteristic", f"{ids.TRE_R213}|{c.mode}"))
    if c.age:
        if not c.age.isdigit() or int(c.age) > 120:
            c.errors["age"] = "Âge du patient : un nombre d'années entre 0 et 120."
        else:
            items += [("age-range-low", f"le{c.age}"), ("age-range-high", f"ge{c.age}")]
    if c.commune:
        m = _COMMUNE_CODE.search(c.commune)
        commune = svc.geography.commune(m.group(1)) if m else None
        if commune is None:
            hits = communes(request).find(c.commune, 1)
            commune = hits[0] if hits else None
        if commune is None or commune.centroid is None:
            c.errors["commune"] = f"Commune introuvable : « {c.commune} » (nom ou code INSEE)."
        else:
            c.commune_found = commune
            try:
                km = float(c.rayon.replace(",", "."))
                if not 0 < km <= 1000:
                    raise ValueError
            except ValueError:
                c.errors["rayon"] = "Rayon : un nombre de kilomètres entre 1 et 1000."
                km = 50.0
            items += [("location.near-insee-code", f"{commune.code}|{km:g}|km"), ("_sort", "near")]
    elif c.departement:
        items.append(("location.departement", c.departement))
    if c.dispo:
        items += [
            ("location.capacity-status", f"{ids.TRE_R330}|02"),
            ("location.temporality-capacity", f"{ids.TRE_R331}|01"),
            ("location.nb-capacity", "gt0"),
        ]
        if c.genre in ("01", "02"):
            items.append(("location.gender-capacity-available", f"{ids.TRE_R332}|{c.genre},{ids.TRE_R332}|04"))
    items += [("_include", "HealthcareService:location"), ("_include", "HealthcareService:organization")]
    items += [("_count", str(PAGE)), ("_total", "accurate")]
    if c.cursor:
        items.append(("_cursor", c.cursor))
    return items


def _availability(location: Res | None, gender: str) -> tuple[int | None, dict[str, int], Any]:
    """(available now, by gender, latest update) from the Location as the person may see it."""
    if location is None:
        return None, {}, None
    try:
        inds = [i for i in indicators_of(location) if i.status == "02" and i.temporality == "01"]
    except RorError:
        return None, {}, None
    if not inds:
        return None, {}, None
    by: dict[str, int] = {}
    for i in inds:
        by[i.gender or "04"] = by.get(i.gender or "04", 0) + i.nb
    total = sum(n for g, n in by.items() if not gender or g in (gender, "04"))
    return total, by, max(i.updated_at for i in inds)


def _results(request: Request, profile: Profile, c: Criteria, items: list[tuple[str, str]]) -> tuple[list[dict], Any]:
    parser, engine = _core(request)
    q = parser.parse("HealthcareService", items)
    restrict = None if RULES[profile].sensitive_units else hide_sensitive
    found = engine.search(q, restrict)
    svc = request.app.state.services
    rows = [(r.pk, r.res_type, r.res_id, r.content) for r in found.matches + found.included]
    with svc.store.read_conn() as conn:
        from ror.web.data import filtered

        seen = filtered(conn, profile, rows)
        # the EG's parent is not needed; the telecoms of the EG are
        orgs = {k[1]: v for k, v in seen.items() if k[0] == "Organization"}
        missing = {
            ("Organization", oid)
            for k, v in seen.items()
            if k[0] == "HealthcareService"
            for oid in [ref_id(v.get("providedBy"), "Organization")]
            if oid and oid not in orgs
        }
        orgs.update({k[1]: v for k, v in read_many(conn, profile, missing).items()})
    out = []
    for m in found.matches:
        hs = seen.get(("HealthcareService", m.res_id))
        if hs is None:
            continue
        loc_id = next((x for x in (ref_id(r, "Location") for r in hs.get("location") or []) if x), None)
        loc = seen.get(("Location", loc_id)) if loc_id else None
        org = orgs.get(ref_id(hs.get("providedBy"), "Organization") or "")
        pos = (loc or {}).get("position") or {}
        dist = None
        if c.commune_found is not None and c.commune_found.centroid is not None:
            lat, lon = c.commune_found.centroid
            dist = haversine_km(lat, lon, pos.get("latitude"), pos.get("longitude"))
        available, by_gender, updated = _availability(loc, c.genre if c.dispo else "")
        low, high = age_range(hs)
        out.append(
            {
                "id": hs["id"],
                "name": hs.get("name") or hs["id"],
                "location_id": loc_id,
                "activities": [label for _, label in display(hs.get("specialty"), ids.TRE_R211)],
                "modes": [label for _, label in display(hs.get("characteristic"), ids.TRE_R213)],
                "ages": (low, high),
                "org": (org or {}).get("name"),
                "city": ((loc or {}).get("address") or {}).get("city"),
                "distance": dist,
                "available": available,
                "by_gender": by_gender,
                "updated": updated,
                "phones": contacts(org) + contacts(hs),
            }
        )
    return out, found


@router.get("/recherche")
def search_page(request: Request) -> Response:
    session = require_session(request)
    svc = request.app.state.services
    c = Criteria.from_query(request.query_params)
    results: list[dict] = []
    total = None
    next_cursor = None
    if not c.empty:
        items = _resolve(request, c)
        if not c.errors:
            try:
                results, found = _results(request, session.person.profile, c, items)
                total, next_cursor = found.total, found.next_cursor
            except RorError as exc:
                c.errors["recherche"] = f"Recherche impossible : {exc.diagnostics}"
    return render(
        request,
        "search.html",
        {
            "title": "Recherche",
            "nav": "recherche",
            "c": c,
            "results": results,
            "total": total,
            "next_url": f"/recherche?{c.params(page=next_cursor)}" if next_cursor else None,
            "modes": svc.terminology.expand(CARE_MODES),
            "departements": svc.geography.departements(),
            "genders": GENDERS,
            "activity_label": (
                f"{c.activity_code} — {svc.terminology.display(ids.TRE_R211, c.activity_code)}"
                if c.activity_code
                else c.activite
            ),
        },
    )


@router.get("/api/web/activites")
def activity_suggestions(request: Request, q: str = "", limit: int = 15) -> JSONResponse:
    """Suggestions for the activity field: `[{code, label}]` from JDV_J17 (codes starting with, or labels
    containing, `q`)."""
    require_session(request)
    found = request.app.state.services.terminology.expand(ACTIVITIES, text=q or None, limit=max(1, min(limit, 50)))
    return JSONResponse([{"code": x.code, "label": x.display} for x in found])


@router.get("/api/web/communes")
def commune_suggestions(request: Request, q: str = "", limit: int = 10) -> JSONResponse:
    require_session(request)
    found = communes(request).find(q, max(1, min(limit, 30)))
    return JSONResponse([{"code": x.code, "label": x.name, "departement": x.departement} for x in found])
