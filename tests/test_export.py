"""FHIR Bulk Data `$export` over real HTTP on the test database: kick-off → poll → manifest → ndjson; `_type`,
`_typeFilter`, `_since`; access filtering per profile (compared with the search adapter); errors; jobs surviving a
restart; cancellation; round trip of the files into an empty store."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from ror.access.clients import ClientRegistry
from ror.access.policy import Profile
from ror.access.tokens import TokenService
from ror.db.tables import api_client, export_job, resource
from ror.directory import ids
from ror.export.jobs import LEASE, RUNNING, JobStore
from ror.export.request import ExportRequest
from ror.search.normalise import fhir_instant, utcnow
from ror.server import create_app
from ror.store import ResourceStore
from ror.store.meta import REGION_SYSTEM
from tests.conftest import truncate_store
from tests.search_fixtures import location, org, service
from tests.test_access_policy import seed

KEY = "test-secret-key-0123456789-abcdefghijklmnop"
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def tagged(res: dict[str, Any], region: str) -> dict[str, Any]:
    res["meta"] = {"tag": [{"system": REGION_SYSTEM, "code": region}]}
    return res


class _Tagging:
    """Writes through `store` with the region tag set (the content hash ignores meta: tag on the first write)."""

    def __init__(self, store: ResourceStore, region: str) -> None:
        self.store, self.region = store, region

    def bulk_upsert(self, resources: list[dict[str, Any]]) -> Any:
        return self.store.bulk_upsert([tagged(r, self.region) for r in resources])


def populate(store: ResourceStore) -> None:
    """The access-matrix data (telecom levels, capacity, a sensitive unit) in region 53, plus a region-52 site."""
    seed(_Tagging(store, "53"))  # type: ignore[arg-type]
    store.bulk_upsert(
        [
            tagged(org("eg-52", "CH de Tours", finess="370000481"), "52"),
            tagged(location("loc-52", "Médecine Tours", 47.39, 0.68, "37261", "37000", org_id="eg-52"), "52"),
            tagged(service("hs-52", "Médecine", "001", "28", "eg-52", "loc-52"), "52"),
        ]
    )


@pytest.fixture
def data(store: ResourceStore, engine: Engine) -> ResourceStore:
    with engine.begin() as c:
        c.execute(export_job.delete())
    populate(store)
    return store


def make_app(engine: Engine, directory: Path, profile: Profile = Profile.ALL) -> FastAPI:
    app = create_app(engine, anonymous_profile=profile, tokens=TokenService(KEY))
    app.state.export_dir = directory
    return app


@pytest.fixture
def client(data: ResourceStore, engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(make_app(engine, tmp_path)) as c:
        yield c


@pytest.fixture
def public(data: ResourceStore, engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(make_app(engine, tmp_path, Profile.OPEN_DATA)) as c:
        yield c


def kick_off(client: TestClient, path: str = "/fhir/$export", headers: dict[str, str] | None = None, **params: str):
    r = client.get(path, params=params, headers={**ASYNC, **(headers or {})})
    assert r.status_code == 202, r.text
    return r.headers["Content-Location"]


def wait(client: TestClient, status_url: str, headers: dict[str, str] | None = None, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(status_url, headers=headers)
        if r.status_code != 202:
            return r
        assert r.headers["X-Progress"].startswith(("accepted", "in-progress"))
        assert time.monotonic() < deadline, "export did not finish"
        time.sleep(0.05)


def export(client: TestClient, path: str = "/fhir/$export", headers: dict[str, str] | None = None, **params: str):
    """Run an export to the end: (manifest, {type: [resources]})."""
    r = wait(client, kick_off(client, path, headers, **params), headers)
    assert r.status_code == 200, r.text
    manifest = r.json()
    out: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        f = client.get(item["url"], headers=headers)
        assert f.status_code == 200 and f.headers["content-type"].startswith("application/fhir+ndjson")
        lines = f.content.decode().splitlines()
        assert len(lines) == item["count"] and f.content.endswith(b"\n")
        out.setdefault(item["type"], []).extend(orjson.loads(line) for line in lines)
    return manifest, out


def assert_valid(res: dict[str, Any], res_type: str) -> None:
    """Structure of a stored FHIR resource of the exported type (what a FHIR parser needs to accept it)."""
    assert res["resourceType"] == res_type
    assert FHIR_ID.match(res["id"])
    assert res["meta"]["versionId"].isdigit() and INSTANT.match(res["meta"]["lastUpdated"])
    for ext in res.get("extension", []):
        assert ext["url"].startswith("http") and (len(ext) == 2 or "extension" in ext)
    if res_type in ("HealthcareService", "Location"):
        for ref in [res.get("providedBy"), res.get("managingOrganization"), *res.get("location", [])]:
            assert ref is None or re.match(r"^(Organization|Location)/[A-Za-z0-9\-.]+$", ref["reference"])


def stored_ids(engine: Engine, res_type: str) -> set[str]:
    with engine.connect() as c:
        q = select(resource.c.res_id).where(resource.c.res_type == res_type, resource.c.deleted.is_(False))
        return set(c.execute(q).scalars())


def ids_of(out: dict[str, list[dict[str, Any]]], res_type: str) -> set[str]:
    return {r["id"] for r in out.get(res_type, [])}


# --- the asynchronous pattern -----------------------------------------------------------------------------------
def test_kick_off_poll_manifest_download(client: TestClient, engine: Engine) -> None:
    status_url = kick_off(client)
    assert "/fhir/$export-poll-status?_jobId=" in status_url
    r = wait(client, status_url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    manifest = r.json()
    assert set(manifest) == {"transactionTime", "request", "requiresAccessToken", "output", "error"}
    assert INSTANT.match(manifest["transactionTime"]) and manifest["request"].endswith("/fhir/$export")
    assert manifest["requiresAccessToken"] is False and manifest["error"] == []
    _, out = export(client)
    assert set(out) == {"Organization", "HealthcareService", "Location"}  # no Practitioner/Task stored: no file
    for res_type, items in out.items():
        for res in items:
            assert_valid(res, res_type)
        assert ids_of(out, res_type) == stored_ids(engine, res_type)
        assert len(items) == len(ids_of(out, res_type))  # no duplicates
    assert {o["url"].rsplit("/", 1)[1] for o in manifest["output"]} == {
        "Organization-1.ndjson",
        "HealthcareService-1.ndjson",
        "Location-1.ndjson",
    }


def test_type_restricts_the_types(client: TestClient) -> None:
    manifest, out = export(client, _type="Location,Organization")
    assert {o["type"] for o in manifest["output"]} == {"Location", "Organization"}
    assert ids_of(out, "Organization") == {"eg-1", "eg-52"}
    _, only = export(client, "/fhir/HealthcareService/$export")
    assert set(only) == {"HealthcareService"} and ids_of(only, "HealthcareService") == {
        "hs-mco",
        "hs-ms",
        "hs-secret",
        "hs-52",
    }


def test_type_filter_by_region_tag_uses_the_search(client: TestClient) -> None:
    _, out = export(
        client, _type="Location,Organization", _typeFilter=f"Location?_tag={ids.TRE_R30}|52"
    )  # the filter applies to Location only; Organization is exported whole
    assert ids_of(out, "Location") == {"loc-52"}
    assert ids_of(out, "Organization") == {"eg-1", "eg-52"}
    _, both = export(
        client,
        _type="Location,HealthcareService",
        _typeFilter=f"Location?_tag={ids.TRE_R30}|53,HealthcareService?specialty={ids.TRE_R211}|127",
    )
    assert ids_of(both, "Location") == {"loc-mco", "loc-ms", "loc-secret"}
    assert ids_of(both, "HealthcareService") == {"hs-mco"}
    # two filters on one type are OR-ed (repeated parameter)
    r = client.get(
        "/fhir/$export",
        params=[
            ("_type", "Location"),
            ("_typeFilter", "Location?_id=loc-52"),
            ("_typeFilter", "Location?_id=loc-ms"),
        ],
        headers=ASYNC,
    )
    rows = wait(client, r.headers["Content-Location"]).json()["output"]
    lines = client.get(rows[0]["url"]).content.decode().splitlines()
    assert {orjson.loads(x)["id"] for x in lines} == {"loc-52", "loc-ms"}


def test_since_keeps_what_changed_after(client: TestClient, data: ResourceStore, engine: Engine) -> None:
    with engine.connect() as c:
        latest = c.execute(select(resource.c.last_updated).order_by(resource.c.last_updated.desc())).scalars().first()
    time.sleep(0.01)
    loc = data.read("Location", "loc-ms").resource()
    loc["name"] = "EHPAD (renamed)"
    data.update("Location", "loc-ms", loc)
    _, out = export(client, _since=fhir_instant(latest))
    assert {t: ids_of(out, t) for t in out} == {"Location": {"loc-ms"}}
    assert out["Location"][0]["name"] == "EHPAD (renamed)"
    _, everything = export(client, _since="2000-01-01T00:00:00Z")
    assert ids_of(everything, "Location") == stored_ids(engine, "Location")


# --- access filtering -----------------------------------------------------------------------------------------
def capacity_of(res: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in res.get("extension", []) if e["url"] == ids.EXT_CAPACITY]


def test_profile_0_sees_the_public_view_only(public: TestClient) -> None:
    manifest, out = export(public)
    assert manifest["requiresAccessToken"] is False
    assert ids_of(out, "HealthcareService") == {"hs-mco", "hs-ms", "hs-52"}  # the sensitive unit is hidden
    assert "loc-secret" not in ids_of(out, "Location")
    assert all(capacity_of(loc) == [] for loc in out["Location"])  # open data: no capacity
    eg = next(o for o in out["Organization"] if o["id"] == "eg-1")
    assert [t["value"] for t in eg["telecom"]] == ["0101010101"]  # level 1 only
    mco = next(loc for loc in out["Location"] if loc["id"] == "loc-mco")
    assert [t["value"] for t in mco["telecom"]] == ["0404040404"]
    # exactly what the search adapter serves to the same profile
    for res_type, items in out.items():
        bundle = public.get(f"/fhir/{res_type}", params={"_count": "200"}).json()
        assert sorted(items, key=lambda r: r["id"]) == sorted(
            (e["resource"] for e in bundle["entry"]), key=lambda r: r["id"]
        )


def test_profile_1_sees_everything(client: TestClient) -> None:
    _, out = export(client, _type="Location,HealthcareService")
    assert "hs-secret" in ids_of(out, "HealthcareService") and "loc-secret" in ids_of(out, "Location")
    mco = next(loc for loc in out["Location"] if loc["id"] == "loc-mco")
    assert len(capacity_of(mco)) == 4 and len(mco["telecom"]) == 2


def _token(client: TestClient, engine: Engine, profile: int) -> str:
    with engine.begin() as c:
        c.execute(api_client.delete())
    creds = ClientRegistry(engine).add(f"export-p{profile}", profile)
    r = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": creds.client.client_id, "client_secret": creds.secret},
    )
    return r.json()["access_token"]


def test_only_the_requester_polls_and_downloads(public: TestClient, engine: Engine) -> None:
    token = {"Authorization": f"Bearer {_token(public, engine, 2)}"}
    status_url = kick_off(public, headers=token)
    r = wait(public, status_url, token)
    assert r.status_code == 200 and r.json()["requiresAccessToken"] is True
    assert public.get(status_url).status_code == 404  # anonymous (profile 0) is not the requester
    url = r.json()["output"][0]["url"]
    assert public.get(url).status_code == 404
    assert public.get(url, headers=token).status_code == 200
    # profile 2: capacity without the supplementary status, the sensitive unit hidden
    _, out = export(public, headers=token, _type="Location")
    mco = next(loc for loc in out["Location"] if loc["id"] == "loc-mco")
    statuses = {
        s["valueCodeableConcept"]["coding"][0]["code"]
        for c in capacity_of(mco)
        for s in c["extension"]
        if s["url"] == "capacityStatus"
    }
    assert statuses == {"01", "02", "03"} and "loc-secret" not in ids_of(out, "Location")


# --- errors -----------------------------------------------------------------------------------------------------
def _outcome(r: Any, status: int, expression: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["expression"] == [expression], body


def test_kick_off_errors(client: TestClient) -> None:
    _outcome(client.get("/fhir/$export"), 400, "Prefer")
    _outcome(client.get("/fhir/$export", params={"_type": "Patient"}, headers=ASYNC), 400, "_type")
    _outcome(client.get("/fhir/Location/$export", params={"_type": "Organization"}, headers=ASYNC), 400, "_type")
    _outcome(client.get("/fhir/$export", params={"_outputFormat": "text/csv"}, headers=ASYNC), 400, "_outputFormat")
    _outcome(client.get("/fhir/$export", params={"_since": "yesterday"}, headers=ASYNC), 400, "_since")
    _outcome(client.get("/fhir/$export", params={"_elements": "id"}, headers=ASYNC), 400, "_elements")
    for bad in (
        "Location?nope=1",
        "Location",
        "Location?_count=5",
        "Patient?_id=1",
        "Location?nb-capacity=many",
    ):
        _outcome(client.get("/fhir/$export", params={"_typeFilter": bad}, headers=ASYNC), 400, "_typeFilter")
    _outcome(
        client.get(
            "/fhir/$export", params={"_type": "Location", "_typeFilter": "Organization?_id=eg-1"}, headers=ASYNC
        ),
        400,
        "_typeFilter",
    )
    assert client.get("/fhir/Patient/$export", headers=ASYNC).status_code == 404
    _outcome(client.get("/fhir/$export-poll-status", params={"_jobId": "nope"}), 404, "_jobId")
    r = client.get("/fhir/$export", params={"_outputFormat": "ndjson", "_type": "Organization"}, headers=ASYNC)
    assert r.status_code == 202  # the spec's abbreviations of application/fhir+ndjson are accepted


def test_metadata_lists_the_export_operation(client: TestClient) -> None:
    cs = client.get("/fhir/metadata").json()
    assert {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}.items() <= (
        cs["rest"][0]["operation"][0].items()
    )
    loc = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Location")
    assert loc["operation"][0]["name"] == "export"


# --- lifecycle: cancellation, restart -----------------------------------------------------------------------------
def test_delete_cancels_and_removes_the_files(client: TestClient, tmp_path: Path) -> None:
    status_url = kick_off(client)
    assert wait(client, status_url).status_code == 200
    job_id = status_url.rsplit("=", 1)[1]
    assert (tmp_path / job_id).is_dir()
    assert client.delete(status_url).status_code == 202
    assert client.get(status_url).status_code == 404
    assert not (tmp_path / job_id).exists()
    assert client.delete(status_url).status_code == 404


def test_job_left_unfinished_is_resumed_after_a_restart(data: ResourceStore, engine: Engine, tmp_path: Path) -> None:
    jobs = JobStore(engine)
    request = ExportRequest(types=("Location",), type_filters={"Location": (f"_tag={ids.TRE_R30}|52",)})
    crashed = jobs.create(
        request, request_url="http://testserver/fhir/$export", profile=Profile.ALL, caller="anonymous"
    )
    queued = jobs.create(
        ExportRequest(types=("Organization",)), request_url="x", profile=Profile.ALL, caller="anonymous"
    )
    with engine.begin() as c:  # the previous process died in the middle of `crashed`, leaving a partial file
        c.execute(
            update(export_job)
            .where(export_job.c.id == crashed.id)
            .values(status=RUNNING, progress=1, updated_at=utcnow() - LEASE - timedelta(seconds=5))
        )
    (tmp_path / crashed.id).mkdir()
    (tmp_path / crashed.id / "Location-1.ndjson").write_text('{"partial": true')
    fresh = jobs.get(crashed.id)
    assert fresh is not None and jobs.claimable(fresh.updated_at + timedelta(seconds=1)) == [jobs.get(queued.id)]
    with TestClient(make_app(engine, tmp_path)) as restarted:  # the new process resumes both
        for job, expected in ((crashed, {"loc-52"}), (queued, {"eg-1", "eg-52"})):
            r = wait(restarted, f"http://testserver/fhir/$export-poll-status?_jobId={job.id}")
            assert r.status_code == 200, r.text
            lines = restarted.get(r.json()["output"][0]["url"]).content.decode().splitlines()
            assert {orjson.loads(x)["id"] for x in lines} == expected
    done = jobs.get(crashed.id)
    assert done is not None and done.status == "completed" and done.progress == 1


def test_claim_is_exclusive(data: ResourceStore, engine: Engine) -> None:
    jobs = JobStore(engine)
    job = jobs.create(ExportRequest(types=("Location",)), request_url="x", profile=Profile.ALL, caller="anonymous")
    assert jobs.claim(job) is True
    assert jobs.claim(job) is False  # a second process saw the same row: it loses
    assert jobs.claimable() == []  # running with a fresh heartbeat: nobody else takes it


# --- round trip -------------------------------------------------------------------------------------------------
def business(res: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in res["meta"].items() if k not in ("versionId", "lastUpdated")}
    return {**res, "meta": meta}


def test_round_trip_into_an_empty_store(client: TestClient, data: ResourceStore, engine: Engine) -> None:
    _, out = export(client)
    exported = [r for items in out.values() for r in items]
    before = {(r["resourceType"], r["id"]): business(r) for r in exported}
    assert len(before) == 10
    truncate_store(engine)
    assert stored_ids(engine, "Location") == set()
    counts = data.bulk_upsert(exported)
    assert counts.created == len(exported)
    with engine.connect() as c:
        rows = c.execute(select(resource.c.res_type, resource.c.res_id, resource.c.content)).all()
    after = {(rt, rid): business(orjson.loads(content)) for rt, rid, content in rows}
    assert after == before
    # the reloaded store answers searches (indexes rebuilt from the files)
    b = client.get("/fhir/Location", params={"_tag": f"{ids.TRE_R30}|52"}).json()
    assert [e["resource"]["id"] for e in b["entry"]] == ["loc-52"]


def test_failed_job_reports_an_operation_outcome(data: ResourceStore, engine: Engine, tmp_path: Path) -> None:
    jobs = JobStore(engine)
    broken = ExportRequest(types=("Location",), type_filters={"Location": ("no-such-parameter=1",)})  # not validated
    job = jobs.create(broken, request_url="x", profile=Profile.ALL, caller="anonymous")
    with TestClient(make_app(engine, tmp_path)) as c:
        r = wait(c, f"http://testserver/fhir/$export-poll-status?_jobId={job.id}")
    assert r.status_code == 500 and r.json()["resourceType"] == "OperationOutcome"
    assert "no-such-parameter" in r.json()["issue"][0]["diagnostics"]
    failed = jobs.get(job.id)
    assert failed is not None and failed.status == "error"
