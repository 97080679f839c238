from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine

from ror.capacity.crisis import CrisisRegistry
from ror.capacity.freshness import unit_freshness
from ror.db.tables import crisis
from ror.errors import InvalidRequest
from ror.store import ResourceStore
from tests.search_fixtures import capacity, location

NOW = datetime(2026, 11, 30, 12, 0)


@pytest.fixture
def crises(engine: Engine) -> CrisisRegistry:
    with engine.begin() as c:
        c.execute(crisis.delete())
    return CrisisRegistry(engine)


def test_crisis_lifecycle_and_scope(crises: CrisisRegistry) -> None:
    cr = crises.declare("02", "departement", ["35", "22"], "ars-bretagne", reason="afflux", at=NOW - timedelta(hours=1))
    assert cr.covers(None, "35") and not cr.covers(None, "56")
    assert [c.id for c in crises.active(NOW)] == [cr.id]
    assert crises.freshness_limit("53", "35", NOW) == timedelta(minutes=60)
    assert crises.freshness_limit("53", "56", NOW) == timedelta(hours=24)
    ended = crises.end(cr.id, "ars-bretagne", at=NOW + timedelta(hours=2))
    assert ended.ended_by == "ars-bretagne" and crises.active(NOW + timedelta(hours=3)) == []
    assert crises.active(NOW) != []  # history: it was active then
    with pytest.raises(InvalidRequest):
        crises.end(cr.id, "x")
    with pytest.raises(InvalidRequest):
        crises.declare("09", "region", ["53"], "x")


def test_stale_units_follow_the_rule(store: ResourceStore, crises: CrisisRegistry) -> None:
    fresh = (NOW - timedelta(minutes=30)).isoformat() + "+00:00"
    old = (NOW - timedelta(hours=3)).isoformat() + "+00:00"
    store.bulk_upsert(
        [
            location(
                "loc-a",
                "A",
                48.1,
                -1.6,
                "35238",
                "35000",
                [capacity("01", 10), capacity("02", 2, gender="04", updated=fresh)],
            ),
            location(
                "loc-b",
                "B",
                48.1,
                -1.6,
                "35238",
                "35000",
                [capacity("01", 10), capacity("02", 1, gender="04", updated=old)],
            ),
            location("loc-c", "C", 48.1, -1.6, "35238", "35000", [capacity("01", 10)]),
        ]
    )
    units = {u.location_id: u for u in unit_freshness(store.engine, departement="35", at=NOW)}
    assert {k for k, u in units.items() if u.stale(NOW)} == {"loc-c"}  # never reported
    assert units["loc-b"].age(NOW) == timedelta(hours=3)
    crises.declare("02", "departement", ["35"], "ars", at=NOW - timedelta(minutes=5))
    units = {u.location_id: u for u in unit_freshness(store.engine, departement="35", at=NOW)}
    assert {k for k, u in units.items() if u.stale(NOW)} == {"loc-b", "loc-c"}


def test_crises_are_visible_to_consumers(crises: CrisisRegistry, engine: Engine) -> None:
    from fastapi.testclient import TestClient

    from ror.server import create_app

    cr = crises.declare("02", "region", ["53"], "ars-bretagne", reason="Plan blanc")
    with TestClient(create_app(engine)) as client:
        body = client.get("/api/crises").json()
        assert [c["id"] for c in body["crises"]] == [cr.id]
        assert body["crises"][0]["type"]["display"].endswith("(Plan blanc)")
        crises.end(cr.id, "ars-bretagne")
        assert client.get("/api/crises").json()["crises"] == []
        assert len(client.get("/api/crises", params={"all": "true"}).json()["crises"]) == 1
