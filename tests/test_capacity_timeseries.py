"""Capacity time series (src/ror/capacity/timeseries.py, GET /api/capacity/timeseries) against hand-computed values.

Window of the hourly tests: 2026-11-30 12:00Z → 2026-12-01 12:00Z, 24 buckets; bucket k starts at 12:00 + k h.
Values are the state at the end of each bucket; effective time = capacityUpdateDate (docs/capacity.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from ror.access.clients import ClientRegistry
from ror.access.tokens import TokenService
from ror.capacity.timeseries import capacity_series
from ror.db.tables import api_client, capacity_event
from ror.directory import ids
from ror.errors import InvalidRequest
from ror.reporting.daily import daily_report
from ror.server import create_app
from ror.store import ResourceStore
from tests.search_fixtures import capacity as cap
from tests.search_fixtures import location, org, service

KEY = "timeseries-test-key-0123456789-abcdefghijk"
UNTIL = "2026-12-01T12:00:00Z"
END = datetime(2026, 12, 1, 12, 0)
REGION_TAG = {"system": "https://mos.esante.gouv.fr/NOS/TRE_R30-RegionOM/FHIR/TRE-R30-RegionOM", "code": "53"}


def loc(rid: str, commune: str, org_id: str, caps: list[dict[str, Any]]) -> dict[str, Any]:
    res = location(rid, rid, 48.1, -1.6, commune, commune[:2] + "000", caps, org_id=org_id)
    res["meta"] = {"tag": [REGION_TAG]}
    return res


def write(store: ResourceStore, res: dict[str, Any]) -> None:
    store.update(res["resourceType"], res["id"], res, author="test")


@pytest.fixture
def history(store: ResourceStore) -> ResourceStore:
    """Four critical-care units and one sensitive unit, with a known history (see the expectations below)."""
    base = "2026-11-29T08:00:00Z"  # before the window: the state the window starts from
    for finess in ("350000001", "350000002", "220000003"):
        write(store, org(ids.eg_id(finess), f"CH {finess}", finess=finess))
    offers = [
        service("hs-a", "Réa médicale", "126", "01", ids.eg_id("350000001"), "loc-a"),
        service("hs-b", "Réa polyvalente", "121", "01", ids.eg_id("350000002"), "loc-b"),
        service("hs-c", "Réa Saint-Brieuc", "127", "01", ids.eg_id("220000003"), "loc-c"),
        service("hs-d", "Surveillance continue", "373", "01", ids.eg_id("350000001"), "loc-d"),
        service("hs-s", "Réa sensible", "122", "01", ids.eg_id("350000002"), "loc-s"),
    ]
    offers[-1]["extension"].append({"url": ids.EXT_SENSITIVE_UNIT, "valueBoolean": True})
    for hs in offers:
        write(store, hs)
    eg_a, eg_b, eg_c = ids.eg_id("350000001"), ids.eg_id("350000002"), ids.eg_id("220000003")
    # loc-a (35, rea-adulte): installed 20 and available 5 before the window
    write(store, loc("loc-a", "35238", eg_a, [cap("01", 20, updated=base), cap("02", 5, gender="01", updated=base)]))
    # two events in bucket 2 (14:00–15:00): the last one (2) is the bucket's value
    for nb, at in ((3, "2026-11-30T14:20:00Z"), (2, "2026-11-30T14:50:00Z"), (6, "2026-12-01T09:10:00Z")):
        write(store, loc("loc-a", "35238", eg_a, [cap("01", 20, updated=base), cap("02", nb, gender="01", updated=at)]))
    # after the window: must not leak into any hourly bucket (it is in the day bucket of 1 December)
    late = "2026-12-01T12:30:00Z"
    write(store, loc("loc-a", "35238", eg_a, [cap("01", 20, updated=base), cap("02", 4, gender="01", updated=late)]))
    # loc-b (35, rea-adulte): appears in bucket 1 (13:05)
    b1 = "2026-11-30T13:05:00Z"
    write(
        store,
        loc(
            "loc-b",
            "35238",
            eg_b,
            [cap("01", 10, updated=b1), cap("02", 1, gender="02", updated=b1), cap("03", 9, updated=b1)],
        ),
    )
    # loc-c (22, rea-adulte), loc-d (35, surveillance continue, same establishment as loc-a), loc-s (35, sensitive)
    write(store, loc("loc-c", "22278", eg_c, [cap("01", 12, updated=base), cap("02", 7, gender="04", updated=base)]))
    write(store, loc("loc-d", "35238", eg_a, [cap("01", 8, updated=base), cap("02", 2, gender="04", updated=base)]))
    write(store, loc("loc-s", "35238", eg_b, [cap("01", 4, updated=base), cap("02", 1, gender="04", updated=base)]))
    return store


def values(series: Any, measure: str) -> list[int | None]:
    return [p.values[measure] for p in series.points]


def test_unit_series_carries_forward_and_keeps_later_events_out(history: ResourceStore, engine: Engine) -> None:
    with engine.connect() as c:
        s = capacity_series(c, "location", "loc-a", days=1, bucket="hour", end=END)
    assert (s.start, s.end, s.units, len(s.points)) == (datetime(2026, 11, 30, 12), END, 1, 24)
    assert s.points[0].at == datetime(2026, 11, 30, 12) and s.points[-1].at == datetime(2026, 12, 1, 11)
    assert values(s, "available") == [5, 5] + [2] * 19 + [6, 6, 6]
    assert values(s, "installed") == [20] * 24
    assert values(s, "occupied") == [None] * 24
    # the window of 1 December as a day bucket: the 12:30 event is the value of that day
    with engine.connect() as c:
        d = capacity_series(c, "location", "loc-a", days=2, bucket="day", end=END)
    assert [p.at for p in d.points] == [datetime(2026, 11, 30), datetime(2026, 12, 1)]
    assert values(d, "available") == [2, 4]


def test_aggregates_by_territory_establishment_and_activity(history: ResourceStore, engine: Engine) -> None:
    with engine.connect() as c:
        dep = capacity_series(c, "departement", "35", activity="rea-adulte", days=1, end=END)
        dep_open = capacity_series(
            c, "departement", "35", activity="rea-adulte", days=1, end=END, include_sensitive=False
        )
        eg = capacity_series(c, "etablissement", "350000001", days=1, end=END)
        reg = capacity_series(c, "region", "53", days=1, end=END)
        nat = capacity_series(c, "national", activity="surveillance-continue", days=1, end=END)
    # loc-a + loc-b + loc-s (sensitive; loc-d is surveillance continue, loc-c in 22)
    assert dep.units == 3
    assert values(dep, "installed") == [24] + [34] * 23
    assert values(dep, "available") == [6, 7] + [4] * 19 + [8, 8, 8]
    assert values(dep, "occupied") == [None] + [9] * 23
    assert values(dep, "supplementary") == [None] * 24
    assert dep_open.units == 2 and values(dep_open, "available") == [5, 6] + [3] * 19 + [7, 7, 7]
    assert eg.units == 2 and values(eg, "installed") == [28] * 24  # loc-a + loc-d, whatever the activity
    assert values(eg, "available")[-1] == 6 + 2
    assert reg.units == 5 and values(reg, "installed")[-1] == 20 + 10 + 12 + 8 + 4
    assert nat.units == 1 and values(nat, "available") == [2] * 24
    # the series at the DGOS report's cutoff (end of 30 November in Paris = 23:00Z) gives the report's figures
    with engine.connect() as c:
        at_cutoff = capacity_series(
            c, "departement", "35", activity="rea-adulte", days=1, end=datetime(2026, 11, 30, 23)
        )
        report = daily_report(c, date(2026, 11, 30), departement="35")
    row = report.get("departement", "35", "rea-adulte")
    assert row is not None
    last = at_cutoff.points[-1].values
    assert (last["installed"], last["available"], last["occupied"]) == (
        row.figures.installed,
        row.figures.available,
        row.figures.occupied,
    )


def test_removed_indicator_counts_zero_and_statuses_filter(history: ResourceStore, engine: Engine) -> None:
    res = history.read("Location", "loc-b").resource()
    res["extension"] = [e for e in res["extension"] if not _status(e, "03")]  # occupancy removed (reception time)
    history.update("Location", "loc-b", res)
    with engine.connect() as c:
        removed_at = c.execute(
            select(capacity_event.c.received_at).where(
                capacity_event.c.location_id == "loc-b", capacity_event.c.nb_after.is_(None)
            )
        ).scalar_one()
        s = capacity_series(c, "location", "loc-b", days=1, end=removed_at, statuses=frozenset({"01", "03"}))
    assert s.measures == ("installed", "occupied") and "available" not in s.points[-1].values
    assert s.points[-1].values["occupied"] == 0  # the removal is effective in the bucket that holds it


def _status(ext: dict[str, Any], code: str) -> bool:
    return any(
        s.get("url") == "capacityStatus" and s["valueCodeableConcept"]["coding"][0]["code"] == code
        for s in ext.get("extension") or []
    )


def test_parameters_are_checked() -> None:
    for kwargs in (
        {"level": "planet", "code": "x"},
        {"level": "departement"},
        {"level": "national", "activity": "cardio"},
        {"level": "national", "bucket": "minute"},
        {"level": "national", "days": 0},
    ):
        with pytest.raises(InvalidRequest):
            capacity_series(None, **kwargs)  # type: ignore[arg-type]  # refused before any query


def test_http_endpoint_and_access(history: ResourceStore, engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(api_client.delete())
    reg = ClientRegistry(engine)
    with TestClient(create_app(engine, tokens=TokenService(KEY))) as client:

        def headers(profile: int) -> dict[str, str]:
            creds = reg.add(f"client {profile}", profile, [])
            tok = client.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": creds.client.client_id,
                    "client_secret": creds.secret,
                },
            ).json()["access_token"]
            return {"Authorization": f"Bearer {tok}"}

        params = {"level": "departement", "code": "35", "activity": "rea-adulte", "days": 1, "until": UNTIL}
        assert client.get("/api/capacity/timeseries", params=params).status_code == 401
        r = client.get("/api/capacity/timeseries", params=params, headers=headers(0))
        assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"
        r = client.get("/api/capacity/timeseries", params=params, headers=headers(1))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["units"] == 3 and body["start"] == "2026-11-30T12:00:00Z" and body["end"] == UNTIL
        assert body["points"][2] == {
            "t": "2026-11-30T14:00:00Z",
            "installed": 34,
            "available": 4,
            "occupied": 9,
            "reserved": None,
            "closed": None,
            "supplementary": None,
        }
        # profile 5 sees installed capacity only, and no sensitive unit
        r = client.get("/api/capacity/timeseries", params=params, headers=headers(5))
        assert r.status_code == 200 and r.json()["measures"] == ["installed"]
        assert r.json()["units"] == 2 and r.json()["points"][-1] == {"t": "2026-12-01T11:00:00Z", "installed": 30}
        r = client.get("/api/capacity/timeseries", params={**params, "bucket": "week"}, headers=headers(1))
        assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["bucket"]


def test_unit_page_chart_draws_the_hourly_series(history: ResourceStore, engine: Engine) -> None:
    """The unit page's 7-day chart comes from the time series: one step per hour bucket that changed."""
    import re
    from datetime import UTC, timedelta

    from ror.access.people import PersonRegistry
    from ror.db.tables import person, web_session
    from tests.test_web_pages import PASSWORD, login

    now = datetime.now(UTC)
    before, after = (now - timedelta(hours=h) for h in (3, 1))
    eg = ids.eg_id("350000001")
    for nb, at in ((5, before), (2, after)):
        stamp = at.replace(microsecond=0).isoformat()
        write(
            history, loc("loc-u", "35238", eg, [cap("01", 9, updated=stamp), cap("02", nb, gender="04", updated=stamp)])
        )
    with engine.begin() as c:
        c.execute(web_session.delete())
        c.execute(person.delete())
    PersonRegistry(engine).add("samu@test.fr", "Samu", "regulator", PASSWORD, [], None)
    with TestClient(create_app(engine)) as client:
        login(client, "samu@test.fr")
        page = client.get("/unites/loc-u")
    assert page.status_code == 200, page.text[:300]
    lines = dict(
        (title, points.split())
        for points, title in re.findall(r'<polyline[^>]*points="([^"]+)"><title>([^<]+)</title>', page.text)
    )
    # available: 5 from the bucket of `before`, 2 from the bucket of `after` → 2 points, 1 step, 1 end = 4 vertices
    assert len(lines["Disponibles"]) == 4 and len(lines["Installés"]) == 2
    ys = [float(p.split(",")[1]) for p in lines["Disponibles"]]
    assert ys[0] < ys[-1]  # the line goes down (5 → 2; SVG y grows downwards)
