"""AuditEvent over FHIR for administrators (profile 1 + audit scope; 401/403 OperationOutcome for the others, the
refusal itself audited) and the per-client rate limit of FHIR writes (429 OperationOutcome with Retry-After)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from ror.access import audit
from ror.access.clients import ClientRegistry
from ror.access.tokens import TokenService
from ror.db.tables import audit_event
from ror.fhir.auth import RateLimiter, is_write, write_rate
from ror.search.normalise import utcnow
from ror.server import create_app

KEY = "audit-test-key-0123456789-abcdefghijklmnopqrs"


@pytest.fixture(scope="module")
def setup(engine: Engine) -> Iterator[tuple[TestClient, dict[str, str]]]:
    registry = ClientRegistry(engine)
    admin = registry.add("Supervision ARS", 1)
    plain_all = registry.add("SAMU", 1)
    feeder = registry.add("Feeder", 2, ["920000099"])
    app = create_app(engine, tokens=TokenService(KEY, admin_clients=frozenset({admin.client.client_id})))
    with TestClient(app) as client:
        tokens = {}
        for name, creds in (("admin", admin), ("all", plain_all), ("feeder", feeder)):
            tok = client.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": creds.client.client_id,
                    "client_secret": creds.secret,
                },
            ).json()["access_token"]
            tokens[name] = f"Bearer {tok}"
            tokens[name + "_id"] = creds.client.client_id
        yield client, tokens


def _h(tokens: dict[str, str], who: str) -> dict[str, str]:
    return {"Authorization": tokens[who]}


def test_audit_event_is_for_administrators_only(setup: tuple[TestClient, dict[str, str]], engine: Engine) -> None:
    client, tokens = setup
    r = client.get("/fhir/AuditEvent")
    assert r.status_code == 401 and r.json()["resourceType"] == "OperationOutcome"
    for who in ("all", "feeder"):  # profile 1 without the audit scope, profile 2
        r = client.get("/fhir/AuditEvent", headers=_h(tokens, who))
        assert r.status_code == 403
        assert r.json()["issue"][0]["code"] == "forbidden"
        assert client.get("/fhir/AuditEvent/1", headers=_h(tokens, who)).status_code == 403
    with engine.connect() as c:
        denied = c.execute(
            select(func.count()).where(
                audit_event.c.actor_id == tokens["feeder_id"],
                audit_event.c.res_type == "AuditEvent",
                audit_event.c.outcome == "denied",
            )
        ).scalar_one()
    assert denied == 2
    assert client.get("/fhir/AuditEvent", headers=_h(tokens, "admin")).status_code == 200
    meta = client.get("/fhir/metadata").json()
    assert "AuditEvent" in {r["type"] for r in meta["rest"][0]["resource"]}


def test_audit_event_search_by_agent_entity_outcome_date(
    setup: tuple[TestClient, dict[str, str]], engine: Engine
) -> None:
    client, tokens = setup
    h = _h(tokens, "admin")
    actor = "ror-" + secrets.token_hex(4)
    for i in range(3):
        audit.record(engine, actor_type="client", actor_id=actor, action="update", outcome="success",
                     res_type="Location", res_id="loc-a", version_id=i + 1, remote_addr="10.0.0.1")  # fmt: skip
    audit.record(engine, actor_type="client", actor_id=actor, action="create", outcome="denied",
                 res_type="Organization", res_id="eg-b", detail="not granted")  # fmt: skip

    bundle = client.get(f"/fhir/AuditEvent?agent={actor}", headers=h).json()
    entries = [e["resource"] for e in bundle["entry"]]
    assert len(entries) == 4 and all(e["agent"][0]["who"]["identifier"]["value"] == actor for e in entries)
    assert entries[0]["action"] == "C" and entries[0]["outcome"] == "4" and entries[0]["outcomeDesc"] == "not granted"
    assert entries[1]["entity"][0]["what"]["reference"] == "Location/loc-a/_history/3"
    assert entries[1]["subtype"][0] == {"system": "http://hl7.org/fhir/restful-interaction", "code": "update"}
    assert entries[1]["agent"][0]["network"]["address"] == "10.0.0.1"

    only = client.get(f"/fhir/AuditEvent?agent={actor}&outcome=4", headers=h).json()
    assert [e["resource"]["entity"][0]["what"]["reference"] for e in only["entry"]] == ["Organization/eg-b"]
    about = client.get(f"/fhir/AuditEvent?agent={actor}&entity=Location/loc-a", headers=h).json()
    assert len(about["entry"]) == 3
    today = utcnow().date()
    assert len(client.get(f"/fhir/AuditEvent?agent={actor}&date=ge{today}", headers=h).json()["entry"]) == 4
    assert len(client.get(f"/fhir/AuditEvent?agent={actor}&date={today}", headers=h).json()["entry"]) == 4
    yesterday = today - timedelta(days=1)
    assert "entry" not in client.get(f"/fhir/AuditEvent?agent={actor}&date=le{yesterday}", headers=h).json()

    # paging: _count and the next link
    page = client.get(f"/fhir/AuditEvent?agent={actor}&_count=3", headers=h).json()
    assert len(page["entry"]) == 3
    nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = client.get(nxt.replace("http://testserver", ""), headers=h).json()
    assert [e["resource"]["id"] for e in rest["entry"]] == [entries[3]["id"]]
    assert all(link["relation"] != "next" for link in rest["link"])

    one = client.get(f"/fhir/AuditEvent/{entries[0]['id']}", headers=h)
    assert one.status_code == 200 and one.json()["id"] == entries[0]["id"]
    assert client.get("/fhir/AuditEvent/999999999", headers=h).status_code == 404
    bad = client.get("/fhir/AuditEvent?who=x", headers=h)
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["who"]
    assert client.get("/fhir/AuditEvent?date=xx2026", headers=h).status_code == 400
    assert client.get("/fhir/AuditEvent?outcome=3", headers=h).status_code == 400


def test_writes_are_rate_limited_per_client(setup: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = setup
    client.app.state.write_limiter = RateLimiter(3, 60.0)  # type: ignore[attr-defined]
    body = {"resourceType": "Location", "id": "loc-nowhere", "name": "x"}
    statuses = [
        client.put("/fhir/Location/loc-nowhere", json=body, headers=_h(tokens, "feeder")).status_code for _ in range(3)
    ]
    assert 429 not in statuses  # refused for rights or validation, but served
    r = client.put("/fhir/Location/loc-nowhere", json=body, headers=_h(tokens, "feeder"))
    assert r.status_code == 429
    assert r.json()["issue"][0]["code"] == "throttled"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert client.delete("/fhir/Location/loc-nowhere", headers=_h(tokens, "feeder")).status_code == 429
    # reads, searches by POST and another client are not affected
    assert client.get("/fhir/Location?_count=1", headers=_h(tokens, "feeder")).status_code == 200
    assert client.post("/fhir/Location/_search", data={"_count": "1"}, headers=_h(tokens, "feeder")).status_code == 200
    other = client.put("/fhir/Location/loc-nowhere", json=body, headers=_h(tokens, "all"))
    assert other.status_code != 429


def test_write_rate_setting_and_write_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROR_WRITE_RATE", "10/30")
    assert write_rate() == (10, 30.0)
    monkeypatch.setenv("ROR_WRITE_RATE", "nonsense")
    assert write_rate() == (300, 60.0)
    assert is_write("PATCH", "/fhir/Location/x") and is_write("POST", "/fhir") and is_write("POST", "/fhir/Flag")
    assert is_write("PATCH", "/ws-synchro-dispo-lits-fhir/Location")  # the national feeders' path: same quota
    assert not is_write("POST", "/fhir/Location/_search") and not is_write("GET", "/fhir/Location/x")
    assert not is_write("POST", "/fhir/ValueSet/$expand") and not is_write("POST", "/tension/etablissements/x")
    limiter = RateLimiter(2, 10.0)
    assert limiter.allow("k", now=0.0) and limiter.allow("k", now=1.0) and not limiter.allow("k", now=2.0)
    assert limiter.retry_after("k", now=2.0) == 8
    assert limiter.allow("k", now=10.5)
