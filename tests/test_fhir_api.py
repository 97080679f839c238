"""The FHIR HTTP API over real HTTP (httpx ASGI transport), on the test database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from ror.server import create_app
from ror.store import ResourceStore
from tests.search_fixtures import populate


@pytest.fixture
def client(store: ResourceStore, engine: Engine) -> Iterator[TestClient]:
    populate(store)
    with TestClient(create_app(engine)) as c:  # httpx over the ASGI app
        yield c


def test_metadata_lists_what_is_served(client) -> None:
    r = client.get("/fhir/metadata")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["instantiates"] == ["https://interop.esante.gouv.fr/ig/fhir/ror/CapabilityStatement/ror-serveur"]
    loc = next(x for x in cs["rest"][0]["resource"] if x["type"] == "Location")
    names = {p["name"]: p for p in loc["searchParam"]}
    assert names["nb-capacity"]["definition"] == (
        "https://interop.esante.gouv.fr/ig/fhir/ror/SearchParameter/ror-sp-nb-capacity"
    )
    assert {"near", "near-insee-code", "_id", "_lastUpdated", "capacity-status"} <= set(names)
    assert "same indicator" in cs["rest"][0]["documentation"]


def test_read_etag_and_history(client) -> None:
    r = client.get("/fhir/Location/loc-rea-rennes")
    assert r.status_code == 200
    assert r.headers["etag"] == 'W/"1"'
    assert r.json()["id"] == "loc-rea-rennes"
    h = client.get("/fhir/Location/loc-rea-rennes/_history")
    assert h.json()["type"] == "history" and h.json()["total"] == 1
    assert client.get("/fhir/Location/loc-rea-rennes/_history/1").status_code == 200
    r404 = client.get("/fhir/Location/nope")
    assert r404.status_code == 404 and r404.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Location/loc-rea-rennes/_history/9").status_code == 404
    assert client.get("/fhir/Patient/x").status_code == 404


def test_search_bundle_paging_links_and_includes(client) -> None:
    r = client.get("/fhir/Location", params={"_count": "2", "_revinclude": "HealthcareService:location"})
    b = r.json()
    assert b["type"] == "searchset" and b["total"] == 3
    assert [e["search"]["mode"] for e in b["entry"]].count("match") == 2
    assert {e["resource"]["resourceType"] for e in b["entry"] if e["search"]["mode"] == "include"} == {
        "HealthcareService"
    }
    next_url = next(link["url"] for link in b["link"] if link["relation"] == "next")
    b2 = client.get(next_url.replace("http://testserver", "")).json()
    assert [e["resource"]["id"] for e in b2["entry"] if e["search"]["mode"] == "match"] == ["loc-ped-rennes"]
    assert not any(link["relation"] == "next" for link in b2["link"])
    assert any(link["relation"] == "previous" for link in b2["link"])


def test_near_adds_location_distance(client) -> None:
    b = client.get(
        "/fhir/HealthcareService",
        params={"location.near": "48.1005|-1.6610|10|km", "_include": "HealthcareService:location", "_sort": "near"},
    ).json()
    assert [e["resource"]["id"] for e in b["entry"] if e["search"]["mode"] == "match"] == [
        "hs-ped-rennes",
        "hs-rea-rennes",
    ]
    locs = [e for e in b["entry"] if e["resource"]["resourceType"] == "Location"]
    dists = {e["resource"]["id"]: e["search"]["extension"][0]["valueDistance"]["value"] for e in locs}
    assert dists["loc-ped-rennes"] < 0.01 < dists["loc-rea-rennes"] < 10


def test_post_search_and_elements(client) -> None:
    r = client.post("/fhir/HealthcareService/_search", data={"specialty": "126", "_elements": "name"})
    entry = r.json()["entry"][0]["resource"]
    assert set(entry) == {"resourceType", "id", "meta", "name"}
    assert any(t["code"] == "SUBSETTED" for t in entry["meta"]["tag"])


def test_errors_are_operation_outcomes(client) -> None:
    r = client.get("/fhir/Location", params={"capacty-status": "02"})
    assert r.status_code == 400
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["capacty-status"] and "unknown search parameter" in issue["diagnostics"]
    r = client.get("/fhir/Location/loc-rea-rennes/_history", params={"_count": "abc"})
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
