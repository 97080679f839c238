"""The feeders' capacity PATCH protocol over HTTP (docs/ror-fhir-api.md §3.4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from ror.access.clients import ClientRegistry
from ror.access.tokens import TokenService
from ror.capacity.patch import CAP_PATH
from ror.db.tables import api_client, audit_event, capacity, capacity_event
from ror.directory import ids
from ror.server import create_app
from ror.store import ResourceStore
from ror.terminology.loader import load_nos
from tests.search_fixtures import capacity as cap
from tests.search_fixtures import location, org

KEY = "patch-test-key-0123456789-abcdefghijklmnopqr"
FINESS = "350000741"
NAT = "1" + FINESS


@pytest.fixture(scope="module")
def nos(engine: Engine, reference_dir: Path) -> None:
    load_nos(engine, reference_dir / "nos")


def selector(**codes: str) -> str:
    conds = "".join(
        f" and extension.where(url='{url}' and valueCodeableConcept.coding[0].code='{code}')"
        for url, code in codes.items()
    )
    return f"Location.extension.where(url='{ids.EXT_CAPACITY}'{conds})"


def body(op: str, path: str, ext: dict[str, Any] | None = None, nb: int | None = None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"name": "type", "valueString": op}, {"name": "path", "valueString": path}]
    if ext is not None:
        parts.append({"name": "value", "part": [{"extension": [ext]}]})
    if nb is not None:
        parts.append({"name": "value", "valueInteger": nb})
    return {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": parts}]}


AVAILABLE_F = {
    "capacityType": "01",
    "capacityStatus": "02",
    "temporalityCapacity": "01",
    "genderCapacityAvailable": "01",
    "temporaryAssignement": "01",
}


@pytest.fixture
def http(store: ResourceStore, engine: Engine, nos: None) -> Iterator[tuple[TestClient, dict[str, str]]]:
    eg = org("eg-" + FINESS, "CHU Pontchaillou", finess=FINESS)
    eg["identifier"].append({"system": ids.ID_NAT_STRUCT, "value": NAT})
    loc = location(
        "loc-rea",
        "Réanimation",
        48.12,
        -1.69,
        "35238",
        "35033",
        [cap("01", 20), cap("02", 3, gender="01")],
        org_id="eg-" + FINESS,
    )
    loc["identifier"] = [{"type": {"coding": [{"system": ids.TRE_R354, "code": "26"}]}, "value": "REA1"}]
    other = location("loc-other", "Autre", 48.12, -1.69, "35238", "35033", [cap("01", 5)], org_id="eg-999999999")
    store.bulk_upsert([eg, loc, other])
    with engine.begin() as c:
        c.execute(api_client.delete())
        c.execute(audit_event.delete())
    creds = ClientRegistry(engine).add("GAM CHU", 2, [FINESS])
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


def test_replace_then_404_then_add(http, engine: Engine) -> None:
    client, h = http
    r = client.patch(
        f"/fhir/Location?identifier={NAT}/REA1",
        json=body("replace", selector(**AVAILABLE_F), cap("02", 1, gender="01")),
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == 'W/"2"' and "last-modified" in r.headers
    # read-after-write: the next search sees it
    found = client.get(
        "/fhir/Location",
        params={"capacity-status": "02", "gender-capacity-available": "01", "nb-capacity": "1"},
        headers=h,
    ).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == ["loc-rea"]
    male = {**AVAILABLE_F, "genderCapacityAvailable": "02"}
    r = client.patch(
        f"/fhir/Location?identifier={NAT}/REA1",
        json=body("replace", selector(**male), cap("02", 4, gender="02")),
        headers=h,
    )
    assert r.status_code == 404
    assert r.json()["issue"][0]["code"] == "not-found" and r.json()["issue"][0]["expression"] == [CAP_PATH]
    r = client.patch(
        f"/ws-synchro-dispo-lits-fhir/Location?identifier={NAT}/REA1",
        json=body("add", "Location", cap("02", 4, gender="02")),
        headers=h,
    )
    assert r.status_code == 200 and r.headers["etag"] == 'W/"3"'
    with engine.connect() as c:
        rows = c.execute(select(capacity.c.gender, capacity.c.nb).where(capacity.c.status == "02")).all()
        events = c.execute(
            select(capacity_event.c.nb_before, capacity_event.c.nb_after)
            .where(capacity_event.c.status == "02")
            .order_by(capacity_event.c.pk)
        ).all()
    assert sorted(rows) == [("01", 1), ("02", 4)]
    assert events[-2:] == [(3, 1), (None, 4)]


def test_nb_only_replace_and_if_match(http) -> None:
    client, h = http
    path = selector(**AVAILABLE_F) + ".extension.where(url='nbCapacity')"
    r = client.patch("/fhir/Location/loc-rea", json=body("replace", path, nb=0), headers={**h, "If-Match": 'W/"9"'})
    assert r.status_code == 412
    r = client.patch("/fhir/Location/loc-rea", json=body("replace", path, nb=0), headers={**h, "If-Match": 'W/"1"'})
    assert r.status_code == 200
    loc = client.get("/fhir/Location/loc-rea", headers=h).json()
    nbs = [
        s["valueInteger"]
        for e in loc["extension"]
        if e["url"] == ids.EXT_CAPACITY
        for s in e["extension"]
        if s["url"] == "nbCapacity"
    ]
    assert sorted(nbs) == [0, 20]


def test_errors(http, store: ResourceStore, engine: Engine) -> None:
    client, h = http
    r = client.patch(f"/fhir/Location?identifier={NAT}/NOPE", json=body("add", "Location", cap("03", 2)), headers=h)
    assert r.status_code == 404 and r.json()["issue"][0]["expression"] == ["Location"]
    # invalid combination: gender on installed
    r = client.patch("/fhir/Location/loc-rea", json=body("add", "Location", cap("01", 2, gender="01")), headers=h)
    assert r.status_code == 400 and r.json()["issue"][0]["code"] == "business-rule"
    # deprecated gender 03 Indifférencié
    r = client.patch("/fhir/Location/loc-rea", json=body("add", "Location", cap("02", 2, gender="03")), headers=h)
    assert r.status_code == 400 and "deprecated" in r.text
    # duplicate key
    r = client.patch("/fhir/Location/loc-rea", json=body("add", "Location", cap("01", 2)), headers=h)
    assert r.status_code == 400 and "same key" in r.text
    # not JSON, not Parameters
    r = client.patch("/fhir/Location/loc-rea", content=b"{oops", headers=h)
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    r = client.patch("/fhir/Location/loc-rea", json={"resourceType": "Patient"}, headers=h)
    assert r.status_code == 400
    # rights: anonymous 401, other establishment 403 (audited)
    r = client.patch("/fhir/Location/loc-rea", json=body("add", "Location", cap("03", 2)))
    assert r.status_code == 401
    r = client.patch("/fhir/Location/loc-other", json=body("add", "Location", cap("03", 2)), headers=h)
    assert r.status_code == 403 and r.json()["issue"][0]["code"] == "forbidden"
    with engine.connect() as c:
        outcomes = c.execute(select(audit_event.c.outcome).where(audit_event.c.res_id == "loc-other")).scalars().all()
    assert outcomes == ["denied"]
    # duplicated external id → 412 multiple-matches
    dup = store.read("Location", "loc-other").resource()
    dup["identifier"] = [{"type": {"coding": [{"system": ids.TRE_R354, "code": "26"}]}, "value": "REA1"}]
    dup["managingOrganization"] = {"reference": f"Organization/eg-{FINESS}"}
    store.update("Location", "loc-other", dup)
    r = client.patch(f"/fhir/Location?identifier={NAT}/REA1", json=body("add", "Location", cap("03", 2)), headers=h)
    assert r.status_code == 412 and r.json()["issue"][0]["code"] == "multiple-matches"


def test_a_stored_indicator_with_a_deprecated_code_does_not_block_the_others(http, store: ResourceStore) -> None:
    """R332 03 Indifférencié is refused on write and tolerated in stored data: a Location that still carries an
    indicator with it (stored before the code was deprecated) takes a feeder's PATCH of another indicator; an
    indicator the PATCH sends with the code is refused."""
    client, h = http
    loc = store.read("Location", "loc-rea").resource()
    loc["extension"].append(cap("04", 1, gender="03"))  # an old indicator (status 04 has no gender: also old)
    store.update("Location", "loc-rea", loc)
    path = selector(**AVAILABLE_F) + ".extension.where(url='nbCapacity')"
    r = client.patch("/fhir/Location/loc-rea", json=body("replace", path, nb=7), headers=h)
    assert r.status_code == 200, r.text
    stored = client.get("/fhir/Location/loc-rea", headers=h).json()
    genders = [
        s["valueCodeableConcept"]["coding"][0]["code"]
        for e in stored["extension"]
        if e["url"] == ids.EXT_CAPACITY
        for s in e["extension"]
        if s["url"] == "genderCapacityAvailable"
    ]
    assert sorted(genders) == ["01", "03"]  # kept as stored
    old = selector(capacityStatus="04", genderCapacityAvailable="03")
    r = client.patch("/fhir/Location/loc-rea", json=body("replace", old, cap("04", 2, gender="03")), headers=h)
    assert r.status_code == 400 and "deprecated" in r.text, r.text


def test_full_replace_and_warnings(http) -> None:
    client, h = http
    full = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueString": "replace"},
                    {"name": "path", "valueString": f"Location.extension.where(url='{ids.EXT_CAPACITY}')"},
                    {"name": "value", "part": [{"extension": [cap("01", 10), cap("02", 12, gender="04")]}]},
                ],
            }
        ],
    }
    r = client.patch("/fhir/Location/loc-rea", json=full, headers={**h, "Prefer": "return=OperationOutcome"})
    assert r.status_code == 200
    diags = [i["diagnostics"] for i in r.json()["issue"]]
    assert any("available (12) > installed (10)" in d for d in diags)


def test_batch_bulk_feed_one_bad_entry_never_blocks_the_others(http, engine: Engine) -> None:
    client, h = http
    good = {
        "request": {"method": "PATCH", "url": f"Location?identifier={NAT}/REA1"},
        "resource": body("replace", selector(**AVAILABLE_F), cap("02", 2, gender="01")),
    }
    bad = {
        "request": {"method": "PATCH", "url": f"Location?identifier={NAT}/NOPE"},
        "resource": body("add", "Location", cap("03", 2)),
    }
    forbidden = {
        "request": {"method": "PATCH", "url": "Location/loc-other"},
        "resource": body("add", "Location", cap("03", 2)),
    }
    add = {
        "request": {"method": "PATCH", "url": "http://x/fhir/Location/loc-rea"},
        "resource": body("add", "Location", cap("03", 15)),
    }
    r = client.post(
        "/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": [good, bad, forbidden, add]}, headers=h
    )
    assert r.status_code == 200, r.text
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses == ["200 OK", "404", "403", "200 OK"]
    with engine.connect() as c:
        rows = dict(
            c.execute(select(capacity.c.status, capacity.c.nb).where(capacity.c.location_id == "loc-rea")).all()
        )
    assert rows == {"01": 20, "02": 2, "03": 15}
    r = client.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": []}, headers=h)
    assert r.status_code == 400


def test_batch_entries_on_one_location_each_make_a_version_and_are_audited(http, engine: Engine) -> None:
    """The bulk feed writes its entries together (one transaction, CapacityService.patch_many): entries on the
    same Location apply in order, each its own version and event; an invalid entry between them writes nothing;
    every entry leaves one audit row with its outcome."""
    client, h = http
    with engine.connect() as c:
        audit_before = c.execute(select(audit_event.c.pk)).all()
        events_before = len(
            c.execute(select(capacity_event.c.pk).where(capacity_event.c.location_id == "loc-rea")).all()
        )
    first = {
        "request": {"method": "PATCH", "url": "Location/loc-rea"},
        "resource": body("replace", selector(**AVAILABLE_F), cap("02", 4, gender="01")),
    }
    invalid = {  # gender 03 of R332 is deprecated: refused on write
        "request": {"method": "PATCH", "url": "Location/loc-rea"},
        "resource": body("add", "Location", cap("02", 1, gender="03")),
    }
    second = {
        "request": {"method": "PATCH", "url": "Location/loc-rea"},
        "resource": body("replace", selector(**AVAILABLE_F), cap("02", 5, gender="01")),
    }
    r = client.post(
        "/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": [first, invalid, second]}, headers=h
    )
    assert r.status_code == 200, r.text
    responses = [e["response"] for e in r.json()["entry"]]
    assert [x["status"] for x in responses] == ["200 OK", "400", "200 OK"]
    v1 = int(responses[0]["etag"].split('"')[1])
    assert responses[2]["etag"] == f'W/"{v1 + 1}"'
    assert client.get(f"/fhir/Location/loc-rea/_history/{v1}", headers=h).status_code == 200
    with engine.connect() as c:
        nb = c.execute(
            select(capacity.c.nb).where(capacity.c.location_id == "loc-rea", capacity.c.status == "02")
        ).scalar_one()
        events = c.execute(
            select(capacity_event.c.nb_before, capacity_event.c.nb_after)
            .where(capacity_event.c.location_id == "loc-rea")
            .order_by(capacity_event.c.pk)
        ).all()
        audit = c.execute(select(audit_event.c.outcome, audit_event.c.version_id).order_by(audit_event.c.pk)).all()[
            len(audit_before) :
        ]
    assert nb == 5
    assert [tuple(e) for e in events[events_before:]][-2:] == [(events[events_before][0], 4), (4, 5)]
    assert [a.outcome for a in audit] == ["success", "error", "success"]
    assert [a.version_id for a in audit] == [v1, None, v1 + 1]


def test_batch_entries_carry_their_own_if_match(http) -> None:
    """`Bundle.entry.request.ifMatch` is checked against the version the entry's change sees: two entries that
    both expect version 1 of one Location — the first writes version 2, the second gets 412; a malformed one is
    refused at its position."""
    client, h = http

    def entry(nb: int, if_match: object) -> dict[str, Any]:
        return {
            "request": {"method": "PATCH", "url": "Location/loc-rea", "ifMatch": if_match},
            "resource": body("replace", selector(**AVAILABLE_F), cap("02", nb, gender="01")),
        }

    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [entry(4, 'W/"1"'), entry(5, 'W/"1"'), entry(6, "x")]}
    r = client.post("/fhir", json=bundle, headers=h)
    assert r.status_code == 200, r.text
    responses = [e["response"] for e in r.json()["entry"]]
    assert [x["status"] for x in responses] == ["200 OK", "412", "400"]
    assert responses[0]["etag"] == 'W/"2"'
    assert "If-Match asked for 1" in responses[1]["outcome"]["issue"][0]["diagnostics"]
    assert responses[2]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[2].request.ifMatch"]


def test_live_stream_delivers_committed_changes(store: ResourceStore, engine: Engine, nos: None) -> None:
    """A real uvicorn, a real SSE client: a PATCH is seen on the stream; a rejected one is not."""
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    eg = org("eg-" + FINESS, "CHU", finess=FINESS)
    loc = location(
        "loc-rea",
        "Réa",
        48.12,
        -1.69,
        "35238",
        "35033",
        [cap("01", 20), cap("02", 3, gender="01")],
        org_id="eg-" + FINESS,
    )
    store.bulk_upsert([eg, loc])
    with engine.begin() as c:
        c.execute(api_client.delete())
    creds = ClientRegistry(engine).add("feeder", 1, [FINESS])
    app = create_app(engine, tokens=TokenService(KEY))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        tok = httpx.post(
            f"{base}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds.client.client_id,
                "client_secret": creds.secret,
            },
        ).json()["access_token"]
        h = {"Authorization": f"Bearer {tok}"}
        assert httpx.get(f"{base}/api/capacity/stream").status_code == 401
        received: list[str] = []
        connected = threading.Event()

        def listen() -> None:
            with httpx.stream("GET", f"{base}/api/capacity/stream?departement=35", headers=h, timeout=60) as r:
                for line in r.iter_lines():
                    if line.startswith(": connected"):
                        connected.set()
                    if line.startswith("data: "):
                        received.append(line[6:])
                        return

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        assert connected.wait(30)
        bad = httpx.patch(
            f"{base}/fhir/Location/loc-rea",
            json=body("add", "Location", cap("01", 2, gender="01")),
            headers=h,
            timeout=30,
        )
        assert bad.status_code == 400
        ok = httpx.patch(
            f"{base}/fhir/Location/loc-rea",
            json=body("replace", selector(**AVAILABLE_F), cap("02", 7, gender="01")),
            headers=h,
            timeout=30,
        )
        assert ok.status_code == 200
        t.join(30)
        assert received, "no event received"
        import json

        change = json.loads(received[0])
        assert change["location"] == "loc-rea" and change["before"] == 3 and change["after"] == 7
        assert change["departement"] == "35"  # the delay is measured by bench/bench_capacity.py, not asserted here
    finally:
        server.should_exit = True


def test_a_stored_indicator_that_no_longer_parses_is_reported_never_dropped(http, store: ResourceStore) -> None:
    """The write protocol reads the current indicators once per stored content (a memo shared with the
    projection, which skips what it cannot parse): a PATCH on a Location whose stored indicator is malformed is a
    400 naming it, and the stored indicator is kept; once repaired, successive PATCHes (served from the memo)
    keep every other indicator."""
    client, h = http
    broken = store.read("Location", "loc-rea").resource()
    caps = [e for e in broken["extension"] if e["url"] == ids.EXT_CAPACITY]
    bad = next(x for x in caps[0]["extension"] if x["url"] == "nbCapacity")
    bad["valueInteger"] = -4
    store.update("Location", "loc-rea", broken)
    path = selector(**AVAILABLE_F) + ".extension.where(url='nbCapacity')"
    r = client.patch("/fhir/Location/loc-rea", json=body("replace", path, nb=1), headers=h)
    assert r.status_code == 400 and "nbCapacity" in r.text, r.text
    stored = store.read("Location", "loc-rea").resource()
    assert -4 in [
        x.get("valueInteger") for e in stored["extension"] if e["url"] == ids.EXT_CAPACITY for x in e["extension"]
    ]
    bad["valueInteger"] = 20
    store.update("Location", "loc-rea", broken)
    for nb in (1, 2, 3):
        r = client.patch("/fhir/Location/loc-rea", json=body("replace", path, nb=nb), headers=h)
        assert r.status_code == 200, r.text
    loc = client.get("/fhir/Location/loc-rea", headers=h).json()
    nbs = sorted(
        s["valueInteger"]
        for e in loc["extension"]
        if e["url"] == ids.EXT_CAPACITY
        for s in e["extension"]
        if s["url"] == "nbCapacity"
    )
    assert nbs == [3, 20]


def test_every_patch_is_audited_with_its_version_also_when_nothing_changes(http, engine: Engine) -> None:
    """The audit row of a PATCH joins the write's own statements; a PATCH that changes nothing writes no version
    and is audited all the same."""
    client, h = http
    path = selector(**AVAILABLE_F) + ".extension.where(url='nbCapacity')"
    for nb in (7, 7):
        r = client.patch("/fhir/Location/loc-rea", json=body("replace", path, nb=nb), headers=h)
        assert r.status_code == 200, r.text
    assert r.headers["ETag"] == 'W/"2"'  # the second one changed nothing
    with engine.connect() as c:
        rows = c.execute(
            select(audit_event.c.action, audit_event.c.outcome, audit_event.c.version_id)
            .where(audit_event.c.res_id == "loc-rea")
            .order_by(audit_event.c.pk)
        ).all()
    assert [tuple(r) for r in rows] == [("patch", "success", 2), ("patch", "success", 2)]
