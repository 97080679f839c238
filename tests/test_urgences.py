"""Emergency-department activity: FHIR MeasureReport feed (rights, validation, audit), time-series aggregation,
latest figures, filtered search, the web page next to critical care, hand entry, and the SAE-scaled demo."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, select

from ror.access.people import PersonRegistry
from ror.access.policy import Profile
from ror.access.tokens import Caller
from ror.db.tables import audit_event, person, web_session
from ror.directory import ids
from ror.search.normalise import fhir_instant, utcnow
from ror.store.meta import REGION_SYSTEM
from ror.urgences.demo import load_urgences_demo
from ror.urgences.model import EXT_SERVICE, GROUP_SYSTEM, MEASURE_URL, Figures
from tests.regional_fixtures import Regional, tagged
from tests.search_fixtures import org

pytest_plugins = ("tests.regional_fixtures",)
RENNES = Caller(Profile.PROFESSIONAL, "client", "sih-rennes", ("350000741",), frozenset({"read", "write"}))
LORIENT = Caller(Profile.PROFESSIONAL, "client", "sih-lorient", ("560000135",), frozenset({"read", "write"}))


def report(service_id: str, present: int, waiting: int, passages: int, date: str | None = None) -> dict:
    res = {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": MEASURE_URL,
        "extension": [{"url": EXT_SERVICE, "valueReference": {"reference": f"HealthcareService/{service_id}"}}],
        "group": [
            {"code": {"coding": [{"system": GROUP_SYSTEM, "code": c}]}, "measureScore": {"value": v}}
            for c, v in (("patients-presents", present), ("attente-lit", waiting), ("passages-24h", passages))
        ],
    }
    if date:
        res["date"] = date
    return res


def test_feed_through_fhir(regional: Regional) -> None:
    http = regional.http
    feeder = regional.token(2, ["350000741"], "SIH Rennes")
    assert http.post("/fhir/MeasureReport", json=report("hs-urg-rennes", 40, 8, 240)).status_code == 401
    r = http.post("/fhir/MeasureReport", json=report("hs-urg-rennes", 40, 8, 240), headers=feeder)
    assert r.status_code == 201, r.text
    mr = r.json()
    assert mr["subject"] == {"reference": "Location/loc-urg-rennes"}
    assert mr["reporter"]["identifier"]["value"] == "350000741"
    assert {g["code"]["coding"][0]["code"]: g["measureScore"]["value"] for g in mr["group"]} == {
        "patients-presents": 40,
        "attente-lit": 8,
        "passages-24h": 240,
    }
    assert {"system": REGION_SYSTEM, "code": "53"} in mr["meta"]["tag"]
    assert http.post("/fhir/MeasureReport", json=report("hs-urg-lorient", 1, 0, 5), headers=feeder).status_code == 403
    not_ed = http.post("/fhir/MeasureReport", json=report("hs-rea-rennes", 1, 0, 5), headers=feeder)
    assert not_ed.status_code == 400 and "care mode 33" in not_ed.json()["issue"][0]["diagnostics"]
    assert http.post("/fhir/MeasureReport", json=report("hs-urg-rennes", 3, 5, 5), headers=feeder).status_code == 400
    by_place = report("hs-urg-rennes", 41, 9, 241)
    by_place["extension"] = []
    by_place["subject"] = {"reference": "Location/loc-urg-rennes"}
    assert http.post("/fhir/MeasureReport", json=by_place, headers=feeder).status_code == 201
    assert http.get(f"/fhir/MeasureReport/{mr['id']}", headers=feeder).status_code == 200
    assert http.get("/fhir/MeasureReport/$dgos-daily", params={"date": "2026-01-01"}).status_code == 401  # not ours
    with regional.engine.connect() as c:
        rows = c.execute(select(audit_event.c.action).where(audit_event.c.res_type == "MeasureReport")).scalars()
        assert sorted(rows) == ["create", "create", "denied", "denied"]  # anonymous, other establishment


def test_series_aggregate_last_value_per_department_and_bucket(regional: Regional) -> None:
    svc = regional.services.urgences
    t0 = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    for service_id, caller, minutes, figures in (
        ("hs-urg-rennes", RENNES, 10, Figures(30, 5, 200)),
        ("hs-urg-rennes", RENNES, 50, Figures(34, 6, 204)),  # later in the same hour: replaces the first
        ("hs-urg-lorient", LORIENT, 20, Figures(12, 2, 150)),
        ("hs-urg-rennes", RENNES, 130, Figures(45, 11, 210)),  # hour 2; Lorient silent then
    ):
        svc.record(caller, figures, service_id=service_id, observed_at=t0 + timedelta(minutes=minutes))
    points = svc.series(t0, t0 + timedelta(hours=3), timedelta(hours=1), region="53")
    assert [(p.present, p.waiting_bed, p.passages_24h, p.departments) for p in points] == [
        (46, 8, 354, 2),
        (0, 0, 0, 0),
        (45, 11, 210, 1),
    ]
    assert [p.at for p in points] == [t0, t0 + timedelta(hours=1), t0 + timedelta(hours=2)]
    assert svc.series(t0, t0 + timedelta(hours=3), timedelta(hours=3), service_id="hs-urg-lorient")[0].present == 12
    latest = {r.service_id: r.present for r in svc.latest("53")}
    assert latest == {"hs-urg-rennes": 45, "hs-urg-lorient": 12}
    assert svc.latest("52") == []
    http = regional.http
    admin = regional.token(1)
    b = http.get(
        "/fhir/MeasureReport",
        params={"_tag": f"{REGION_SYSTEM}|53", "date": "ge" + fhir_instant(t0 + timedelta(minutes=40))},
        headers=admin,
    ).json()
    assert b["total"] == 2
    only_lorient = http.get("/fhir/MeasureReport", headers=regional.token(2, ["560000135"])).json()
    assert only_lorient["total"] == 1
    assert http.get("/fhir/MeasureReport", headers=regional.token(2)).status_code == 403
    sub = http.get("/fhir/MeasureReport", params={"subject": "Location/loc-urg-lorient"}, headers=admin).json()
    assert sub["total"] == 1


def test_pages_overview_and_hand_entry(regional: Regional) -> None:
    http = regional.http
    with regional.engine.begin() as c:
        c.execute(delete(web_session))
        c.execute(delete(person))
    people = PersonRegistry(regional.engine)
    password = "correct horse battery staple"
    people.add("ars@test.fr", "ARS", "regional_admin", password, [], "53")
    people.add("cadre@test.fr", "Cadre", "establishment_manager", password, ["350000741"], None)
    regional.services.urgences.record(LORIENT, Figures(12, 3, 150), service_id="hs-urg-lorient")

    def login(email: str) -> str:
        http.cookies.clear()
        page = http.get("/connexion")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        r = http.post(
            "/connexion", data={"email": email, "password": password, "csrf": token[1]}, follow_redirects=False
        )
        assert r.status_code == 303
        return token[1]

    login("cadre@test.fr")
    page = http.get("/urgences/hs-urg-rennes")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf
    r = http.post(
        "/urgences/hs-urg-rennes",
        data={"csrf": csrf[1], "presents": "25", "attente": "4", "passages": "230"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    bad = http.post("/urgences/hs-urg-rennes", data={"csrf": csrf[1], "presents": "2", "attente": "4", "passages": "1"})
    assert bad.status_code == 400
    assert (
        http.post(
            "/urgences/hs-urg-lorient", data={"csrf": csrf[1], "presents": "1", "attente": "0", "passages": "1"}
        ).status_code
        == 403
    )
    assert http.get("/urgences").status_code == 403  # regional view: dashboard roles
    login("ars@test.fr")
    page = http.get("/urgences")
    assert page.status_code == 200
    assert re.search(r'id="total-presents">37<', page.text) and re.search(r'id="total-attente">7<', page.text)
    assert 'id="critiques-disponibles"' in page.text
    assert "Urgences adultes" in page.text
    latest = {r.service_id: r.source for r in regional.services.urgences.latest("53")}
    assert latest == {"hs-urg-rennes": "manual", "hs-urg-lorient": "feed"}


def test_demo_scales_from_sae_passages(regional: Regional, reference_dir: Path) -> None:
    store = regional.services.store
    store.bulk_upsert([tagged(org(ids.eg_id("560000135"), "GHBS Hôpital du Scorff", finess="560000135"), "53")])
    summary = load_urgences_demo(regional.services.urgences, reference_dir)
    assert "1 emergency departments, 24 hourly reports" in summary
    reports = regional.services.urgences.search(service_id=ids.unit_service_id("560000135", "urg"))
    assert len(reports) == 24
    daily = 57180 / 365  # SAE 2023: 57 180 passages a year
    assert all(0.89 * daily <= r.passages_24h <= 1.11 * daily for r in reports)
    assert all(r.waiting_bed <= r.present < daily for r in reports)
    assert max(r.present for r in reports) > min(r.present for r in reports)  # the day has a shape
