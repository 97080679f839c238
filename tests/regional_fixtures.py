"""Shared pieces of the regional-module tests (tension, urgences, subscriptions): a real local HTTP receiver for
rest-hook deliveries, an app with API clients, a small Bretagne / Pays de la Loire graph with region tags."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete

from ror.access.clients import ClientRegistry
from ror.access.tokens import TokenService
from ror.db.tables import api_client, audit_event, subscription, tension_declaration, urgences_report
from ror.directory import ids
from ror.server import create_app
from ror.services import Services
from ror.store.meta import REGION_SYSTEM
from tests.search_fixtures import R213, capacity, location, org, service

KEY = "test-secret-key-regional-0123456789-abcdefgh"


# --- a real HTTP receiver ---------------------------------------------------------------------------------------
@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        params = self.body["entry"][0]["resource"]["parameter"]
        return next(p["valueCode"] for p in params if p["name"] == "type")

    @property
    def key(self) -> str:
        return self.headers["idempotency-key"]

    @property
    def focus(self) -> str | None:
        params = self.body["entry"][0]["resource"]["parameter"]
        for p in params:
            if p["name"] == "notification-event":
                for part in p["part"]:
                    if part["name"] == "focus":
                        return part["valueReference"]["reference"]
        return None


@dataclass
class Receiver:
    """Answers `status` (200 by default) to every POST and keeps what it accepted (2xx only)."""

    port: int = 0
    status: int = 200
    received: list[Received] = field(default_factory=list)
    hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.hits += 1
                    status = outer.status
                    if 200 <= status < 300:
                        headers = {k.lower(): v for k, v in self.headers.items()}
                        outer.received.append(Received(headers, orjson.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections until `start()` again."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.kind == "event-notification"]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


# --- data ------------------------------------------------------------------------------------------------------
def tagged(res: dict[str, Any], region: str) -> dict[str, Any]:
    return {**res, "meta": {"tag": [{"system": REGION_SYSTEM, "code": region}]}}


def urgences_service(rid: str, name: str, org_id: str, loc_id: str) -> dict[str, Any]:
    hs = service(rid, name, "157", "33", org_id, loc_id)
    hs["characteristic"] = [{"coding": [{"system": R213, "code": "33"}]}]
    return hs


def regional_graph() -> list[dict[str, Any]]:
    """Two establishments in Bretagne (53), one in Pays de la Loire (52), with places and an ED each."""
    res = [
        tagged(org("ej-1", "CHU DE RENNES (EJ)", finess="350005179"), "53"),
        tagged(org("eg-1", "CHU Pontchaillou", part_of="ej-1", category="101", finess="350000741"), "53"),
        tagged(org("eg-2", "CH de Lorient", category="355", finess="560000135"), "53"),
        tagged(org("eg-3", "CHU de Nantes", category="101", finess="440000289"), "52"),
        tagged(
            location("loc-rea-rennes", "Réa Rennes", 48.12, -1.69, "35238", "35033", [capacity("01", 20)], "eg-1"), "53"
        ),
        tagged(location("loc-urg-rennes", "Urgences Rennes", 48.12, -1.69, "35238", "35033", [], "eg-1"), "53"),
        tagged(location("loc-urg-lorient", "Urgences Lorient", 47.75, -3.36, "56121", "56100", [], "eg-2"), "53"),
        tagged(location("loc-urg-nantes", "Urgences Nantes", 47.21, -1.55, "44109", "44093", [], "eg-3"), "52"),
        tagged(service("hs-rea-rennes", "Réanimation", "127", "28", "eg-1", "loc-rea-rennes"), "53"),
        tagged(urgences_service("hs-urg-rennes", "Urgences adultes", "eg-1", "loc-urg-rennes"), "53"),
        tagged(urgences_service("hs-urg-lorient", "Urgences", "eg-2", "loc-urg-lorient"), "53"),
        tagged(urgences_service("hs-urg-nantes", "Urgences", "eg-3", "loc-urg-nantes"), "52"),
    ]
    return res


@dataclass
class Regional:
    http: TestClient
    services: Services
    clients: ClientRegistry
    engine: Engine

    def token(self, profile: int, feeds: list[str] | None = None, name: str = "client") -> dict[str, str]:
        creds = self.clients.add(name, profile, feeds or [])
        r = self.http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds.client.client_id,
                "client_secret": creds.secret,
            },
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


def clear_regional_tables(engine: Engine) -> None:
    with engine.begin() as c:
        for t in (subscription, tension_declaration, urgences_report, api_client, audit_event):
            c.execute(delete(t))


@pytest.fixture
def regional(store: Any, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Regional]:
    """The app over the emptied test database (no background delivery worker: tests drive delivery)."""
    monkeypatch.setenv("ROR_SUBSCRIPTION_WORKER", "0")
    clear_regional_tables(engine)
    app = create_app(engine, tokens=TokenService(KEY))
    svc: Services = app.state.services
    svc.store.bulk_upsert(regional_graph())
    with TestClient(app) as http:
        yield Regional(http, svc, ClientRegistry(engine), engine)


def finess_of(org_id: str) -> str:
    return {"eg-1": "350000741", "eg-2": "560000135", "eg-3": "440000289"}[org_id]


__all__ = ["KEY", "Receiver", "Regional", "ids", "receiver", "regional", "tagged", "wait_for"]
