"""The write API over real HTTP: create, update with If-Match, conditional create/update, JSON Patch, FHIRPath
Patch, delete as closure, rights (401/403) and the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from ror.access.clients import ClientRegistry
from ror.access.tokens import TokenService
from ror.db.tables import api_client, audit_event
from ror.directory import ids
from ror.geo.loader import load_geography
from ror.server import create_app
from ror.services import Services
from ror.store import ResourceStore
from ror.terminology.loader import load_nos
from tests import validation_fixtures as vf
from tests.search_fixtures import capacity

KEY = "write-test-key-0123456789-abcdefghijklmnopqrs"
FINESS = "920000001"
OTHER = "920000002"


@pytest.fixture(scope="module")
def refdata(engine: Engine, reference_dir: Path) -> Services:
    """NOS and geography loaded once; their in-memory caches shared by the apps of this module."""
    load_nos(engine, reference_dir / "nos")
    load_geography(engine, reference_dir / "geo")
    services = Services(engine)
    services.terminology.reload()
    services.geography.reload()
    return services


def offer(name: str = "Chirurgie gynécologique", ident: str = "92/0000001") -> dict[str, Any]:
    hs = vf.healthcare_service()
    hs.pop("id")
    hs.pop("meta")
    hs["name"] = name
    hs["identifier"] = [{"type": vf.cc(ids.TRE_R355, "35"), "value": ident}]
    hs["providedBy"] = {"reference": f"Organization/eg-{FINESS}"}
    hs["location"] = [{"reference": f"Location/loc-{FINESS}"}]
    hs["characteristic"].append(vf.cc(ids.TRE_R213, "28"))
    hs["availableTime"] = hs["availableTime"][:1]
    return hs


def token(client: TestClient, finess: list[str], name: str) -> dict[str, str]:
    creds = ClientRegistry(client.app.state.services.engine).add(name, 2, finess)
    tok = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": creds.client.client_id, "client_secret": creds.secret},
    ).json()["access_token"]
    return {"Authorization": f"Bearer {tok}", "Content-Type": "application/fhir+json"}


@pytest.fixture
def http(store: ResourceStore, engine: Engine, refdata: Services) -> Iterator[tuple[TestClient, dict[str, str]]]:
    store.bulk_upsert(
        [
            {
                "resourceType": "Organization",
                "id": f"eg-{FINESS}",
                "name": "CH Test",
                "identifier": [{"system": ids.FINESS, "value": FINESS}],
            },
            {
                "resourceType": "Organization",
                "id": f"eg-{OTHER}",
                "name": "CH Autre",
                "identifier": [{"system": ids.FINESS, "value": OTHER}],
            },
            {
                **vf.location(),
                "id": f"loc-{FINESS}",
                "managingOrganization": {"reference": f"Organization/eg-{FINESS}"},
            },
            {**vf.location(), "id": f"loc-{OTHER}", "managingOrganization": {"reference": f"Organization/eg-{OTHER}"}},
        ]
    )
    with engine.begin() as c:
        c.execute(api_client.delete())
        c.execute(audit_event.delete())
    with TestClient(create_app(engine, tokens=TokenService(KEY))) as client:
        client.app.state.services.terminology = refdata.terminology
        client.app.state.services.geography = refdata.geography
        yield client, token(client, [FINESS], "Editeur CH Test")


def audits(engine: Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as c:
        rows = c.execute(
            select(audit_event.c.action, audit_event.c.outcome, audit_event.c.res_type).order_by(audit_event.c.pk)
        ).all()
    return [tuple(r) for r in rows]


def test_create_read_and_audit(http, engine: Engine) -> None:
    client, h = http
    r = client.post("/fhir/HealthcareService", json=offer(), headers=h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["etag"] == 'W/"1"' and r.headers["location"] == f"HealthcareService/{body['id']}/_history/1"
    assert any(e["url"] == ids.SD + "ror-meta-creation-date" for e in body["extension"])
    assert client.get(f"/fhir/HealthcareService/{body['id']}").json()["name"] == "Chirurgie gynécologique"
    found = client.get("/fhir/HealthcareService", params={"identifier": "92/0000001"}).json()
    assert found["total"] == 1
    assert ("create", "success", "HealthcareService") in audits(engine)


def test_profile_errors_are_422_with_expressions(http, engine: Engine) -> None:
    client, h = http
    bad = offer()
    bad["extension"] = [e for e in bad["extension"] if not e["url"].endswith("sensitive-unit")]
    bad["providedBy"] = {"reference": f"Organization/eg-{FINESS}"}
    bad["specialty"] = [vf.cc(ids.TRE_R211, "99999")]
    r = client.post("/fhir/HealthcareService", json=bad, headers=h)
    assert r.status_code == 422, r.text
    issues = r.json()["issue"]
    exprs = {i["expression"][0] for i in issues if i["severity"] == "error"}
    assert f"HealthcareService.extension('{ids.EXT_SENSITIVE_UNIT}')" in exprs
    assert f"HealthcareService.specialty.where(coding.system='{ids.TRE_R211}')" in exprs
    assert len([i for i in issues if i["severity"] == "error"]) == 2
    assert ("create", "error", "HealthcareService") in audits(engine)
    r = client.post("/fhir/HealthcareService", json={**offer(), "name": ["x"]}, headers=h)
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["HealthcareService.name"]


def test_update_if_match_and_create_on_update(http) -> None:
    client, h = http
    created = client.post("/fhir/HealthcareService", json=offer(), headers=h).json()
    hs_id = created["id"]
    r = client.put(
        f"/fhir/HealthcareService/{hs_id}", json={**created, "name": "v2"}, headers={**h, "If-Match": 'W/"1"'}
    )
    assert r.status_code == 200 and r.headers["etag"] == 'W/"2"'
    r = client.put(
        f"/fhir/HealthcareService/{hs_id}", json={**created, "name": "v3"}, headers={**h, "If-Match": 'W/"1"'}
    )
    assert r.status_code == 412 and r.json()["issue"][0]["code"] == "conflict"
    assert client.get(f"/fhir/HealthcareService/{hs_id}").json()["name"] == "v2"
    r = client.put(
        "/fhir/HealthcareService/my-own-id", json={**offer(ident="92/0000009"), "id": "my-own-id"}, headers=h
    )
    assert r.status_code == 201 and r.json()["id"] == "my-own-id"


def test_conditional_create_and_update(http) -> None:
    client, h = http
    first = client.post(
        "/fhir/HealthcareService", json=offer(), headers={**h, "If-None-Exist": "identifier=92/0000001"}
    )
    assert first.status_code == 201
    again = client.post(
        "/fhir/HealthcareService", json=offer(), headers={**h, "If-None-Exist": "identifier=92/0000001"}
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert client.get("/fhir/HealthcareService", params={"identifier": "92/0000001"}).json()["total"] == 1
    r = client.put("/fhir/HealthcareService?identifier=92/0000001", json=offer(name="renommé"), headers=h)
    assert r.status_code == 200 and r.json()["id"] == first.json()["id"] and r.json()["name"] == "renommé"
    r = client.put("/fhir/HealthcareService?identifier=92/0000002", json=offer(ident="92/0000002"), headers=h)
    assert r.status_code == 201 and r.json()["id"] != first.json()["id"]
    dup = client.post("/fhir/HealthcareService", json=offer(ident="92/0000002"), headers=h)
    assert dup.status_code == 422 and dup.json()["issue"][0]["code"] == "duplicate"


def test_json_patch_and_fhirpath_patch(http) -> None:
    client, h = http
    hs_id = client.post("/fhir/HealthcareService", json=offer(), headers=h).json()["id"]
    ops = [
        {"op": "test", "path": "/name", "value": "Chirurgie gynécologique"},
        {"op": "replace", "path": "/name", "value": "JP"},
    ]
    r = client.patch(
        f"/fhir/HealthcareService/{hs_id}", json=ops, headers={**h, "Content-Type": "application/json-patch+json"}
    )
    assert r.status_code == 200 and r.json()["name"] == "JP", r.text
    failed = [{"op": "test", "path": "/name", "value": "nope"}]
    r = client.patch(
        f"/fhir/HealthcareService/{hs_id}", json=failed, headers={**h, "Content-Type": "application/json-patch+json"}
    )
    assert r.status_code == 422
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "HealthcareService.name"},
                    {"name": "value", "valueString": "FP"},
                ],
            },
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "add"},
                    {"name": "path", "valueString": "HealthcareService"},
                    {"name": "name", "valueString": "telecom"},
                    {"name": "value", "valueContactPoint": vf.telecom("mss@test.mssante.fr", channel="3")},
                ],
            },
        ],
    }
    r = client.patch(f"/fhir/HealthcareService/{hs_id}", json=params, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "FP" and r.json()["telecom"][0]["value"] == "mss@test.mssante.fr"
    assert r.headers["etag"] == 'W/"3"'
    # a patch that breaks the profile is refused: removing the only sensitive-unit flag
    drop = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "delete"},
                    {"name": "path", "valueString": f"HealthcareService.extension('{ids.EXT_SENSITIVE_UNIT}')"},
                ],
            }
        ],
    }
    r = client.patch(f"/fhir/HealthcareService/{hs_id}", json=drop, headers=h)
    assert r.status_code == 422


def test_location_patch_generic_and_capacity(http) -> None:
    client, h = http
    ops = [{"op": "replace", "path": "/address/city", "value": "VERSAILLES"}]
    r = client.patch(
        f"/fhir/Location/loc-{FINESS}", json=ops, headers={**h, "Content-Type": "application/json-patch+json"}
    )
    assert r.status_code == 200 and r.json()["address"]["city"] == "VERSAILLES", r.text
    add = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueString": "add"},
                    {"name": "path", "valueString": "Location"},
                    {"name": "value", "part": [{"extension": [capacity("01", 12)]}]},
                ],
            }
        ],
    }
    r = client.patch(f"/fhir/Location/loc-{FINESS}", json=add, headers=h)
    assert r.status_code == 200, r.text
    caps = [e for e in r.json()["extension"] if e["url"] == ids.EXT_CAPACITY]
    assert len(caps) == 1


def test_delete_closes_offers_and_deletes_others(http, engine: Engine) -> None:
    client, h = http
    hs_id = client.post("/fhir/HealthcareService", json=offer(), headers=h).json()["id"]
    r = client.delete(f"/fhir/HealthcareService/{hs_id}", headers=h)
    assert r.status_code == 200, r.text
    closing = [n for n in r.json()["notAvailable"] if n["id"] == "closingReopeningDate"]
    assert closing and closing[0]["during"]["start"]
    assert client.get(f"/fhir/HealthcareService/{hs_id}").status_code == 200
    found = client.get("/fhir/HealthcareService", params={"notavailable-closing-reopeningdate": "ge2000-01-01"}).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [hs_id]
    r = client.delete(f"/fhir/Location/loc-{FINESS}", headers=h)
    assert r.status_code == 200 and r.json()["operationalStatus"]["code"] == "1"
    pra = client.post("/fhir/Practitioner", json=vf.practitioner(), headers=h)
    assert pra.status_code == 201, pra.text
    r = client.delete(f"/fhir/Practitioner/{pra.json()['id']}", headers=h)
    assert r.status_code == 204
    assert client.get(f"/fhir/Practitioner/{pra.json()['id']}").status_code == 410
    assert [a for a in audits(engine) if a[0] in ("close", "delete")] == [
        ("close", "success", "HealthcareService"),
        ("close", "success", "Location"),
        ("delete", "success", "Practitioner"),
    ]


def test_rights_401_403_and_audit(http, engine: Engine) -> None:
    client, h = http
    r = client.post("/fhir/HealthcareService", json=offer(), headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 401 and r.json()["issue"][0]["code"] == "login"
    other = offer()
    other["providedBy"] = {"reference": f"Organization/eg-{OTHER}"}
    r = client.post("/fhir/HealthcareService", json=other, headers=h)
    assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"
    r = client.patch(
        f"/fhir/Location/loc-{OTHER}",
        json=[{"op": "replace", "path": "/name", "value": "x"}],
        headers={**h, "Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 403
    # moving one's own offer to another establishment is refused too
    hs = client.post("/fhir/HealthcareService", json=offer(), headers=h).json()
    r = client.put(f"/fhir/HealthcareService/{hs['id']}", json={**hs, "providedBy": other["providedBy"]}, headers=h)
    assert r.status_code == 403, r.text
    denied = [a for a in audits(engine) if a[1] == "denied"]
    assert [a[0] for a in denied] == ["create", "create", "patch", "update"]


def test_task_anomaly_create_and_patch(http) -> None:
    client, h = http
    hs_id = client.post("/fhir/HealthcareService", json=offer(), headers=h).json()["id"]
    task = vf.task()
    task["focus"] = {"reference": f"HealthcareService/{hs_id}"}
    reporter = token(client, [OTHER], "Santé.fr")  # any writing client may report an anomaly
    r = client.post("/fhir/Task", json=task, headers=reporter)
    assert r.status_code == 201, r.text
    task_id = r.json()["id"]
    done = [{"op": "replace", "path": "/status", "value": "completed"}]
    jp = {"Content-Type": "application/json-patch+json"}
    assert client.patch(f"/fhir/Task/{task_id}", json=done, headers={**reporter, **jp}).status_code == 403
    r = client.patch(f"/fhir/Task/{task_id}", json=done, headers={**h, **jp})
    assert r.status_code == 200 and r.json()["status"] == "completed"
    listed = client.get("/fhir/HealthcareService", params={"_id": hs_id, "_revinclude": "Task:focus"}).json()
    assert any(e["resource"]["resourceType"] == "Task" for e in listed["entry"])


def test_warnings_in_operation_outcome(http) -> None:
    client, h = http
    lax = offer()
    lax["characteristic"] = lax["characteristic"][:1]  # no careMode: accepted with a warning (IG lax)
    r = client.post("/fhir/HealthcareService", json=lax, headers={**h, "Prefer": "return=OperationOutcome"})
    assert r.status_code == 201, r.text
    issues = r.json()["issue"]
    assert [i["severity"] for i in issues] == ["information", "warning"]
    assert issues[1]["expression"] == [f"HealthcareService.characteristic.where(coding.system='{ids.TRE_R213}')"]


def test_metadata_advertises_writes(http) -> None:
    client, _ = http
    cs = client.get("/fhir/metadata").json()
    hs = next(x for x in cs["rest"][0]["resource"] if x["type"] == "HealthcareService")
    assert {"create", "update", "patch", "delete"} <= {i["code"] for i in hs["interaction"]}
    assert hs["conditionalCreate"] is True and hs["conditionalUpdate"] is True
