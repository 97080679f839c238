"""Group commit of concurrent capacity PATCHes (ror.fhir.patch_groups, ADR 0011): the PATCHes a feeder sends
while one of its writes runs are written together, each answered exactly as if it had been alone."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, select

from ror.access.clients import ClientRegistry
from ror.access.tokens import TokenService
from ror.db.tables import api_client, audit_event, capacity
from ror.directory import ids
from ror.fhir.patch_groups import PatchGroups
from ror.server import create_app
from ror.store import ResourceStore
from tests.search_fixtures import capacity as cap
from tests.search_fixtures import location, org
from tests.test_capacity_patch import AVAILABLE_F, body, nos, selector  # noqa: F401 (nos: fixture)

KEY = "patch-groups-key-0123456789-abcdefghijklmn"
FINESS = "350000741"
NAT = "1" + FINESS


def _body(op: str, path: str, ext: dict[str, Any]) -> bytes:
    return orjson.dumps(body(op, path, ext))


def _replace_available(nb: int) -> bytes:
    return _body("replace", selector(**AVAILABLE_F), cap("02", nb, gender="01"))


def _available(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        rows = c.execute(select(capacity.c.location_id, capacity.c.nb).where(capacity.c.status == "02")).all()
    return {loc: nb for loc, nb in rows}


@pytest.mark.usefixtures("nos")
def test_concurrent_patches_of_one_feeder_are_written_together_each_answered_on_its_own(
    store: ResourceStore, engine: Engine
) -> None:
    eg = org("eg-" + FINESS, "CHU Pontchaillou", finess=FINESS)
    eg["identifier"].append({"system": ids.ID_NAT_STRUCT, "value": NAT})
    units = []
    for i in range(6):
        loc = location(
            f"loc-g{i}",
            f"Unité {i}",
            48.12,
            -1.69,
            "35238",
            "35033",
            [cap("01", 20), cap("02", 3, gender="01")],
            org_id="eg-" + FINESS,
        )
        loc["identifier"] = [{"type": {"coding": [{"system": ids.TRE_R354, "code": "26"}]}, "value": f"G{i}"}]
        units.append(loc)
    store.bulk_upsert([eg, *units])
    with engine.begin() as c:
        c.execute(api_client.delete())
        c.execute(audit_event.delete())
    creds = ClientRegistry(engine).add("GAM CHU", 2, [FINESS])
    app = create_app(engine, tokens=TokenService(KEY))

    async def scenario() -> tuple[list[httpx.Response], httpx.Response, PatchGroups, dict[str, Any]]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                form = {"grant_type": "client_credentials", "client_id": creds.client.client_id}
                form["client_secret"] = creds.secret
                token = (await client.post("/oauth/token", data=form)).json()["access_token"]
                h = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
                # alone (nothing running for this feeder): written at once, on its own
                first = await client.patch("/fhir/Location/loc-g5", content=_replace_available(9), headers=h)
                groups: PatchGroups = app.state.patch_groups
                # the next write is held until the eight others wait behind it: they must go as one group
                release = threading.Event()
                one = groups.run_one

                def held(caller: Any, request: Any) -> Any:
                    assert release.wait(30)
                    return one(caller, request)

                groups.run_one = held
                patches = [
                    ("/fhir/Location/loc-g5", _replace_available(8), {}),  # held: the group waits for it
                    ("/fhir/Location/loc-g0", _replace_available(1), {}),
                    ("/fhir/Location/loc-g1", _replace_available(5), {"If-Match": 'W/"1"'}),
                    ("/fhir/Location/loc-g1", _replace_available(6), {"If-Match": 'W/"1"'}),  # 412: v2 now
                    ("/fhir/Location/loc-g2", _body("add", "Location", cap("02", 2, gender="03")), {}),  # R332 03
                    ("/fhir/Location/loc-nope", _replace_available(1), {}),  # unknown
                    (f"/fhir/Location?identifier={NAT}/G3", _replace_available(4), {}),  # the feeders' form
                    ("/fhir/Location/loc-g4", _replace_available(7), {"Prefer": "return=OperationOutcome"}),
                    ("/fhir/Location/loc-g0", _replace_available(2), {}),  # after the first one of loc-g0
                ]
                tasks = []
                for path, content, extra in patches:
                    tasks.append(asyncio.create_task(client.patch(path, content=content, headers={**h, **extra})))
                    await asyncio.sleep(0.01)  # arrival order = list order
                for _ in range(3000):
                    if sum(len(q.waiting) for q in groups._queues.values()) == len(patches) - 1:
                        break
                    await asyncio.sleep(0.001)
                release.set()
                responses = list(await asyncio.gather(*tasks))
                reads = {}
                for i in range(6):
                    reads[f"loc-g{i}"] = (await client.get(f"/fhir/Location/loc-g{i}", headers=h)).json()
                return responses, first, groups, reads

    responses, first, groups, reads = asyncio.run(scenario())
    assert first.status_code == 200, first.text
    assert groups.groups_written == 1  # the eight that waited went in one transaction
    assert [r.status_code for r in responses] == [200, 200, 200, 412, 400, 404, 200, 200, 200]
    outcome = {i: r.json()["issue"][0] for i, r in enumerate(responses) if r.status_code != 200}
    assert outcome[3]["code"] == "conflict" and "If-Match asked for 1" in outcome[3]["diagnostics"]
    assert outcome[4]["code"] == "business-rule"
    assert outcome[5]["code"] == "not-found" and outcome[5]["expression"] == ["Location"]
    # each success carries its own version; the rendered body is that version as a read returns it
    assert [r.headers["etag"] for r in responses if r.status_code == 200] == [
        'W/"3"',
        'W/"2"',
        'W/"2"',
        'W/"2"',
        'W/"2"',
        'W/"3"',
    ]
    assert responses[8].json() == reads["loc-g0"] and responses[2].json() == reads["loc-g1"]
    assert responses[7].json()["resourceType"] == "OperationOutcome"
    assert _available(engine) == {"loc-g0": 2, "loc-g1": 5, "loc-g2": 3, "loc-g3": 4, "loc-g4": 7, "loc-g5": 8}
    with engine.connect() as c:
        audited = c.execute(select(audit_event.c.outcome, audit_event.c.res_id).order_by(audit_event.c.pk)).all()
    outcomes = sorted((a.res_id, a.outcome) for a in audited if a.res_id != "loc-g5")
    assert outcomes == sorted(
        [
            ("loc-g0", "success"),
            ("loc-g0", "success"),
            ("loc-g1", "success"),
            ("loc-g1", "error"),
            ("loc-g2", "error"),
            ("loc-nope", "error"),
            ("loc-g3", "success"),
            ("loc-g4", "success"),
        ]
    )
    assert len(audited) == 2 + 8  # every PATCH audited once: the two of loc-g5 and the eight of the group


def test_a_failure_of_the_group_reaches_each_of_its_requests_and_the_next_ones_still_run() -> None:
    """The scheduler alone (no database): an unexpected exception of a group's write is raised to each of its
    requests; what waits behind it is written next; a caller's queue is dropped once idle."""

    class Boom(Exception):
        pass

    release = threading.Event()
    calls: list[list[str]] = []

    def one(caller: Any, request: Any) -> Any:
        assert release.wait(30)
        calls.append([request.location_id])
        return request.location_id

    def many(caller: Any, requests: Any) -> Any:
        calls.append([r.location_id for r in requests])
        if "boom" in calls[-1]:
            raise Boom()
        return [r.location_id for r in requests]

    from ror.access.tokens import ANONYMOUS
    from ror.capacity.service import PatchRequest

    groups = PatchGroups(one, many, max_group=2)

    async def scenario() -> list[Any]:
        tasks = [
            asyncio.create_task(groups.submit(ANONYMOUS, PatchRequest({}, location_id=name)))
            for name in ("a", "b", "boom", "c", "d")
        ]
        await asyncio.sleep(0.05)
        release.set()
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    results = asyncio.run(scenario())
    assert calls == [["a"], ["b", "boom"], ["c", "d"]]  # at most max_group per group, in arrival order
    assert results[0] == "a" and results[3:] == ["c", "d"]
    assert isinstance(results[1], Boom) and isinstance(results[2], Boom)
    assert groups._queues == {}

    # a request whose client gave up (cancelled) before its group started is not written
    release.clear()
    calls.clear()

    async def cancelled() -> list[Any]:
        tasks = [
            asyncio.create_task(groups.submit(ANONYMOUS, PatchRequest({}, location_id=name)))
            for name in ("e", "gone", "f")
        ]
        await asyncio.sleep(0.05)
        tasks[1].cancel()
        await asyncio.sleep(0.01)
        release.set()
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    results = asyncio.run(cancelled())
    assert calls == [["e"], ["f"]]
    assert results[0] == "e" and results[2] == "f" and isinstance(results[1], asyncio.CancelledError)
    assert groups._queues == {}
