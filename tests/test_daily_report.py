"""DGOS daily report: critical-care beds for a past date from the capacity history, against hand-computed figures;
CSV / XLSX / MeasureReport shapes; CLI; API access and the web page."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from ror.access.clients import ClientRegistry
from ror.access.tokens import TokenService
from ror.db.tables import api_client
from ror.directory import ids
from ror.directory.units import (
    UNIT_TYPES,
    Site,
    capacity_indicator,
    healthcare_service,
    unit_location,
)
from ror.reporting.daily import PARIS, cutoff_of, daily_report
from ror.reporting.formats import COLUMNS, to_csv, to_measure_report, to_xlsx
from ror.search.normalise import utcnow
from ror.server import create_app
from ror.store import ResourceStore

KEY = "daily-report-test-key-0123456789-abcdefghij"
A = Site("350000001", "53", "35238")  # Rennes (35, Bretagne)
B = Site("220000002", "53", "22278")  # Saint-Brieuc (22, Bretagne)
C = Site("440000003", "52", "44109")  # Nantes (44, Pays de la Loire)
DAY1, DAY2 = date(2026, 11, 10), date(2026, 11, 11)
INSTALLED_AT = "2026-11-01T00:00:00+01:00"


def eg(site: Site, name: str) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": ids.eg_id(site.finess),
        "meta": {"tag": [{"system": ids.TRE_R30, "code": site.region}]},
        "identifier": [{"system": ids.FINESS, "value": site.finess}],
        "name": name,
    }


def cap(status: str, nb: int, when: str, **kw: Any) -> dict[str, Any]:
    return capacity_indicator("01", status, "01", nb, "01", when, **kw)


def unit(site: Site, key: str, *caps: dict[str, Any]) -> dict[str, Any]:
    return unit_location(site, UNIT_TYPES[key], caps)


def day1() -> list[dict[str, Any]]:
    t1 = "2026-11-10T08:00:00+01:00"
    return [
        unit(A, "rea-adu", cap("01", 20, INSTALLED_AT), cap("02", 5, t1), cap("03", 15, t1)),
        unit(A, "sc-adu", cap("01", 8, INSTALLED_AT), cap("02", 2, "2026-11-10T09:00:00+01:00")),
        unit(
            B,
            "rea-ped",
            cap("01", 6, INSTALLED_AT),
            cap("02", 1, "2026-11-10T10:00:00+01:00"),
            cap("03", 5, "2026-11-10T10:00:00+01:00"),
            cap("06", 2, "2026-11-10T10:00:00+01:00", additional_bed_type="01"),
            cap("01", 2, INSTALLED_AT, temporary_assignment="02"),
            cap("03", 1, "2026-11-10T10:00:00+01:00", temporary_assignment="02"),
        ),
        unit(B, "si-usic", cap("01", 10, INSTALLED_AT), cap("02", 0, "2026-11-08T12:00:00+01:00")),
        unit(B, "med", cap("01", 30, INSTALLED_AT), cap("02", 9, "2026-11-10T10:00:00+01:00")),  # not critical
        unit(C, "rea-adu", cap("01", 12, INSTALLED_AT), cap("02", 3, "2026-11-10T23:30:00+01:00")),
    ]


def day2() -> list[dict[str, Any]]:
    t2 = "2026-11-11T07:00:00+01:00"
    return [
        unit(A, "rea-adu", cap("01", 20, INSTALLED_AT), cap("02", 2, t2), cap("03", 18, t2)),
        # 00:30 in Paris on the 11th is still the 10th in UTC: it belongs to day 2
        unit(C, "rea-adu", cap("01", 12, INSTALLED_AT), cap("02", 4, "2026-11-11T00:30:00+01:00")),
    ]


@pytest.fixture
def history(store: ResourceStore) -> dict[str, datetime]:
    sites = [(A, "CHU DE RENNES"), (B, "CH DE SAINT-BRIEUC"), (C, "CHU DE NANTES")]
    offers = [healthcare_service(s, UNIT_TYPES[k]) for s, k in ((A, "rea-adu"), (A, "sc-adu"), (C, "rea-adu"))]
    offers += [healthcare_service(B, UNIT_TYPES[k]) for k in ("rea-ped", "si-usic", "med")]
    store.bulk_upsert([eg(s, n) for s, n in sites] + offers + day1())
    between = utcnow()
    while utcnow() <= between:  # timestamps have millisecond precision: day 2 must be received strictly later
        time.sleep(0.0005)
    store.bulk_upsert(day2())
    return {"between": between}


def figures(report: Any, level: str, code: str, family: str = "total") -> tuple[int, ...]:
    row = report.get(level, code, family)
    assert row is not None, (level, code, family)
    f = row.figures
    return (f.units, f.installed, f.available, f.occupied, f.supplementary, f.stale)


def test_day1_matches_hand_computed_aggregates(engine: Engine, history: dict[str, datetime]) -> None:
    with engine.connect() as conn:
        r = daily_report(conn, DAY1)
    # establishments: (units, installed, available, occupied, supplementary, stale)
    assert figures(r, "etablissement", A.finess) == (2, 28, 7, 15, 0, 0)
    assert figures(r, "etablissement", B.finess) == (2, 16, 1, 5, 2, 1)  # USIC last updated on the 8th: stale
    assert figures(r, "etablissement", C.finess) == (1, 12, 3, 0, 0, 0)
    assert figures(r, "departement", "35") == (2, 28, 7, 15, 0, 0)
    assert figures(r, "departement", "22") == (2, 16, 1, 5, 2, 1)
    assert figures(r, "region", "53") == (4, 44, 8, 20, 2, 1)
    assert figures(r, "region", "52") == (1, 12, 3, 0, 0, 0)
    assert figures(r, "nation", "FR") == (5, 56, 11, 20, 2, 1)
    # families
    assert figures(r, "nation", "FR", "rea-adulte") == (2, 32, 8, 15, 0, 0)
    assert figures(r, "nation", "FR", "rea-pediatrique") == (1, 6, 1, 5, 2, 0)
    assert figures(r, "nation", "FR", "soins-intensifs") == (1, 10, 0, 0, 0, 1)
    assert figures(r, "nation", "FR", "surveillance-continue") == (1, 8, 2, 0, 0, 0)
    covid = r.get("nation", "FR").figures.covid_pos
    assert (covid.installed, covid.available, covid.occupied) == (2, 0, 1)
    # the non-critical medicine unit is not counted anywhere
    assert all(row.family != "med" for row in r.rows)
    # freshness: the oldest latest availability is USIC's (8 Nov 12:00 Paris = 11:00 UTC)
    assert r.get("nation", "FR").figures.oldest_update == datetime(2026, 11, 8, 11, 0)
    assert r.get("nation", "FR").figures.age_hours(r.cutoff) == 60.0  # → 11 Nov 00:00 Paris = 10 Nov 23:00 UTC


def test_later_events_do_not_leak_into_an_earlier_date(engine: Engine, history: dict[str, datetime]) -> None:
    with engine.connect() as conn:
        r2 = daily_report(conn, DAY2)
        known = daily_report(conn, DAY2, known_at=history["between"])
        before = daily_report(conn, date(2026, 11, 9))
    assert figures(r2, "etablissement", A.finess) == (2, 28, 4, 18, 0, 1)  # SC not updated since the 10th: stale
    assert figures(r2, "etablissement", C.finess) == (1, 12, 4, 0, 0, 0)
    assert figures(r2, "nation", "FR") == (5, 56, 9, 23, 2, 3)
    # what the ROR had received before the day-2 feed: day-1 figures
    assert figures(known, "nation", "FR")[1:4] == (56, 11, 20)
    # the day before: only the installed beds (dated 1 Nov) and USIC's availability of the 8th
    assert figures(before, "nation", "FR") == (5, 56, 0, 0, 0, 5)  # nothing fresh on the 9th


def test_removed_indicator_stops_counting_from_its_removal(
    store: ResourceStore, engine: Engine, history: dict[str, datetime]
) -> None:
    store.bulk_upsert([unit(A, "sc-adu", cap("01", 8, INSTALLED_AT))])  # availability removed now
    today = datetime.now(PARIS).date()  # the report day is a Paris day
    with engine.connect() as conn:
        then = daily_report(conn, DAY1)
        now = daily_report(conn, today)
    assert figures(then, "etablissement", A.finess, "surveillance-continue")[1:3] == (8, 2)
    assert figures(now, "etablissement", A.finess, "surveillance-continue")[1:3] == (8, 0)


def test_scope_and_cutoff(engine: Engine, history: dict[str, datetime]) -> None:
    assert cutoff_of(DAY1) == datetime(2026, 11, 10, 23, 0)  # CET
    assert cutoff_of(date(2026, 7, 1)) == datetime(2026, 7, 1, 22, 0)  # CEST
    with engine.connect() as conn:
        r = daily_report(conn, DAY1, region="52")
        d = daily_report(conn, DAY1, departement="22")
    assert {row.code for row in r.level("etablissement")} == {C.finess}
    assert figures(r, "nation", "FR") == (1, 12, 3, 0, 0, 0)
    assert {row.code for row in d.level("etablissement")} == {B.finess}


def test_csv_xlsx_and_measure_report_shapes(engine: Engine, history: dict[str, datetime]) -> None:
    from openpyxl import load_workbook

    with engine.connect() as conn:
        r = daily_report(conn, DAY1)
    text = to_csv(r)
    assert text.startswith("\ufeff")
    lines = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert lines[0] == COLUMNS
    nation = next(x for x in lines if x[1] == "nation" and x[6] == "Soins critiques (total)")
    row = dict(zip(COLUMNS, nation, strict=True))
    assert (row["lits_installes"], row["lits_disponibles"], row["lits_occupes"]) == ("56", "11", "20")
    assert row["covid_pos_occupes"] == "1" and row["unites_non_a_jour"] == "1"
    assert len(lines) == 1 + len(r.rows)

    wb = load_workbook(io.BytesIO(to_xlsx(r)))
    ws = wb["Rapport"]
    assert [c.value for c in ws[1]] == COLUMNS
    assert ws.max_row == 1 + len(r.rows)
    assert "Définitions" in wb.sheetnames

    mr = to_measure_report(r)
    assert mr["resourceType"] == "MeasureReport" and mr["status"] == "complete" and mr["type"] == "summary"
    assert mr["period"]["end"] == "2026-11-10T23:00:00+00:00"
    groups = {g["code"]["coding"][0]["code"]: g for g in mr["group"]}
    assert set(groups) == {"rea-adulte", "rea-pediatrique", "soins-intensifs", "surveillance-continue", "total"}
    pops = {p["code"]["coding"][-1]["code"]: p["count"] for p in groups["total"]["population"]}
    assert (pops["numTotBeds"], pops["numTotBedsAvail"], pops["numTotBedsOcc"]) == (56, 11, 20)
    assert groups["total"]["population"][0]["code"]["coding"][0]["code"] == "denominator"
    strat = {s["code"][0]["text"]: s["stratum"] for s in groups["rea-adulte"]["stratifier"]}
    by_dep = {s["value"]["coding"][0]["code"]: s for s in strat["departement"]}
    assert set(by_dep) == {"35", "44"}
    assert {p["code"]["coding"][-1]["code"]: p["count"] for p in by_dep["44"]["population"]}["numTotBeds"] == 12
    assert {s["value"]["coding"][0]["code"] for s in strat["etablissement"]} == {A.finess, C.finess}


# --- adapters -------------------------------------------------------------------------------------------------
@pytest.fixture
def http(engine: Engine, history: dict[str, datetime]) -> Iterator[tuple[TestClient, ClientRegistry]]:
    with engine.begin() as c:
        c.execute(api_client.delete())
    with TestClient(create_app(engine, tokens=TokenService(KEY))) as client:
        yield client, ClientRegistry(engine)


def _token(client: TestClient, clients: ClientRegistry, profile: int) -> dict[str, str]:
    creds = clients.add(f"profil {profile}", profile, [])
    tok = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": creds.client.client_id, "client_secret": creds.secret},
    ).json()["access_token"]
    return {"Authorization": f"Bearer {tok}"}


def test_api_formats_and_access(http: tuple[TestClient, ClientRegistry]) -> None:
    client, clients = http
    anon = client.get("/api/reports/daily", params={"date": "2026-11-10"})
    assert anon.status_code == 401 and anon.json()["resourceType"] == "OperationOutcome"
    pro = _token(client, clients, 2)  # no supplementary capacity: not the report
    assert client.get("/api/reports/daily", params={"date": "2026-11-10"}, headers=pro).status_code == 403
    h = _token(client, clients, 1)
    r = client.get("/api/reports/daily", params={"date": "2026-11-10", "format": "csv"}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "rapport-quotidien-2026-11-10" in r.headers["content-disposition"]
    x = client.get(
        "/api/reports/daily", params={"date": "2026-11-10", "format": "xlsx", "scope": "region:52"}, headers=h
    )
    assert x.status_code == 200 and x.content[:2] == b"PK"
    mr = client.get("/fhir/MeasureReport/$dgos-daily", params={"date": "2026-11-10"}, headers=h)
    assert mr.status_code == 200 and mr.headers["content-type"].startswith("application/fhir+json")
    total = next(g for g in mr.json()["group"] if g["code"]["coding"][0]["code"] == "total")
    assert {p["code"]["coding"][-1]["code"]: p["count"] for p in total["population"]}["numTotBeds"] == 56
    bad = client.get("/api/reports/daily", params={"date": "10/11/2026"}, headers=h)
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["date"]
    assert (
        client.get("/api/reports/daily", params={"date": "2026-11-10", "format": "pdf"}, headers=h).status_code == 400
    )


def test_cli_writes_the_report(engine: Engine, history: dict[str, datetime], tmp_path: Any, monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from ror.cli import app

    monkeypatch.setenv("ROR_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    from ror.config import get_settings

    if hasattr(get_settings, "cache_clear"):
        get_settings.cache_clear()
    out = tmp_path / "r.csv"
    res = CliRunner().invoke(app, ["report", "daily", "--date", "2026-11-10", "--format", "csv", "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig")), delimiter=";"))
    nation = next(x for x in rows if x[1] == "nation" and x[6] == "Soins critiques (total)")
    assert nation[8:11] == ["56", "11", "20"]
    fhir = tmp_path / "r.json"
    res = CliRunner().invoke(
        app, ["report", "daily", "--date", "2026-11-10", "--format", "fhir", "--scope", "region:52", "-o", str(fhir)]
    )
    assert res.exit_code == 0, res.output
    assert '"MeasureReport"' in fhir.read_text()


def test_web_page_and_downloads(http: tuple[TestClient, ClientRegistry], engine: Engine) -> None:
    from tests.test_quality import web_login

    client, _ = http
    web_login(client, engine, "viewer")  # profile 2: no operational capacity
    assert client.get("/rapports/quotidien", params={"date": "2026-11-10"}).status_code == 403
    web_login(client, engine, "national_admin")
    page = client.get("/rapports/quotidien", params={"date": "2026-11-10"})
    assert page.status_code == 200 and "Rapport quotidien" in page.text
    assert "CHU DE NANTES (440000003)" in page.text and "10/11/2026" in page.text
    assert 'href="/rapports/quotidien.xlsx?date=2026-11-10"' in page.text
    csv_r = client.get("/rapports/quotidien.csv", params={"date": "2026-11-10", "region": "52"})
    assert csv_r.status_code == 200 and "440000003" in csv_r.text and "350000001" not in csv_r.text
    assert client.get("/rapports/quotidien.xlsx", params={"date": "2026-11-10"}).content[:2] == b"PK"
    fhir = client.get("/rapports/quotidien.json", params={"date": "2026-11-10"})
    assert fhir.json()["resourceType"] == "MeasureReport"
