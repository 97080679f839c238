"""The IG example RORLocationExemple1.fsh (five capacity indicators), expressed as JSON in
tests/fixtures/Location-ror-location-exemple-1.json (what SUSHI would produce: the FSH values, TRE systems and
displays, `_line` for the address-part extensions, `meta.profile` of InstanceOf), through the API and the projection.

Two deliberate facts of this server (docs/capacity.md) shape the test:
* the example's fifth indicator uses gender R332 **03 Indifférencié**, deprecated on 2025-08-28: the API refuses
  it on write (400/422 naming that code) and the store keeps it in existing data. So the literal example is checked
  as stored data (round trip + projection), and through the API with 03 replaced by 04 Indéterminé;
* an API write must belong to an establishment the client may write; the example has no `managingOrganization`,
  so the API variant points to a test establishment."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from ror.access.clients import ClientRegistry
from ror.access.tokens import TokenService
from ror.db.tables import api_client, capacity, capacity_event
from ror.directory import ids
from ror.geo.loader import load_geography
from ror.server import create_app
from ror.store import ResourceStore
from ror.terminology.loader import load_nos

KEY = "ig-example-test-key-0123456789-abcdefghijk"
FINESS = "450000088"
FIXTURE = Path(__file__).parent / "fixtures" / "Location-ror-location-exemple-1.json"
CREATION = ids.SD + "ror-meta-creation-date"
# (status, gender, additional bed type, crisis type) -> nbCapacity, all nature 01 / temporality 01 / assignment 01
EXPECTED = {
    ("01", "", "", ""): 15,
    ("06", "", "03", "02"): 0,
    ("02", "02", "", ""): 0,
    ("02", "01", "", ""): 0,
    ("02", "03", "", ""): 3,
}


def example() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def without_server_managed(res: dict[str, Any]) -> dict[str, Any]:
    """The resource minus what the store maintains (meta, ror-meta-creation-date: docs/validation.md)."""
    out = {k: v for k, v in res.items() if k != "meta"}
    out["extension"] = [e for e in res.get("extension") or [] if e.get("url") != CREATION]
    return out


def projection(engine: Engine, location_id: str) -> dict[tuple[str, ...], int]:
    c = capacity.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.nature, c.temporality, c.temporary_assignment, c.source_type, c.updated_at)
            .where(c.location_id == location_id)
            .distinct()
        ).all()
        assert [tuple(r) for r in rows] == [("01", "01", "01", "01", rows[0].updated_at)]
        assert rows[0].updated_at.isoformat() == "2024-07-08T18:15:39"
        found = conn.execute(
            select(c.status, c.gender, c.additional_bed_type, c.crisis_type, c.nb).where(c.location_id == location_id)
        ).all()
    return {tuple(r[:4]): r[4] for r in found}


def test_literal_example_round_trips_as_stored_data_and_projects_five_indicators(
    store: ResourceStore, engine: Engine
) -> None:
    original = example()
    stored, created = store.update("Location", original["id"], original)
    assert created and stored.version_id == 1
    back = store.read("Location", original["id"]).resource()
    assert without_server_managed(back) == without_server_managed(original)
    assert back["meta"]["profile"] == original["meta"]["profile"] and original["meta"]["tag"][0] in back["meta"]["tag"]
    assert projection(engine, original["id"]) == EXPECTED
    with engine.connect() as conn:
        events = conn.execute(
            select(capacity_event.c.status, capacity_event.c.nb_before, capacity_event.c.nb_after).where(
                capacity_event.c.location_id == original["id"]
            )
        ).all()
    assert sorted(events) == sorted((k[0], None, nb) for k, nb in EXPECTED.items())


@pytest.fixture(scope="module")
def refdata(engine: Engine, reference_dir: Path) -> None:
    load_nos(engine, reference_dir / "nos")
    load_geography(engine, reference_dir / "geo")


@pytest.fixture
def http(store: ResourceStore, engine: Engine, refdata: None) -> Iterator[tuple[TestClient, dict[str, str]]]:
    store.update(
        "Organization",
        ids.eg_id(FINESS),
        {
            "resourceType": "Organization",
            "id": ids.eg_id(FINESS),
            "name": "CHR ORLEANS",
            "identifier": [{"system": ids.FINESS, "value": FINESS}],
        },
    )
    with engine.begin() as c:
        c.execute(api_client.delete())
    creds = ClientRegistry(engine).add("GAM CHR", 1, [FINESS])
    with TestClient(create_app(engine, tokens=TokenService(KEY))) as client:
        tok = client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds.client.client_id,
                "client_secret": creds.secret,
            },
        ).json()["access_token"]
        yield client, {"Authorization": f"Bearer {tok}", "Content-Type": "application/fhir+json"}


def test_example_through_the_api_round_trips_unchanged(http, engine: Engine) -> None:
    client, h = http
    literal = example()
    literal["managingOrganization"] = {"reference": f"Organization/{ids.eg_id(FINESS)}"}
    url = f"/fhir/Location/{literal['id']}"
    # the deprecated gender code is refused on write, naming the code
    r = client.put(url, json=literal, headers=h)
    assert r.status_code in (400, 422), r.text
    assert any("03" in i.get("diagnostics", "") for i in r.json()["issue"]), r.text
    assert client.get(url, headers=h).status_code == 404
    # with 03 Indifférencié replaced by 04 Indéterminé (JDV_J190 of 2025-08-28), stored and read back unchanged
    sent = copy.deepcopy(literal)
    gender = next(
        s["valueCodeableConcept"]["coding"][0]
        for e in sent["extension"]
        for s in e.get("extension") or []
        if s["url"] == "genderCapacityAvailable" and s["valueCodeableConcept"]["coding"][0]["code"] == "03"
    )
    gender.update(code="04", display="Indéterminé")
    r = client.put(url, json=sent, headers=h)
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == 'W/"1"'
    back = client.get(url, headers=h).json()
    assert without_server_managed(back) == without_server_managed(sent)
    assert back["meta"]["versionId"] == "1" and back["meta"]["profile"] == sent["meta"]["profile"]
    assert sent["meta"]["tag"][0] in back["meta"]["tag"]  # région 24 (Orléans is in Centre-Val de Loire)
    assert projection(engine, sent["id"]) == {
        (k[0], "04" if k[1] == "03" else k[1], *k[2:]): nb for k, nb in EXPECTED.items()
    }
    # what was read back, sent again, is the same resource: no new version
    r = client.put(url, json=back, headers=h)
    assert r.status_code == 200 and r.headers["etag"] == 'W/"1"'
    # and the capacity search sees the five indicators
    found = client.get(
        "/fhir/Location",
        params={"capacity-status": "06", "crisis-type": "02", "additional-bed-type": "03", "nb-capacity": "0"},
        headers=h,
    ).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [sent["id"]]
