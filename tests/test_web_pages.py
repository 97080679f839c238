"""The web pages through HTTP (TestClient) on the built-in seed (département 22) with the NOS and the geography:
each page for the roles that may see it, 403/404 pages, profile-aware phones, and the capacity entry writing the
projection and the events in one request."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, func, select, update

from ror.access.people import ROLES as ROLES_INFO
from ror.access.people import PersonRegistry
from ror.access.policy import Profile
from ror.capacity.model import indicators_of
from ror.capacity.timeseries import capacity_series
from ror.db.tables import audit_event, capacity, capacity_event, person, resource, web_session
from ror.directory import ids
from ror.directory.demo import load_demo
from ror.directory.scope import Scope
from ror.geo.loader import load_geography
from ror.search.normalise import utcnow
from ror.server import create_app
from ror.services import Services
from ror.terminology.loader import load_nos
from ror.web.dashboard import CATEGORY_OF, critical_units
from ror.web.pages_unit import step_points
from ror.web.render import PARIS
from tests.conftest import truncate_store
from tests.search_fixtures import capacity as cap
from tests.search_fixtures import location

FINESS = "220000012"  # CH Yves Le Foll, Saint-Brieuc: 11 units in the seed
PASSWORD = "correct horse battery staple"
PHONES = {1: "01 11 11 11 11", 2: "02 22 22 22 22", 3: "03 33 33 33 33"}
ROLES = {
    "admin@test.fr": ("national_admin", [], None),
    "ars@test.fr": ("regional_admin", [], "53"),
    "cadre@test.fr": ("establishment_manager", [FINESS], None),
    "samu@test.fr": ("regulator", [], None),
    "lecteur@test.fr": ("viewer", [], None),
}


def _telecom(value: str, level: int) -> dict:
    return {
        "system": "phone",
        "value": value,
        "extension": [
            {
                "url": ids.EXT_TELECOM_CONFIDENTIALITY,
                "valueCodeableConcept": {"coding": [{"system": ids.TRE_R283, "code": str(level)}]},
            }
        ],
    }


def reset_people(engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(delete(web_session))
        c.execute(delete(person))


def load_seed_data(engine: Engine, reference_dir: Path) -> Services:
    """NOS + geography + the built-in seed (département 22), people of every role, phones of levels 1–3."""
    truncate_store(engine)
    reset_people(engine)
    load_nos(engine, reference_dir / "nos")
    load_geography(engine, reference_dir / "geo")
    services = Services(engine)
    load_demo(services.store, None, scope=Scope.parse("departement:22"))
    org = services.store.read("Organization", ids.eg_id(FINESS)).resource()
    org["telecom"] = [_telecom(v, level) for level, v in PHONES.items()]
    services.store.update("Organization", org["id"], org)
    people = PersonRegistry(engine)
    for email, (role, finess, region) in ROLES.items():
        people.add(email, email.split("@")[0].title(), role, PASSWORD, finess, region)
    return services


@pytest.fixture(scope="module")
def services(engine: Engine, reference_dir: Path) -> Services:
    return load_seed_data(engine, reference_dir)


@pytest.fixture(scope="module")
def app_client(engine: Engine, services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(engine)) as c:
        yield c


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD) -> None:
    client.cookies.clear()
    page = client.get("/connexion")
    r = client.post(
        "/connexion", data={"email": email, "password": password, "csrf": csrf_of(page.text)}, follow_redirects=False
    )
    assert r.status_code == 303, r.text[:300]


def test_anonymous_is_sent_to_login(app_client: TestClient) -> None:
    app_client.cookies.clear()
    r = app_client.get("/recherche?activite=127", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/connexion?suivant=%2Frecherche%3Factivite%3D127"
    page = app_client.get("/connexion")
    assert page.status_code == 200 and 'lang="fr"' in page.text and "Mot de passe" in page.text


def test_login_sets_a_safe_cookie_and_logout_needs_csrf(app_client: TestClient) -> None:
    app_client.cookies.clear()
    page = app_client.get("/connexion")
    r = app_client.post(
        "/connexion",
        data={"email": "lecteur@test.fr", "password": PASSWORD, "csrf": csrf_of(page.text), "suivant": "//evil"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"  # no open redirect
    cookie = r.headers["set-cookie"].lower()
    assert "ror_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert app_client.post("/deconnexion", data={}).status_code == 403
    home = app_client.get("/")
    assert app_client.post("/deconnexion", data={"csrf": csrf_of(home.text)}, follow_redirects=False).status_code == 303
    assert app_client.get("/recherche", follow_redirects=False).status_code == 303


def test_wrong_password_is_refused_with_a_french_message(app_client: TestClient) -> None:
    app_client.cookies.clear()
    page = app_client.get("/connexion")
    r = app_client.post("/connexion", data={"email": "samu@test.fr", "password": "nope", "csrf": csrf_of(page.text)})
    assert r.status_code == 401 and "mot de passe incorrect" in r.text


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("admin@test.fr", {"search": 200, "unit": 200, "entry": 200, "dashboard": 200}),
        ("ars@test.fr", {"search": 200, "unit": 200, "entry": 200, "dashboard": 200}),
        ("cadre@test.fr", {"search": 200, "unit": 200, "entry": 200, "dashboard": 403}),
        ("samu@test.fr", {"search": 200, "unit": 200, "entry": 403, "dashboard": 200}),
        ("lecteur@test.fr", {"search": 200, "unit": 200, "entry": 403, "dashboard": 403}),
    ],
)
def test_pages_by_role(app_client: TestClient, email: str, expected: dict[str, int]) -> None:
    login(app_client, email)
    urls = {
        "search": "/recherche?activite=127&commune=22278&rayon=50",
        "unit": f"/unites/loc-{FINESS}-rea-adu",
        "entry": f"/etablissements/{FINESS}/disponibilites",
        "dashboard": "/tableau-de-bord",
    }
    for name, url in urls.items():
        r = app_client.get(url)
        assert r.status_code == expected[name], (name, r.text[:300])
        assert "text/html" in r.headers["content-type"]
        if r.status_code == 403:
            assert "Accès refusé" in r.text


def test_not_found_pages(app_client: TestClient) -> None:
    login(app_client, "admin@test.fr")
    r = app_client.get("/unites/loc-inconnue")
    assert r.status_code == 404 and "Unité introuvable" in r.text
    assert app_client.get("/etablissements/999999999/disponibilites").status_code == 404
    assert app_client.get("/tableau-de-bord/departements/999").status_code == 404


def test_viewer_never_sees_level_3_phones(app_client: TestClient) -> None:
    url_search = "/recherche?activite=127&commune=22278&rayon=50"
    url_unit = f"/unites/loc-{FINESS}-rea-adu"
    login(app_client, "lecteur@test.fr")
    for url in (url_search, url_unit):
        text = app_client.get(url).text
        assert PHONES[1] in text and PHONES[2] in text
        assert PHONES[3] not in text, url
    login(app_client, "samu@test.fr")
    for url in (url_search, url_unit):
        assert PHONES[3] in app_client.get(url).text


def test_search_sorts_by_distance_and_is_shareable(app_client: TestClient) -> None:
    login(app_client, "samu@test.fr")
    r = app_client.get("/recherche?activite=373&commune=Saint-Brieuc&rayon=100&age=40")
    assert r.status_code == 200
    distances = [float(x) for x in re.findall(r"<strong>([\d.]+) km</strong>", r.text)]
    assert len(distances) >= 3 and distances == sorted(distances)
    assert "Surveillance continue" in r.text
    bad = app_client.get("/recherche?activite=zzzz-inconnue&age=abc")
    assert "Activité inconnue" in bad.text and "Âge du patient" in bad.text
    suggestions = app_client.get("/api/web/activites?q=réanimation").json()
    assert {"code": "127", "label": "Réanimation polyvalente"} in suggestions
    assert app_client.get("/api/web/communes?q=saint-brieuc").json()[0]["code"] == "22278"


def test_dashboard_map_table_csv(app_client: TestClient, services: Services) -> None:
    login(app_client, "ars@test.fr")
    r = app_client.get("/tableau-de-bord")
    assert r.status_code == 200 and "<svg" in r.text and 'href="/tableau-de-bord/departements/22"' in r.text
    assert "22 — Côtes-d&#39;Armor" in r.text or "22 — Côtes-d'Armor" in r.text
    csv_text = app_client.get("/tableau-de-bord.csv?region=53").text
    assert csv_text.splitlines()[0].lstrip("\ufeff").startswith("département;nom;installés")
    line = next(x for x in csv_text.splitlines() if x.startswith("22;"))
    with services.engine.connect() as c:
        installed = c.execute(
            select(func.sum(capacity.c.nb)).where(
                capacity.c.location_id.in_([f"loc-{FINESS}-rea-adu", f"loc-{FINESS}-si-usic"]),
                capacity.c.status == "01",
            )
        ).scalar_one()
    assert int(line.split(";")[2]) >= installed
    dep = app_client.get("/tableau-de-bord/departements/22")
    assert dep.status_code == 200 and "CENTRE HOSPITALIER YVES LE FOLL" in dep.text
    assert f'href="/etablissements/{FINESS}/disponibilites"' in dep.text  # the regional admin may enter
    assert app_client.get("/tableau-de-bord/departements/22/export.csv").text.count("\n") >= 3


def _critical_by_hand(engine: Engine) -> dict[str, tuple]:
    """Per critical-care Location, computed the plain way (every offer's JSON read, capacity rows summed in
    Python): (category, département, installed, available, occupied, by category, newest availability, région)."""
    code_of: dict[str, str] = {}
    with engine.connect() as c:
        offers = c.execute(
            select(resource.c.content).where(resource.c.res_type == "HealthcareService", resource.c.deleted.is_(False))
        ).scalars()
        for content in offers:
            hs = json.loads(content)
            codes = [
                cd["code"]
                for cc in hs.get("specialty") or []
                for cd in cc.get("coding") or []
                if cd.get("system") == ids.TRE_R211 and cd.get("code") in CATEGORY_OF
            ]
            for ref in hs.get("location") or []:
                loc_id = ref["reference"].split("/")[-1]
                for code in codes:
                    code_of[loc_id] = min(code, code_of.get(loc_id, code))
        rows = c.execute(
            select(capacity).where(
                capacity.c.temporality == "01",
                capacity.c.temporary_assignment.in_(("", "01")),
                capacity.c.status.in_(("01", "02", "03")),
            )
        ).all()
    sums: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.location_id not in code_of:
            continue
        cat = CATEGORY_OF[code_of[r.location_id]]
        u = sums.setdefault(
            r.location_id, {"cat": cat, "dep": r.departement, "reg": r.region, "01": 0, "02": 0, "03": 0}
        )
        u.setdefault("at", None)
        u[r.status] += r.nb
        if r.status == "02":
            u["at"] = r.updated_at if u["at"] is None else max(u["at"], r.updated_at)
    return {
        k: (u["cat"], u["dep"], u["01"], u["02"], u["03"], {u["cat"]: u["02"]} if u["at"] else {}, u["at"], u["reg"])
        for k, u in sums.items()
    }


def test_dashboard_figures_are_the_projection_summed_by_hand(app_client: TestClient, services: Services) -> None:
    """The aggregate SQL of the dashboard against a plain computation, France / région / département; then a
    change saved through the entry form is on the next dashboard response (no cache between them)."""
    expected = _critical_by_hand(services.engine)
    assert expected, "the seed has critical-care units"
    with services.engine.connect() as c:
        for scope in ({}, {"region": "53"}, {"departement": "22"}, {"region": "11"}):
            got = {
                u.location_id: (
                    u.category,
                    u.departement,
                    u.totals.installed,
                    u.totals.available,
                    u.totals.occupied,
                    u.totals.by_category,
                    u.totals.updated_at,
                )
                for u in critical_units(c, **scope)
            }
            want = {
                k: v[:7]
                for k, v in expected.items()
                if scope.get("region", v[7]) == v[7] and scope.get("departement", v[1]) == v[1]
            }
            assert want or scope.get("region") == "11", scope
            assert got == want, scope
    login(app_client, "admin@test.fr")
    total = sum(v[3] for v in expected.values())
    assert f'<strong id="total-disponibles">{total}</strong>' in app_client.get("/tableau-de-bord/direct").text
    csrf, fields = _entry_form(app_client)
    key = next(k for k in fields if k.startswith(f"a-loc-{FINESS}-rea-adu-"))
    data = {**fields, key: str(int(fields[key]) + 3), "csrf": csrf, "action": "save"}
    assert (
        app_client.post(f"/etablissements/{FINESS}/disponibilites", data=data, follow_redirects=False).status_code
        == 303
    )
    assert f'<strong id="total-disponibles">{total + 3}</strong>' in app_client.get("/tableau-de-bord/direct").text
    assert f'<strong id="total-disponibles">{total + 3}</strong>' in app_client.get("/tableau-de-bord").text


def test_dashboard_roles_see_everything() -> None:
    """The dashboard reads unit and establishment names without access filtering (`dashboard.read_contents`):
    right only while every role that may see the dashboard has access profile 1."""
    assert all(role.profile == Profile.ALL for role in ROLES_INFO.values() if role.dashboard)


def test_stale_list_names_units_and_establishments(app_client: TestClient, services: Services) -> None:
    loc = f"loc-{FINESS}-rea-adu"
    old = utcnow() - timedelta(days=3)
    with services.engine.begin() as c:
        saved = c.execute(
            select(capacity.c.location_pk, capacity.c.status, capacity.c.gender, capacity.c.updated_at).where(
                capacity.c.location_id == loc, capacity.c.status == "02", capacity.c.temporality == "01"
            )
        ).all()
        c.execute(
            update(capacity)
            .where(capacity.c.location_id == loc, capacity.c.status == "02", capacity.c.temporality == "01")
            .values(updated_at=old)
        )
    try:
        login(app_client, "samu@test.fr")
        page = app_client.get("/tableau-de-bord").text
        stale = page.split('id="table-perimees"', 1)[1].split("</table>", 1)[0]
        row = next(r for r in stale.split("<tr>") if f'href="/unites/{loc}"' in r)
        assert "CENTRE HOSPITALIER YVES LE FOLL" in row and "<td>22</td>" in row
        dep = app_client.get("/tableau-de-bord/departements/22").text
        assert f'href="/unites/{loc}"' in dep.split('id="table-perimees"', 1)[1]
    finally:
        with services.engine.begin() as c:
            for pk, status, gender, at in saved:
                c.execute(
                    update(capacity)
                    .where(
                        capacity.c.location_pk == pk,
                        capacity.c.status == status,
                        capacity.c.gender == gender,
                        capacity.c.temporality == "01",
                    )
                    .values(updated_at=at)
                )


HISTORY_LOC = "loc-test-historique"


def _history_unit(services: Services) -> tuple[datetime, list[tuple[datetime, int]]]:
    """A unit of the establishment with installed 10 and a known availability history: 4 from 25 days ago, 7 from
    12 days ago, 5 from 3 days ago (capacityUpdateDate at 20 past the hour). Returns (now, [(time, available)])."""
    now = utcnow()
    steps = [
        ((now - timedelta(days=d)).replace(minute=20, second=0, microsecond=0), nb)
        for d, nb in ((25, 4), (12, 7), (3, 5))
    ]
    for at, nb in steps:
        stamp = at.isoformat() + "Z"
        caps = [cap("01", 10, updated=steps[0][0].isoformat() + "Z"), cap("02", nb, gender="04", updated=stamp)]
        res = location(
            HISTORY_LOC, "Réanimation test historique", 48.5, -2.7, "22278", "22000", caps, ids.eg_id(FINESS)
        )
        services.store.update("Location", HISTORY_LOC, res, author="test")
    return now, steps


def _daily_available(html: str) -> dict[str, str]:
    """{Paris date: available} of the end-of-day table of the unit page."""
    table = html.split('id="table-historique"', 1)[1].split("</table>", 1)[0]
    return dict(re.findall(r'<tr data-jour="([\d-]+)">.*?data-mesure="available">([^<]*)</td>', table))


def test_unit_history_7_or_30_days(app_client: TestClient, services: Services) -> None:
    now, steps = _history_unit(services)

    def expected(day: str) -> str:
        """Available at the end of a Paris day (now for today) from the steps."""
        end = datetime.combine(date.fromisoformat(day) + timedelta(days=1), time(), PARIS)
        end_utc = min(end.astimezone(UTC).replace(tzinfo=None), now)
        seen = [nb for at, nb in steps if at < end_utc]
        return str(seen[-1]) if seen else "—"

    login(app_client, "samu@test.fr")
    month = app_client.get(f"/unites/{HISTORY_LOC}?historique=30")
    assert month.status_code == 200 and "Historique (30 jours)" in month.text
    assert re.search(r'id="historique-30" href="[^"]+" aria-current="true"', month.text)
    assert 'id="historique-7" href="/unites/loc-test-historique?historique=7#historique">' in month.text
    days = _daily_available(month.text)
    assert len(days) in (30, 31) and list(days) == sorted(days)
    assert days == {d: expected(d) for d in days}
    assert {"—", "4", "7", "5"} <= set(days.values())  # before the first change, then the three steps
    # the chart draws the same steps: hour of each change, values 4 → 7 → 5 (the series carried forward)
    with services.engine.connect() as c:
        ts = capacity_series(c, "location", HISTORY_LOC, days=30, bucket="hour", nature="01")
        week = capacity_series(c, "location", HISTORY_LOC, days=7, bucket="hour", nature="01")
    hour = [(at.replace(minute=0), nb) for at, nb in steps]
    assert step_points(ts, "available") == hour
    assert step_points(ts, "installed") == [(hour[0][0], 10)]
    assert step_points(week, "available") == [(week.start, 7), hour[2]]  # 7 carried in from before the window

    default = app_client.get(f"/unites/{HISTORY_LOC}")  # 7 days, also for an unknown value
    assert (
        "Historique (7 jours)" in default.text
        and "Historique (7 jours)" in app_client.get(f"/unites/{HISTORY_LOC}?historique=365").text
    )
    assert re.search(r'id="historique-7" href="[^"]+" aria-current="true"', default.text)
    days7 = _daily_available(default.text)
    assert len(days7) in (7, 8) and set(days7.values()) == {"7", "5"}
    assert days7 == {d: expected(d) for d in days7}


def _entry_form(client: TestClient) -> tuple[str, dict[str, str]]:
    page = client.get(f"/etablissements/{FINESS}/disponibilites")
    assert page.status_code == 200
    fields = dict(re.findall(r'name="([aovn]-[^"]+)" value="([^"]*)"', page.text))
    return csrf_of(page.text), fields


def test_saving_an_establishment_updates_projection_and_events(app_client: TestClient, services: Services) -> None:
    login(app_client, "cadre@test.fr")
    csrf, fields = _entry_form(app_client)
    loc = f"loc-{FINESS}-rea-adu"
    avail = [k for k in fields if k.startswith(f"a-{loc}-")]
    assert avail and f"o-{loc}" in fields
    data = dict(fields)
    data[avail[0]] = "9"
    data[f"o-{loc}"] = "3"
    data[f"n-{loc}"] = "2 lits en nettoyage"
    assert app_client.post(f"/etablissements/{FINESS}/disponibilites", data=data).status_code == 403  # no CSRF
    with services.engine.connect() as c:
        events_before = c.execute(select(func.coalesce(func.max(capacity_event.c.pk), 0))).scalar_one()
        audit_before = c.execute(select(func.coalesce(func.max(audit_event.c.pk), 0))).scalar_one()
    r = app_client.post(
        f"/etablissements/{FINESS}/disponibilites",
        data={**data, "csrf": csrf, "action": "save"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "enregistre=1" in r.headers["location"]
    gender = avail[0].rsplit("-", 1)[1]
    with services.engine.connect() as c:
        nb = c.execute(
            select(capacity.c.nb, capacity.c.source_type).where(
                capacity.c.location_id == loc, capacity.c.status == "02", capacity.c.gender == gender
            )
        ).one()
        assert tuple(nb) == (9, "01")
        events = c.execute(
            select(capacity_event.c.status, capacity_event.c.nb_after, capacity_event.c.actor).where(
                capacity_event.c.pk > events_before
            )
        ).all()
        assert ("02", 9, "person:cadre@test.fr") in [tuple(e) for e in events]
        assert ("03", 3, "person:cadre@test.fr") in [tuple(e) for e in events]
        audited = c.execute(
            select(func.count()).where(
                audit_event.c.action == "capacity-entry", audit_event.c.res_id == loc, audit_event.c.pk > audit_before
            )
        ).scalar_one()
        assert audited == 1
    page = app_client.get(r.headers["location"]).text
    assert "1 unité(s) enregistrée(s)" in page and "2 lits en nettoyage" in page


def test_stored_indicators_the_form_does_not_offer_are_kept_and_a_broken_unit_is_named(
    app_client: TestClient, services: Services
) -> None:
    """An availability by gender R332 03 (deprecated since 2025-08-28, tolerated in stored data) is not a field
    of the form and is kept as stored when its unit is saved. A stored indicator the form re-stamps that breaks
    a rule (here an occupancy with a gender) names its unit next to the row (400, nothing written, the typed
    values kept); the other units are saved when that one is left unchanged."""
    login(app_client, "cadre@test.fr")
    _, fields = _entry_form(app_client)
    loc = f"loc-{FINESS}-rea-adu"
    others = sorted({k[2:].rsplit("-", 1)[0] for k in fields if k.startswith("a-")} - {loc})
    old, broken = others[0], others[1]
    originals = {lid: services.store.read("Location", lid).resource() for lid in (old, broken)}
    try:
        _keep_and_name(app_client, services, loc, old, broken)
    finally:  # the module's other tests confirm every unit
        for lid, content in originals.items():
            services.store.update("Location", lid, content)


def _keep_and_name(app_client: TestClient, services: Services, loc: str, old: str, broken: str) -> None:
    res = services.store.read("Location", old).resource()
    ind = next(i for i in indicators_of(res) if i.status == "02")
    res["extension"].append(replace(ind, gender="03", nb=1).to_extension())
    services.store.update("Location", old, res)
    res = services.store.read("Location", broken).resource()
    caps = res["extension"]
    occupied = next(i for i in indicators_of(res) if i.status == "03")
    idx = next(n for n, e in enumerate(caps) if e.get("url") == ids.EXT_CAPACITY and ind_of(e) == occupied)
    caps[idx] = replace(occupied, gender="01").to_extension()
    services.store.update("Location", broken, res)

    csrf, fields = _entry_form(app_client)
    assert f"a-{old}-03" not in fields and f"a-{old}-04" in fields
    mine = sorted(k for k in fields if k.startswith(f"a-{loc}-"))[0]
    data = {**fields, mine: "8", f"a-{old}-04": "5", f"o-{broken}": "1", "csrf": csrf, "action": "save"}
    r = app_client.post(f"/etablissements/{FINESS}/disponibilites", data=data)
    assert r.status_code == 400 and "Cette unité ne peut pas être enregistrée" in r.text, r.text[-3000:]
    assert 'value="8"' in r.text
    with services.engine.connect() as c:
        assert c.execute(select(capacity.c.nb).where(capacity.c.location_id == loc, capacity.c.nb == 8)).first() is None
    data[f"o-{broken}"] = fields[f"o-{broken}"]  # left unchanged: the others go through
    r = app_client.post(f"/etablissements/{FINESS}/disponibilites", data=data, follow_redirects=False)
    assert r.status_code == 303 and "enregistre=2" in r.headers["location"], r.text[-3000:]
    kept = [i for i in indicators_of(services.store.read("Location", old).resource()) if i.status == "02"]
    assert {(i.gender, i.nb, i.update_date) for i in kept} >= {("03", 1, ind.update_date)}
    assert any(i.gender == "04" and i.nb == 5 for i in kept)


def ind_of(ext: dict[str, Any]) -> Any:
    from ror.capacity.model import parse_indicator

    return parse_indicator(ext, "test")


def test_confirm_all_restamps_and_errors_come_back_next_to_the_field(
    app_client: TestClient, services: Services
) -> None:
    login(app_client, "cadre@test.fr")
    csrf, fields = _entry_form(app_client)
    loc = f"loc-{FINESS}-rea-adu"
    bad = {**fields, f"o-{loc}": "-2", "csrf": csrf, "action": "save"}
    r = app_client.post(f"/etablissements/{FINESS}/disponibilites", data=bad)
    assert r.status_code == 400
    assert "un nombre négatif n&#39;est pas possible" in r.text or "un nombre négatif n'est pas possible" in r.text
    assert 'aria-invalid="true"' in r.text
    r = app_client.post(
        f"/etablissements/{FINESS}/disponibilites",
        data={**fields, "csrf": csrf, "action": "confirm_all"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    n_units = len({k.split("-", 1)[1] for k in fields if k.startswith("v-")}) or len(
        [k for k in fields if k.startswith("o-")]
    )
    assert f"confirme={n_units}" in r.headers["location"]
    with services.engine.connect() as c:
        stamps = (
            c.execute(
                select(capacity.c.updated_at).where(
                    capacity.c.location_id.like(f"loc-{FINESS}-%"),
                    capacity.c.status.in_(("02", "03")),
                    capacity.c.temporality == "01",
                )
            )
            .scalars()
            .all()
        )
    newest = max(stamps)
    assert stamps and all((newest - s).total_seconds() < 60 for s in stamps)  # every row re-stamped now
    # a viewer may not post here, even with a valid CSRF token of its own session
    login(app_client, "lecteur@test.fr")
    own = csrf_of(app_client.get("/").text)
    r = app_client.post(f"/etablissements/{FINESS}/disponibilites", data={**fields, "csrf": own})
    assert r.status_code == 403 and "ne permet pas de saisir" in r.text


def test_pages_render_without_the_dsfr(engine: Engine, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """node_modules missing: the pages use the plain fallback stylesheet only."""
    import ror.web.app

    monkeypatch.setattr(ror.web.app, "dsfr_dist", lambda: None)
    with TestClient(create_app(engine)) as c:
        page = c.get("/connexion")
        assert page.status_code == 200 and 'class="no-dsfr"' in page.text and "/static/dsfr" not in page.text
        assert c.get("/static/web/ror.css").status_code == 200
        login(c, "lecteur@test.fr")
        assert c.get(f"/unites/loc-{FINESS}-rea-adu").status_code == 200
