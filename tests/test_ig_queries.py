"""Acceptance: the IG's example queries (docs/ror-fhir-api.md §3.3 A, B, C, D, H) on demo data (département 35:
FINESS establishments, SAE units, generated offers, availability). Each query's matches are compared with an
oracle computed in Python over every stored resource, so the test asserts on the actual entries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from ror.access.policy import Profile
from ror.db.tables import resource
from ror.directory import ids
from ror.directory.demo import load_demo
from ror.directory.finess import import_finess
from ror.directory.scope import Scope
from ror.geo.loader import load_geography
from ror.server import create_app
from ror.services import Services
from ror.terminology.loader import load_nos
from tests.conftest import truncate_store

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SCOPE = "departement:35"
UCUM = "http://unitsofmeasure.org"
INC = (
    "_include=HealthcareService:organization&_include:iterate=Organization:partof"
    "&_include=HealthcareService:location&_revinclude=PractitionerRole:service&_include=PractitionerRole:practitioner"
)

Res = dict[str, Any]


class Data:
    def __init__(self, rows: list[Res]) -> None:
        self.by_type: dict[str, dict[str, Res]] = {}
        for r in rows:
            self.by_type.setdefault(r["resourceType"], {})[r["id"]] = r

    def all(self, rt: str) -> dict[str, Res]:
        return self.by_type.get(rt, {})


@pytest.fixture(scope="module")
def data(engine: Engine, reference_dir: Path) -> Data:
    truncate_store(engine)
    load_nos(engine, reference_dir / "nos")
    load_geography(engine, reference_dir / "geo")
    services = Services(engine)
    scope = Scope.parse(SCOPE)
    import_finess(
        services.store,
        reference_dir / "finess" / "finess_et_20210108_flat_from_fhir.csv.gz",
        scope=scope,
        geography=services.geography,
    )
    load_demo(services.store, reference_dir, scope=scope, now=NOW)
    with engine.connect() as c:
        rows = [
            orjson.loads(x)
            for x in c.execute(select(resource.c.content).where(resource.c.deleted.is_(False))).scalars()
        ]
    return Data(rows)


@pytest.fixture(scope="module")
def client(engine: Engine, data: Data) -> Iterator[TestClient]:
    with TestClient(create_app(engine, anonymous_profile=Profile.ALL)) as c:
        yield c


def fetch_all(client: TestClient, url: str) -> tuple[list[str], list[Res], int]:
    """Follow next links; return match ids, included resources, total."""
    ids_: list[str] = []
    included: list[Res] = []
    total = -1
    next_url: str | None = url
    while next_url:
        r = client.get(next_url)
        assert r.status_code == 200, r.text[:500]
        b = r.json()
        total = b["total"]
        for e in b.get("entry", []):
            if e["search"]["mode"] == "match":
                ids_.append(e["resource"]["id"])
            else:
                included.append(e["resource"])
        next_url = next(
            (lk["url"].replace("http://testserver", "") for lk in b["link"] if lk["relation"] == "next"), None
        )
    return ids_, included, total


# --- helpers over FHIR JSON -------------------------------------------------------------------------------------
def codes(cc_list: Any, system: str) -> set[str]:
    out = set()
    for cc in cc_list if isinstance(cc_list, list) else [cc_list] if cc_list else []:
        for c in cc.get("coding", []):
            if c.get("system") == system:
                out.add(c.get("code"))
    return out


def ref_id(ref: Any) -> str | None:
    return ref["reference"].split("/")[-1] if isinstance(ref, dict) and "reference" in ref else None


def locations_of(hs: Res) -> list[str]:
    return [x for x in (ref_id(r) for r in hs.get("location", [])) if x]


def indicators(loc: Res) -> list[dict[str, Any]]:
    out = []
    for e in loc.get("extension", []):
        if e["url"] == ids.EXT_CAPACITY:
            ind: dict[str, Any] = {}
            for s in e["extension"]:
                if "valueCodeableConcept" in s:
                    ind[s["url"]] = s["valueCodeableConcept"]["coding"][0]["code"]
                elif "valueInteger" in s:
                    ind[s["url"]] = s["valueInteger"]
            out.append(ind)
    return out


def ancestors(d: Data, org_id: str | None) -> list[Res]:
    out = []
    while org_id and org_id in d.all("Organization"):
        org = d.all("Organization")[org_id]
        out.append(org)
        org_id = ref_id(org.get("partOf"))
    return out


def identifiers(res: Res) -> set[str]:
    return {i.get("value") for i in res.get("identifier", [])}


def some(d: Data, rt: str, pred: Callable[[Res], bool]) -> Res:
    for r in d.all(rt).values():
        if pred(r):
            return r
    raise AssertionError(f"no {rt} in the demo data for this query")


# --- the queries ------------------------------------------------------------------------------------------------
def check(client: TestClient, url: str, expected: set[str]) -> list[Res]:
    got, included, total = fetch_all(client, url)
    assert len(got) == len(set(got)), "a match appeared on two pages"
    assert set(got) == expected
    assert total == len(expected)
    assert expected, f"the query {url} should match something in the demo data"
    return included


def test_a_capacity_consultation(client: TestClient, data: Data) -> None:
    locs = data.all("Location")
    hs_by_loc: dict[str, set[str]] = {}
    for hs in data.all("HealthcareService").values():
        for loc_id in locations_of(hs):
            hs_by_loc.setdefault(loc_id, set()).add(hs["id"])
    inc = check(client, "/fhir/Location?_revinclude=HealthcareService:location&_count=200", set(locs))
    assert {r["id"] for r in inc} == set().union(*hs_by_loc.values())
    expected = {k for k, v in locs.items() if str(v.get("address", {}).get("postalCode", "")).startswith(("35", "22"))}
    check(client, "/fhir/Location?address-postalcode=35,22&_revinclude=HealthcareService:location", expected)
    tagged = {k for k, v in locs.items() if {"system": ids.TRE_R30, "code": "53"} in v["meta"].get("tag", [])}
    check(client, "/fhir/Location?_tag=R30|53&_revinclude=HealthcareService:location", tagged)
    check(client, "/fhir/Location?_tag=53", tagged)
    one, two = sorted(k for k, v in locs.items() if v.get("identifier"))[:2]
    v1, v2 = sorted(identifiers(locs[one]))[0], sorted(identifiers(locs[two]))[0]
    check(
        client,
        f"/fhir/Location?identifier={v1}&_revinclude=HealthcareService:location",
        {k for k, v in locs.items() if v1 in identifiers(v)},
    )
    check(client, f"/fhir/Location?identifier={v1},{v2}", {k for k, v in locs.items() if identifiers(v) & {v1, v2}})
    check(client, "/fhir/Location?_lastUpdated=ge2022-11-06T15:00&_revinclude=HealthcareService:location", set(locs))
    some_hs = sorted(data.all("HealthcareService").values(), key=lambda h: h["id"])[:3]
    hs_ids = [sorted(identifiers(h))[0] for h in some_hs]
    check(
        client,
        f"/fhir/Location?_has:HealthcareService:location:identifier={','.join(hs_ids)}",
        {loc for h in some_hs for loc in locations_of(h)},
    )


def test_b_extraction(client: TestClient, data: Data) -> None:
    services = data.all("HealthcareService")
    inc = check(client, f"/fhir/HealthcareService?{INC}", set(services))
    assert {r["resourceType"] for r in inc} >= {"Organization", "Location"}
    # organization:above: the offers of every EG under one EJ
    hs = some(data, "HealthcareService", lambda h: len(ancestors(data, ref_id(h.get("providedBy")))) >= 2)
    ej = ancestors(data, ref_id(hs.get("providedBy")))[-1]
    ej_finess = next(i["value"] for i in ej["identifier"] if i.get("system") == ids.FINESS)
    expected = {
        k
        for k, h in services.items()
        if any(ej_finess in identifiers(o) for o in ancestors(data, ref_id(h.get("providedBy"))))
    }
    check(client, f"/fhir/HealthcareService?organization:above.identifier={ej_finess}&{INC}", expected)
    check(client, f"/fhir/HealthcareService?organization.identifier:above={ej_finess}", expected)
    ident = sorted(identifiers(hs))[0]
    check(client, f"/fhir/HealthcareService?identifier={ident}&{INC}", {hs["id"]})
    check(client, f"/fhir/HealthcareService?_lastUpdated=ge2022-11-06T15:00&{INC}", set(services))
    ch = {
        k
        for k, h in services.items()
        if "355" in codes(data.all("Organization").get(ref_id(h.get("providedBy")) or "", {}).get("type"), ids.TRE_R66)
    }
    check(
        client,
        f"/fhir/HealthcareService?organization:above._lastUpdated=ge2022-11-06T15:00&organization.type=R66|355&{INC}",
        ch,
    )
    check(
        client,
        "/fhir/HealthcareService?_filter=(_lastUpdated ge 2022-11-06T15:00 or "
        f"organization:above._lastUpdated ge 2022-11-06T15:00)&{INC}",
        set(services),
    )
    r = client.get(f"/fhir/HealthcareService?_tag=R30|53&_elements=identifier&{INC}").json()
    match = [e["resource"] for e in r["entry"] if e["search"]["mode"] == "match"]
    assert match and all(set(m) <= {"resourceType", "id", "meta", "identifier"} for m in match)


def test_c_main_criteria(client: TestClient, data: Data) -> None:
    services = data.all("HealthcareService")

    def spec(h: Res) -> set[str]:
        return codes(h.get("specialty"), ids.TRE_R211)

    def care(h: Res) -> set[str]:
        return codes(h.get("characteristic"), ids.TRE_R213)

    check(
        client,
        f"/fhir/HealthcareService?specialty=R211|127&{INC}",
        {k for k, h in services.items() if "127" in spec(h)},
    )
    check(
        client,
        "/fhir/HealthcareService?specialty=R211|127,130",
        {k for k, h in services.items() if spec(h) & {"127", "130"}},
    )

    def age(h: Res) -> tuple[float, float]:
        pt = next(e for e in h["extension"] if e["url"] == ids.EXT_PATIENT_TYPE)
        rng = next(s for s in pt["extension"] if s["url"] == "ageRange")["valueRange"]
        return rng["low"]["value"], rng["high"]["value"]

    q = (
        "/fhir/HealthcareService?_filter=(((specialty eq R211|127) or (specialty eq R211|130)) and "
        f"(age-range-low le 35|{UCUM}|a and age-range-high ge 35|{UCUM}|a))"
    )
    check(client, q, {k for k, h in services.items() if spec(h) & {"127", "130"} and age(h)[0] <= 35 <= age(h)[1]})
    q = (
        "/fhir/HealthcareService?_filter=(organization.type eq R66|355) or (specialty eq R211|130)"
        "&characteristic=R213|28"
    )
    org_type = {k: codes(o.get("type"), ids.TRE_R66) for k, o in data.all("Organization").items()}
    check(
        client,
        q,
        {
            k
            for k, h in services.items()
            if ("355" in org_type.get(ref_id(h.get("providedBy")) or "", set()) or "130" in spec(h)) and "28" in care(h)
        },
    )
    locs = data.all("Location")

    def near(h: Res, lat: float, lon: float, km: float) -> bool:
        from ror.search.geo import haversine_km

        for loc_id in locations_of(h):
            p = locs.get(loc_id, {}).get("position")
            if p and (haversine_km(lat, lon, p["latitude"], p["longitude"]) or 1e9) <= km:
                return True
        return False

    inc = check(
        client,
        f"/fhir/HealthcareService?specialty=R211|127&location.near=48.1113|-1.68|15|km&{INC}",
        {k for k, h in services.items() if "127" in spec(h) and near(h, 48.1113, -1.68, 15)},
    )
    assert all("extension" in e for e in [r for r in inc if r["resourceType"] == "Location"])
    r = client.get(
        "/fhir/HealthcareService?specialty=R211|127&location.near-insee-code=35238|15|km"
        "&_include=HealthcareService:location"
    ).json()
    dists = [
        e["search"]["extension"][0]["valueDistance"]["value"]
        for e in r["entry"]
        if e["resource"]["resourceType"] == "Location" and "extension" in e["search"]
    ]
    assert dists and all(d <= 15 for d in dists)
    check(
        client,
        "/fhir/HealthcareService?location.address-postalcode=35&characteristic=R213|28",
        {
            k
            for k, h in services.items()
            if "28" in care(h)
            and any(
                str(locs.get(x, {}).get("address", {}).get("postalCode", "")).startswith("35") for x in locations_of(h)
            )
        },
    )

    def commune(loc_id: str) -> set[str]:
        return codes(
            [
                e.get("valueCodeableConcept")
                for e in locs.get(loc_id, {}).get("extension", [])
                if e["url"] == ids.EXT_COMMUNE_COG
            ],
            ids.TRE_R13,
        )

    expected = {k for k, h in services.items() if any(commune(x) & {"35238", "35047"} for x in locations_of(h))}
    check(
        client,
        "/fhir/HealthcareService?_filter=(location.commune-cog eq R13-CommuneOM|35238 OR "
        "location.commune-cog eq R13-CommuneOM|35047)",
        expected,
    )
    check(client, "/fhir/HealthcareService?location.commune-cog=R13-CommuneOM|35238,35047", expected)


def test_d_capacity_search(client: TestClient, data: Data) -> None:
    services = data.all("HealthcareService")
    locs = data.all("Location")

    def has(h: Res, pred: Callable[[dict[str, Any]], bool]) -> bool:
        return any(pred(i) for x in locations_of(h) for i in indicators(locs.get(x, {})))

    def female_now(i: dict[str, Any]) -> bool:
        return (
            i.get("capacityType") == "01"
            and i.get("genderCapacityAvailable") == "01"
            and i.get("temporalityCapacity") == "01"
            and i.get("capacityStatus") == "02"
            and i.get("nbCapacity", 0) > 0
        )

    # the IG asks for one activity; take one that has an available female bed in the demo data
    activity = sorted(
        c for h in services.values() if has(h, female_now) for c in codes(h.get("specialty"), ids.TRE_R211)
    )[0]
    q = (
        f"/fhir/HealthcareService?specialty=R211|{activity}&location.capacity-type=R329|01"
        "&location.gender-capacity-available=R332|01&location.temporality-capacity=R331-TemporaliteCapacite|01"
        "&location.capacity-status=R330-TypeStatutCapacite|02&location.nb-capacity=gt0"
        "&_include=HealthcareService:location"
    )
    expected = {
        k for k, h in services.items() if activity in codes(h.get("specialty"), ids.TRE_R211) and has(h, female_now)
    }
    check(client, q, expected)
    q = (
        "/fhir/HealthcareService?location.capacity-type=R329|01&location.capacity-closing-type=R333|01"
        "&location.capacity-status=R330-TypeStatutCapacite|05&location.nb-capacity=gt0&_include=HealthcareService:location"
    )
    check(
        client,
        q,
        {
            k
            for k, h in services.items()
            if has(
                h,
                lambda i: (
                    i.get("capacityType") == "01"
                    and i.get("capacityClosingType") == "01"
                    and i.get("capacityStatus") == "05"
                    and i.get("nbCapacity", 0) > 0
                ),
            )
        },
    )


def test_h_locations(client: TestClient, data: Data) -> None:
    locs = data.all("Location")
    check(client, "/fhir/Location", set(locs))
    check(client, "/fhir/Location?status=active", {k for k, v in locs.items() if v.get("status") == "active"})
    check(
        client,
        "/fhir/Location?type=R343|001",
        {k for k, v in locs.items() if "001" in codes(v.get("type"), ids.TRE_R343)},
    )
    check(
        client,
        "/fhir/Location?type=R343|005&status=active",
        {k for k, v in locs.items() if "005" in codes(v.get("type"), ids.TRE_R343) and v.get("status") == "active"},
    )


@pytest.fixture(scope="module")
def live_server(engine: Engine, data: Data) -> Iterator[str]:
    """The app served by a real uvicorn on a free loopback port (a real HTTP client talks to it)."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(engine, anonymous_profile=Profile.ALL), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/fhir"
    server.should_exit = True
    thread.join(timeout=10)


def test_fhirpy_pages_and_follows_includes(live_server: str, data: Data) -> None:
    from fhirpy import SyncFHIRClient

    client = SyncFHIRClient(live_server)
    search = client.resources("HealthcareService").include("HealthcareService", "location").limit(50)
    seen = [r["id"] for r in search.fetch_all()]
    assert sorted(seen) == sorted(data.all("HealthcareService"))  # every page followed, no duplicates
    raw = client.resources("HealthcareService").include("HealthcareService", "location").limit(5).fetch_raw()
    included = {e["resource"]["id"] for e in raw.entry if e["search"]["mode"] == "include"}
    expected = {loc for e in raw.entry if e["search"]["mode"] == "match" for loc in locations_of(e["resource"])}
    assert included == expected and included
    assert client.resources("Location").search(**{"address-postalcode": "35"}).count() == len(
        [v for v in data.all("Location").values() if str(v.get("address", {}).get("postalCode", "")).startswith("35")]
    )
