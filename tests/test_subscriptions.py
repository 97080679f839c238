"""FHIR Subscriptions: API and access control, criteria by territory, outbox delivery to a real local HTTP receiver
with exponential retry, status and error log, heartbeats, and two workers competing without double delivery."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ror.access.tokens import TokenService
from ror.config import get_settings
from ror.db.tables import audit_event, subscription_error, subscription_outbox
from ror.search.normalise import utcnow
from ror.server import create_app
from ror.store.meta import REGION_SYSTEM
from ror.subscriptions.delivery import Deliverer
from ror.subscriptions.model import BACKOFF_MAX, EXT_CONTENT, EXT_FILTER, EXT_HEARTBEAT, RETRY_WINDOW, backoff
from tests.regional_fixtures import KEY, Receiver, Regional, tagged, wait_for
from tests.search_fixtures import capacity, location

pytest_plugins = ("tests.regional_fixtures",)
BASE = "http://testserver/fhir"


def sub_body(endpoint: str, criteria: str, content: str = "id-only", **channel: Any) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "test",
        "criteria": criteria,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": EXT_CONTENT, "valueCode": content}]},
            "header": ["Authorization: Bearer receiver-secret"],
            **channel,
        },
    }


def deliverer(reg: Regional, name: str = "w1") -> Deliverer:
    return Deliverer(reg.services.store, BASE, worker=name, timeout=5)


def write_location(reg: Regional, rid: str, region: str, nb: int, commune: str = "35238") -> None:
    loc = location(rid, f"Lieu {rid}", 48.1, -1.6, commune, "35000", [capacity("02", nb)], "eg-1")
    reg.services.store.bulk_upsert([tagged(loc, region)])


def test_create_read_delete_and_access(regional: Regional, receiver: Receiver) -> None:
    http = regional.http
    body = sub_body(receiver.url, f"Location?_tag={REGION_SYSTEM}|53")
    assert http.post("/fhir/Subscription", json=body).status_code == 401
    a = regional.token(2, name="consumer A")
    b = regional.token(2, name="consumer B")
    r = http.post("/fhir/Subscription", json=body, headers=a)
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["status"] == "requested" and sub["channel"]["type"] == "rest-hook"
    assert "header" not in sub["channel"]  # the receiver's credentials are never echoed
    assert r.headers["location"].endswith(f"/Subscription/{sub['id']}")
    assert http.get(f"/fhir/Subscription/{sub['id']}", headers=a).json()["criteria"] == body["criteria"]
    assert http.get(f"/fhir/Subscription/{sub['id']}", headers=b).status_code == 404
    assert http.delete(f"/fhir/Subscription/{sub['id']}", headers=b).status_code == 404
    assert http.get("/fhir/Subscription", headers=a).json()["total"] == 1
    assert http.get("/fhir/Subscription", headers=b).json()["total"] == 0
    bad = http.post("/fhir/Subscription", json=sub_body(receiver.url, "Location?capacty=1"), headers=a)
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["capacty"]
    bad = http.post("/fhir/Subscription", json=sub_body("ftp://x", "Location?departement=35"), headers=a)
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["Subscription.channel.endpoint"]
    flag = http.post("/fhir/Subscription", json=sub_body(receiver.url, "Flag?_tag=53"), headers=a)
    assert flag.status_code == 403  # tension: profiles 1 and 4 only
    assert http.delete(f"/fhir/Subscription/{sub['id']}", headers=a).status_code == 204
    assert http.get(f"/fhir/Subscription/{sub['id']}", headers=a).status_code == 404
    with regional.engine.connect() as c:
        actions = c.execute(select(audit_event.c.action).where(audit_event.c.res_type == "Subscription")).scalars()
        assert sorted(actions) == ["create", "delete"]


def test_backport_topic_form(regional: Regional, receiver: Receiver) -> None:
    body = sub_body(receiver.url, "https://ror.invalid/fhir/SubscriptionTopic/location")
    body["_criteria"] = {"extension": [{"url": EXT_FILTER, "valueString": "Location?departement=56"}]}
    body["channel"]["extension"] = [{"url": EXT_HEARTBEAT, "valueUnsignedInt": 60}]
    r = regional.http.post("/fhir/Subscription", json=body, headers=regional.token(1))
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["criteria"] == "https://ror.invalid/fhir/SubscriptionTopic/location"
    assert sub["_criteria"]["extension"][0]["valueString"] == "Location?departement=56"
    assert sub["channel"]["extension"][0]["valueUnsignedInt"] == 60


def test_criteria_by_territory_and_payload(regional: Regional, receiver: Receiver) -> None:
    headers = regional.token(1)
    r = regional.http.post(
        "/fhir/Subscription",
        json=sub_body(receiver.url, f"Location?_tag={REGION_SYSTEM}|53", "full-resource"),
        headers=headers,
    )
    sub_id = r.json()["id"]
    dep = regional.http.post(
        "/fhir/Subscription", json=sub_body(receiver.url, "Location?departement=56"), headers=headers
    ).json()["id"]
    write_location(regional, "loc-a", "53", 3)
    write_location(regional, "loc-b", "52", 4, commune="44109")
    write_location(regional, "loc-c", "53", 5, commune="56121")
    regional.services.store.bulk_upsert([])  # nothing written: nothing queued
    d = deliverer(regional)
    d.deliver_once()
    d.close()
    mine = [e for e in receiver.events() if e.key.startswith(sub_id)]
    assert [e.focus for e in mine] == [f"{BASE}/Location/loc-a/_history/1", f"{BASE}/Location/loc-c/_history/1"]
    assert [e.headers["x-ror-event-number"] for e in mine] == ["1", "2"]
    assert mine[0].headers["authorization"] == "Bearer receiver-secret"
    assert mine[0].body["entry"][1]["resource"]["id"] == "loc-a"  # full-resource payload
    by_dep = [e.focus for e in receiver.events() if e.key.startswith(dep)]
    assert by_dep == [f"{BASE}/Location/loc-c/_history/1"]
    write_location(regional, "loc-a", "53", 3)  # unchanged content: no new version, no notification
    with regional.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(subscription_outbox)).scalar_one() == 5  # 2 handshakes


def test_retry_with_backoff_after_receiver_failures(regional: Regional, receiver: Receiver) -> None:
    headers = regional.token(1)
    sub_id = regional.http.post(
        "/fhir/Subscription", json=sub_body(receiver.url, "Location?departement=35"), headers=headers
    ).json()["id"]
    write_location(regional, "loc-a", "53", 1)
    receiver.status = 503
    d = deliverer(regional)
    t0 = utcnow()
    r = d.deliver_once(t0)
    assert (r.delivered, r.failed, r.released) == (0, 1, 1)  # the handshake failed; the event waits behind it
    st = regional.http.get(f"/fhir/Subscription/{sub_id}/$status", headers=headers).json()
    params = {p["name"]: p for p in st["entry"][0]["resource"]["parameter"]}
    assert params["status"]["valueCode"] == "error" and params["ror-pending"]["valueInteger"] == 2
    assert "HTTP 503" in params["error"]["valueCodeableConcept"]["text"]
    assert d.deliver_once(t0 + timedelta(seconds=9)).failed == 0  # backoff: 10 s after one failure
    receiver.stop()  # down: connection refused
    assert d.deliver_once(t0 + timedelta(seconds=11)).failed == 1
    assert d.deliver_once(t0 + timedelta(seconds=11 + 19)).failed == 0  # 20 s after two failures
    receiver.status = 200
    receiver.start()
    r = d.deliver_once(t0 + timedelta(seconds=11 + 21))
    assert (r.delivered, r.failed) == (2, 0)
    assert [x.kind for x in receiver.received] == ["handshake", "event-notification"]
    assert receiver.hits == 3  # the 503 answer, then the two deliveries (the refused attempt never arrived)
    assert d.deliver_once(t0 + timedelta(minutes=5)).delivered == 0  # nothing sent twice
    sub = regional.http.get(f"/fhir/Subscription/{sub_id}", headers=headers).json()
    assert sub["status"] == "active"
    with regional.engine.connect() as c:
        log = c.execute(
            select(subscription_error.c.http_status, subscription_error.c.error, subscription_error.c.attempt)
            .where(subscription_error.c.subscription_id == sub_id)
            .order_by(subscription_error.c.pk)
        ).all()
    assert [(x.http_status, x.attempt) for x in log] == [(503, 1), (None, 2)]
    assert "ConnectError" in log[1].error
    st = regional.http.get(f"/fhir/Subscription/{sub_id}/$status", headers=headers).json()
    params = st["entry"][0]["resource"]["parameter"]
    assert [p["valueInteger"] for p in params if p["name"] in ("ror-pending", "ror-delivered")] == [0, 2]
    assert len([p for p in params if p["name"] == "error"]) == 2
    d.close()


def test_backoff_schedule_covers_more_than_a_day() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 6)] == [10, 20, 40, 80, 160]
    assert backoff(9).total_seconds() == 2560 and backoff(10) == BACKOFF_MAX == backoff(50)
    elapsed, attempts = timedelta(0), 0
    while elapsed <= RETRY_WINDOW:
        attempts += 1
        elapsed += backoff(attempts)
    assert elapsed > timedelta(hours=24) and attempts > 24


def test_gives_up_after_the_retry_window(regional: Regional, receiver: Receiver) -> None:
    headers = regional.token(1)
    sub_id = regional.http.post(
        "/fhir/Subscription", json=sub_body(receiver.url, "Location?departement=35"), headers=headers
    ).json()["id"]
    receiver.status = 500
    d = deliverer(regional)
    t0 = utcnow()
    d.deliver_once(t0)
    write_location(regional, "loc-a", "53", 1)
    now, tries = t0, 1
    while True:  # the receiver never recovers: retries follow the schedule until more than 24 h have passed
        now += BACKOFF_MAX
        r = d.deliver_once(now)
        tries += r.failed
        sub = regional.http.get(f"/fhir/Subscription/{sub_id}", headers=headers).json()
        if sub["status"] == "off":
            break
        assert now - t0 < RETRY_WINDOW + BACKOFF_MAX * 2
    assert now - t0 > timedelta(hours=24) and tries >= 25
    assert "more than" in sub["error"]
    with regional.engine.connect() as c:
        states = c.execute(select(subscription_outbox.c.status).where(subscription_outbox.c.subscription_id == sub_id))
        assert sorted(states.scalars()) == ["expired", "expired"]
    write_location(regional, "loc-a", "53", 2)  # an off subscription queues nothing more
    with regional.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(subscription_outbox)).scalar_one() == 2
    d.close()


def test_heartbeat_when_quiet(regional: Regional, receiver: Receiver) -> None:
    body = sub_body(receiver.url, "Location?departement=35")
    body["channel"]["extension"] = [{"url": EXT_HEARTBEAT, "valueUnsignedInt": 30}]
    regional.http.post("/fhir/Subscription", json=body, headers=regional.token(1))
    d = deliverer(regional)
    t0 = utcnow()
    assert d.deliver_once(t0).delivered == 1  # handshake
    assert d.deliver_once(t0 + timedelta(seconds=20)).heartbeats == 0
    r = d.deliver_once(t0 + timedelta(seconds=31))
    assert (r.heartbeats, r.delivered) == (1, 1)
    assert d.deliver_once(t0 + timedelta(seconds=40)).heartbeats == 0  # next one 30 s after the last delivery
    assert [x.kind for x in receiver.received] == ["handshake", "heartbeat"]
    d.close()


def test_two_workers_never_deliver_twice(regional: Regional, receiver: Receiver) -> None:
    headers = regional.token(1)
    regional.http.post("/fhir/Subscription", json=sub_body(receiver.url, "Location?departement=35"), headers=headers)
    for i in range(40):
        write_location(regional, f"loc-{i}", "53", i)
    workers = [deliverer(regional, "w1"), deliverer(regional, "w2")]
    counts = [0, 0]

    def run(k: int) -> None:
        while True:
            r = workers[k].deliver_once(limit=3)
            counts[k] += r.delivered
            if r.delivered + r.failed == 0:
                with regional.engine.connect() as c:
                    left = c.execute(
                        select(func.count())
                        .select_from(subscription_outbox)
                        .where(subscription_outbox.c.status != "delivered")
                    ).scalar_one()
                if left == 0:
                    return

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not any(th.is_alive() for th in threads)
    keys = [x.key for x in receiver.received]
    assert len(keys) == 41 and len(set(keys)) == 41  # 40 events + the handshake, each exactly once
    assert sorted(int(x.headers["x-ror-event-number"]) for x in receiver.events()) == list(range(1, 41))
    assert counts[0] > 0 and counts[1] > 0, counts  # both workers took part
    for w in workers:
        w.close()


def test_metadata_advertises_the_regional_resources(regional: Regional) -> None:
    cs = regional.http.get("/fhir/metadata").json()
    types = {r["type"]: r for r in cs["rest"][0]["resource"]}
    assert {"Subscription", "Flag", "MeasureReport", "Location"} <= set(types)
    assert {i["code"] for i in types["Subscription"]["interaction"]} == {"create", "read", "delete", "search-type"}


def test_server_worker_delivers_in_the_background(
    regional: Regional, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROR_SUBSCRIPTION_WORKER", "1")
    app = create_app(regional.engine, tokens=TokenService(KEY))
    with TestClient(app) as http:  # startup starts the worker thread, shutdown stops it
        creds = regional.clients.add("bg", 1)
        tok = http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds.client.client_id,
                "client_secret": creds.secret,
            },
        ).json()["access_token"]
        body = sub_body(receiver.url, "Location?departement=35")
        assert http.post("/fhir/Subscription", json=body, headers={"Authorization": f"Bearer {tok}"}).status_code == 201
        write_location(regional, "loc-bg", "53", 2)  # written through another app's store: same outbox table
        wait_for(lambda: len(receiver.events()) == 1)
        assert receiver.events()[0].focus == f"{get_settings().fhir_base}/Location/loc-bg/_history/1"
