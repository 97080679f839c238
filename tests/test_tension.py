"""Tension en établissement (TES): declarations through FHIR `Flag` (rights, audit, history, escalation), search
filtered per caller, the live alert on the stream, the web board, and an escalation reaching a subscribed
endpoint after that endpoint was down for a while."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from ror.access.people import PersonRegistry
from ror.db.tables import audit_event, person, web_session
from ror.search.normalise import utcnow
from ror.store.meta import REGION_SYSTEM
from ror.subscriptions.delivery import Deliverer
from ror.tension.model import (
    ACTION_SYSTEM,
    CATEGORY_CODE,
    CATEGORY_SYSTEM,
    EXT_ACTION,
    EXT_PREVIOUS,
    EXT_REASON,
    LEVEL_SYSTEM,
    REASON_SYSTEM,
)
from tests.regional_fixtures import Receiver, Regional
from tests.test_subscriptions import sub_body

pytest_plugins = ("tests.regional_fixtures",)


def flag(org_id: str, level: int, reasons: tuple[str, ...] = ("afflux-urgences",), beds: int | None = None) -> dict:
    ext: list[dict[str, Any]] = [
        {"url": EXT_REASON, "valueCodeableConcept": {"coding": [{"system": REASON_SYSTEM, "code": r}]}} for r in reasons
    ]
    if beds is not None:
        ext.append(
            {
                "url": EXT_ACTION,
                "extension": [
                    {
                        "url": "action",
                        "valueCodeableConcept": {"coding": [{"system": ACTION_SYSTEM, "code": "lits-supplementaires"}]},
                    },
                    {"url": "quantite", "valueInteger": beds},
                ],
            }
        )
    return {
        "resourceType": "Flag",
        "status": "active",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": CATEGORY_CODE}]}],
        "code": {"coding": [{"system": LEVEL_SYSTEM, "code": str(level)}]},
        "subject": {"reference": f"Organization/{org_id}"},
        "extension": ext,
    }


def test_declare_escalate_end_with_rights_and_audit(regional: Regional) -> None:
    http = regional.http
    feeder = regional.token(2, ["350000741"], "SIH CHU Rennes")
    assert http.post("/fhir/Flag", json=flag("eg-1", 2)).status_code == 401
    r = http.post("/fhir/Flag", json=flag("eg-2", 2), headers=feeder)
    assert r.status_code == 403  # Lorient is not this feeder's establishment
    r = http.post("/fhir/Flag", json=flag("eg-1", 2), headers=feeder)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["status"] == "active" and first["code"]["coding"][0]["code"] == "2"
    assert first["subject"]["identifier"]["value"] == "350000741"
    assert {"system": REGION_SYSTEM, "code": "53"} in first["meta"]["tag"]
    bad = http.post("/fhir/Flag", json=flag("eg-1", 5), headers=feeder)
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["Flag.code"]
    r = http.post("/fhir/Flag", json=flag("eg-1", 3, ("lits-aval", "personnel"), beds=6), headers=feeder)
    second = r.json()
    assert r.status_code == 201
    prev = next(e for e in second["extension"] if e["url"] == EXT_PREVIOUS)
    assert prev["valueInteger"] == 2
    old = http.get(f"/fhir/Flag/{first['id']}", headers=feeder).json()
    assert old["status"] == "inactive" and old["period"]["end"] == second["period"]["start"]
    change = flag("eg-1", 4)
    assert http.put(f"/fhir/Flag/{second['id']}", json=change, headers=feeder).status_code == 400
    ended = {**flag("eg-1", 3), "status": "inactive"}
    r = http.put(f"/fhir/Flag/{second['id']}", json=ended, headers=feeder)
    assert r.status_code == 200 and r.json()["status"] == "inactive" and "end" in r.json()["period"]
    assert r.headers["etag"] == 'W/"2"'
    history = http.get("/fhir/Flag", params={"subject": "Organization/eg-1"}, headers=feeder).json()
    assert history["total"] == 2
    assert http.get("/fhir/Flag", params={"subject": "eg-1", "status": "active"}, headers=feeder).json()["total"] == 0
    with regional.engine.connect() as c:
        rows = c.execute(
            select(audit_event.c.action, audit_event.c.outcome).where(audit_event.c.res_type == "Flag")
        ).all()
    assert sorted(rows) == [
        ("create", "success"),
        ("create", "success"),
        ("denied", "denied"),  # anonymous
        ("denied", "denied"),  # another establishment
        ("update", "success"),
    ]


def test_search_is_filtered_per_caller(regional: Regional) -> None:
    http = regional.http
    tes = regional.services.tension
    admin = regional.token(1, name="ARS")
    for org_id, level in (("eg-1", 3), ("eg-2", 1), ("eg-3", 4)):
        feeds = {"eg-1": "350000741", "eg-2": "560000135", "eg-3": "440000289"}[org_id]
        assert http.post("/fhir/Flag", json=flag(org_id, level), headers=regional.token(2, [feeds])).status_code == 201
    b = http.get("/fhir/Flag", params={"_tag": f"{REGION_SYSTEM}|53", "status": "active"}, headers=admin).json()
    assert sorted(e["resource"]["subject"]["reference"] for e in b["entry"]) == [
        "Organization/eg-1",
        "Organization/eg-2",
    ]
    assert http.get("/fhir/Flag", params={"code": "3,4"}, headers=admin).json()["total"] == 2
    assert http.get("/fhir/Flag", params={"code": f"{LEVEL_SYSTEM}|4"}, headers=admin).json()["total"] == 1
    assert http.get("/fhir/Flag", params={"nope": "1"}, headers=admin).status_code == 400
    assert http.get("/fhir/Flag", headers=regional.token(2, name="pro")).status_code == 403
    assert http.get("/fhir/Flag").status_code == 401
    own = http.get("/fhir/Flag", headers=regional.token(2, ["560000135"])).json()
    assert [e["resource"]["subject"]["reference"] for e in own["entry"]] == ["Organization/eg-2"]
    nantes = tes.search(region="52")[0]
    assert http.get(f"/fhir/Flag/{nantes.id}", headers=regional.token(2, ["560000135"])).status_code == 404
    assert [d.level for d in tes.board("53")] == [3, 1]


def test_escalation_is_published_live(regional: Regional) -> None:
    broker = regional.http.app.state.capacity_broker  # type: ignore[attr-defined]
    feeder = regional.token(2, ["350000741"])

    async def scenario() -> list[dict[str, Any]]:
        sub = broker.subscribe()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: regional.http.post("/fhir/Flag", json=flag("eg-1", 1), headers=feeder))
        await loop.run_in_executor(None, lambda: regional.http.post("/fhir/Flag", json=flag("eg-1", 3), headers=feeder))
        got = [await asyncio.wait_for(sub.queue.get(), 5) for _ in range(2)]
        broker.unsubscribe(sub)
        return got

    events = [e for e in asyncio.run(scenario()) if e.get("kind") == "tension"]
    assert [(e["level"], e["previous_level"], e["escalation"], e["region"]) for e in events] == [
        (1, 0, True, "53"),
        (3, 1, True, "53"),
    ]


def test_escalation_reaches_subscriber_after_it_was_down(regional: Regional, receiver: Receiver) -> None:
    samu = regional.token(1, name="SAMU 35")
    body = sub_body(receiver.url, f"Flag?_tag={REGION_SYSTEM}|53&escalation=true", "full-resource")
    assert regional.http.post("/fhir/Subscription", json=body, headers=samu).status_code == 201
    receiver.stop()  # the SAMU's endpoint is down
    d = Deliverer(regional.services.store, "http://testserver/fhir", timeout=5)
    t0 = utcnow()
    assert d.deliver_once(t0).failed == 1  # the handshake
    r = regional.http.post("/fhir/Flag", json=flag("eg-1", 3, beds=4), headers=regional.token(2, ["350000741"]))
    assert r.status_code == 201
    regional.http.post("/fhir/Flag", json=flag("eg-3", 4), headers=regional.token(2, ["440000289"]))  # region 52
    now = t0
    for _ in range(4):  # still down for a few retries
        now += timedelta(minutes=5)
        assert d.deliver_once(now).failed == 1
    receiver.start()
    now += timedelta(minutes=10)
    assert d.deliver_once(now).delivered == 2
    events = receiver.events()
    assert len(events) == 1
    sent = events[0].body["entry"][1]["resource"]
    assert sent["resourceType"] == "Flag" and sent["id"] == r.json()["id"] and sent["code"]["coding"][0]["code"] == "3"
    d.close()


def test_board_page_for_regulators(regional: Regional) -> None:
    http = regional.http
    with regional.engine.begin() as c:
        c.execute(delete(web_session))
        c.execute(delete(person))
    people = PersonRegistry(regional.engine)
    password = "correct horse battery staple"
    people.add("samu@test.fr", "Samu", "regulator", password, [], None)
    people.add("cadre@test.fr", "Cadre", "establishment_manager", password, ["350000741"], None)
    regional.services.tension.declare(
        people.get("cadre@test.fr").caller("350000741"), level=3, organization_id="eg-1", reasons=["epidemie"]
    )

    def login(email: str) -> None:
        http.cookies.clear()
        page = http.get("/connexion")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        r = http.post(
            "/connexion", data={"email": email, "password": password, "csrf": csrf[1]}, follow_redirects=False
        )
        assert r.status_code == 303

    login("samu@test.fr")
    page = http.get("/tension?region=53")
    assert page.status_code == 200
    assert "CHU Pontchaillou" in page.text and "Épidémie saisonnière" in page.text
    assert "est passé au niveau 3" in page.text  # the escalation banner
    assert http.get("/tension/etablissements/350000741").status_code == 200
    login("cadre@test.fr")
    assert http.get("/tension").status_code == 403  # the board is for ARS / SAMU / crisis cells
    form = http.get("/tension/etablissements/350000741")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert form.status_code == 200 and csrf
    r = http.post("/tension/etablissements/350000741", data={"csrf": csrf[1], "fin": "1"}, follow_redirects=False)
    assert r.status_code == 303
    assert regional.services.tension.board("53") == []
    r = http.post("/tension/etablissements/560000135", data={"csrf": csrf[1], "niveau": "2"}, follow_redirects=False)
    assert r.status_code == 403
