"""Operations: Prometheus `/metrics` (latency by route template, write counts, stale units), X-Request-Id in and
out, JSON log lines carrying the request id."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from ror.access.clients import ClientRegistry
from ror.access.tokens import TokenService
from ror.db.tables import api_client
from ror.fhir.ops import REQUEST_ID, JsonFormatter
from ror.server import create_app
from ror.store import ResourceStore
from ror.terminology.loader import load_nos
from tests.search_fixtures import populate
from tests.test_capacity_concurrency import available

KEY = "ops-test-key-0123456789-abcdefghijklmnopqrstuvw"


@pytest.fixture
def ops(store: ResourceStore, engine: Engine, reference_dir: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    populate(store)
    load_nos(engine, reference_dir / "nos")
    with engine.begin() as c:
        c.execute(api_client.delete())
    creds = ClientRegistry(engine).add("ops-feeder", 1, ["350000741"])
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


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text `text` (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_by_route_template_and_writes(ops: tuple[TestClient, dict[str, str]]) -> None:
    client, h = ops
    before = client.get("/metrics").text
    for rid in ("loc-rea-rennes", "loc-ped-rennes", "nope"):
        client.get(f"/fhir/Location/{rid}")
    r = client.patch("/fhir/Location/loc-rea-rennes", json=available(9), headers=h)
    assert r.status_code == 200, r.text
    m = client.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = m.text
    route = "/fhir/Location/{res_id}"  # the template (with its bounded FHIR type), never the raw id
    count = "ror_http_request_duration_seconds_count"
    assert sample(text, count, method="GET", route=route) - sample(before, count, method="GET", route=route) == 3
    inf = sample(text, "ror_http_request_duration_seconds_bucket", method="GET", route=route, le="+Inf")
    assert inf == sample(text, count, method="GET", route=route)
    assert sample(text, "ror_http_requests_total", method="GET", route=route, status="404") >= 1
    assert "loc-rea-rennes" not in text
    patch_route = "/fhir/Location/{location_id}"
    # served outside FastAPI's router (fhir.capacity.CapacityFastPath), labelled with its route template all the same
    assert sample(text, count, method="PATCH", route=patch_route) == 1 + sample(
        before, count, method="PATCH", route=patch_route
    )
    assert sample(text, "ror_fhir_writes_total", method="PATCH", type="Location", status="200") == 1 + sample(
        before, "ror_fhir_writes_total", method="PATCH", type="Location", status="200"
    ), patch_route
    search_route = "/fhir/Location"  # served by fhir.search.SearchFastPath, labelled as the FastAPI route was
    for query in ("Location?_count=1", "Location?nope=1"):
        client.get(f"/fhir/{query}")
    text = client.get("/metrics").text
    assert sample(text, count, method="GET", route=search_route) == 2 + sample(
        before, count, method="GET", route=search_route
    )
    assert sample(text, "ror_http_requests_total", method="GET", route=search_route, status="400") >= 1
    # the fixture's units reported availability long ago: stale
    stale = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("ror_capacity_stale_units{")
    ]
    assert sum(stale) >= 1  # (cached 30 s: the value of the first scrape)
    assert re.search(r"^# TYPE ror_http_request_duration_seconds histogram$", text, re.M)


def test_request_id_is_returned_and_generated(ops: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = ops
    assert client.get("/health", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/health", headers={"X-Request-Id": "bad id\twith spaces"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    r = client.post("/fhir/Location", content=b"[" * 100 + b"]" * 100, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.headers["x-request-id"]  # rejections carry an id too


def test_json_log_line_carries_the_request_id() -> None:
    record = logging.LogRecord("ror.access", logging.INFO, __file__, 1, "request", None, None)
    record.status = 201
    token = REQUEST_ID.set("rid-42")
    try:
        line = orjson.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert line["request_id"] == "rid-42" and line["status"] == 201 and line["logger"] == "ror.access"
    assert line["msg"] == "request" and line["level"] == "INFO" and line["ts"].endswith("+00:00")
