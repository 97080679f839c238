"""Administration pages, crisis declaration from the dashboard, the trend chart and the dashboard's live stream,
over HTTP on the built-in seed (département 22, région 53): each page per role (403 for non-administrators),
CSRF on every form, secrets shown once and working, regional administrators kept to their région, audit."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, func, insert, select

from ror.access import audit
from ror.access.people import PersonRegistry
from ror.db.tables import api_client, audit_event, capacity, crisis, import_run
from ror.search.normalise import utcnow
from ror.server import create_app
from ror.services import Services
from ror.web.dashboard import CATEGORY_OF, available_trend, critical_units
from tests.test_web_pages import FINESS, PASSWORD, csrf_of, load_seed_data, login

ADMIN_PAGES = ["personnes", "clients", "imports", "crises", "journal"]
REA = f"loc-{FINESS}-rea-adu"


@pytest.fixture(scope="module")
def services(engine: Engine, reference_dir: Path) -> Services:
    s = load_seed_data(engine, reference_dir)
    with engine.begin() as c:
        c.execute(delete(crisis))
        c.execute(delete(api_client))
    return s


@pytest.fixture(scope="module")
def app_client(engine: Engine, services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(engine)) as c:
        yield c


def _page_csrf(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text[:300]
    return csrf_of(page.text)


def _secret(html: str) -> str:
    m = re.search(r'<code id="secret-value">([^<]+)</code>', html)
    assert m, "no secret shown"
    return m.group(1)


def _entry_add(client: TestClient, more: int) -> None:
    """Add `more` to the first available-bed field of the réanimation unit through the capacity entry form."""
    page = client.get(f"/etablissements/{FINESS}/disponibilites")
    fields = dict(re.findall(r'name="([aovn]-[^"]+)" value="([^"]*)"', page.text))
    key = next(k for k in fields if k.startswith(f"a-{REA}-"))
    r = client.post(
        f"/etablissements/{FINESS}/disponibilites",
        data={**fields, key: str(int(fields[key]) + more), "csrf": csrf_of(page.text), "action": "save"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]


@pytest.mark.parametrize(
    ("email", "status"),
    [
        ("admin@test.fr", 200),
        ("ars@test.fr", 200),
        ("cadre@test.fr", 403),
        ("samu@test.fr", 403),
        ("lecteur@test.fr", 403),
    ],
)
def test_admin_pages_by_role(app_client: TestClient, email: str, status: int) -> None:
    login(app_client, email)
    for name in ADMIN_PAGES:
        r = app_client.get(f"/administration/{name}")
        assert r.status_code == status, (name, r.text[:200])
        if status == 403:
            assert "Accès refusé" in r.text
    home = app_client.get("/").text
    assert ('href="/administration/personnes"' in home) == (status == 200)
    app_client.cookies.clear()
    assert app_client.get("/administration/journal", follow_redirects=False).status_code == 303


def test_create_person_password_shown_once_then_disable_and_role(app_client: TestClient, services: Services) -> None:
    login(app_client, "admin@test.fr")
    csrf = _page_csrf(app_client, "/administration/personnes")
    form = {"email": "Nouvelle@Test.fr", "name": "Nouvelle", "role": "viewer", "finess": "", "region": ""}
    assert app_client.post("/administration/personnes", data=form).status_code == 403  # no CSRF
    with pytest.raises(Exception, match="aucun compte"):
        PersonRegistry(services.engine).get("nouvelle@test.fr")
    r = app_client.post("/administration/personnes", data={**form, "csrf": csrf})
    assert r.status_code == 200 and "Compte nouvelle@test.fr créé" in r.text
    password = _secret(r.text)
    assert "secret-value" not in app_client.get("/administration/personnes").text  # once only
    other = TestClient(app_client.app)
    login(other, "nouvelle@test.fr", password)
    assert other.get("/tableau-de-bord").status_code == 403  # viewer

    # a role change ends the sessions; the new rights apply at the next login
    r = app_client.post(
        "/administration/personnes/modifier",
        data={"csrf": csrf, "email": "nouvelle@test.fr", "op": "role", "role": "regulator", "finess": ""},
    )
    assert r.status_code == 200 and "Régulateur" in r.text
    assert other.get("/tableau-de-bord", follow_redirects=False).status_code == 303  # session ended
    login(other, "nouvelle@test.fr", password)
    assert other.get("/tableau-de-bord").status_code == 200

    r = app_client.post(
        "/administration/personnes/modifier", data={"csrf": csrf, "email": "nouvelle@test.fr", "op": "desactiver"}
    )
    assert r.status_code == 200 and "désactivé" in r.text
    assert other.get("/recherche", follow_redirects=False).status_code == 303
    page = other.get("/connexion")
    refused = other.post(
        "/connexion", data={"email": "nouvelle@test.fr", "password": password, "csrf": csrf_of(page.text)}
    )
    assert "désactivé" in refused.text
    with services.engine.connect() as c:
        actions = set(
            c.execute(
                select(audit_event.c.action).where(
                    audit_event.c.actor_id == "person:admin@test.fr", audit_event.c.res_id == "nouvelle@test.fr"
                )
            ).scalars()
        )
    assert {"person-create", "person-role", "person-desactiver"} <= actions
    # one may not disable oneself
    me = app_client.post(
        "/administration/personnes/modifier", data={"csrf": csrf, "email": "admin@test.fr", "op": "desactiver"}
    )
    assert me.status_code == 400


def test_regional_admin_is_kept_to_its_region(app_client: TestClient, services: Services) -> None:
    login(app_client, "ars@test.fr")
    page = app_client.get("/administration/personnes")
    assert "cadre@test.fr" in page.text  # FINESS in région 53
    assert "admin@test.fr" not in page.text  # a national administrator is not the région's
    csrf = csrf_of(page.text)
    base = {"csrf": csrf, "name": "X", "region": ""}
    r = app_client.post("/administration/personnes", data={**base, "email": "nat@test.fr", "role": "national_admin"})
    assert r.status_code == 403
    r = app_client.post(
        "/administration/personnes",
        data={**base, "email": "loin@test.fr", "role": "establishment_manager", "finess": "750000001"},
    )
    assert r.status_code == 403
    r = app_client.post(
        "/administration/personnes",
        data={**base, "email": "local@test.fr", "role": "establishment_manager", "finess": FINESS},
    )
    assert r.status_code == 200 and "local@test.fr" in r.text
    assert PersonRegistry(services.engine).get("local@test.fr").finess == (FINESS,)
    r = app_client.post(
        "/administration/personnes/modifier", data={"csrf": csrf, "email": "admin@test.fr", "op": "desactiver"}
    )
    assert r.status_code == 403
    assert PersonRegistry(services.engine).get("admin@test.fr").active
    # API clients: only feeders of the région
    r = app_client.post("/administration/clients", data={"csrf": csrf, "name": "Tout", "profile": "1", "feeds": ""})
    assert r.status_code == 403
    r = app_client.post(
        "/administration/clients", data={"csrf": csrf, "name": "Feeder", "profile": "2", "feeds": FINESS}
    )
    assert r.status_code == 200 and "Feeder" in r.text


def _token(client: TestClient, client_id: str, secret: str) -> httpx.Response:
    return client.post(
        "/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )


def test_api_client_secret_once_rotate_disable(app_client: TestClient) -> None:
    login(app_client, "admin@test.fr")
    csrf = _page_csrf(app_client, "/administration/clients")
    form = {"name": "SI régional", "profile": "2", "feeds": FINESS}
    assert app_client.post("/administration/clients", data=form).status_code == 403  # no CSRF
    r = app_client.post("/administration/clients", data={**form, "csrf": csrf})
    assert r.status_code == 200
    secret = _secret(r.text)
    client_id = re.search(r"<p>(ror-[0-9a-f]+) :", r.text).group(1)  # type: ignore[union-attr]
    assert _token(app_client, client_id, secret).status_code == 200

    r = app_client.post(
        "/administration/clients/modifier", data={"csrf": csrf, "client_id": client_id, "op": "renouveler"}
    )
    new_secret = _secret(r.text)
    assert new_secret != secret
    assert _token(app_client, client_id, secret).status_code == 401
    assert _token(app_client, client_id, new_secret).status_code == 200

    r = app_client.post(
        "/administration/clients/modifier", data={"csrf": csrf, "client_id": client_id, "op": "desactiver"}
    )
    assert r.status_code == 200 and "désactivé" in r.text
    assert _token(app_client, client_id, new_secret).status_code == 401


def test_imports_page_lists_runs(app_client: TestClient, services: Services) -> None:
    with services.engine.begin() as c:
        c.execute(
            insert(import_run).values(
                kind="finess", source="etalab-test.csv", started=utcnow(), created=12, updated=3, unchanged=5, errors=1
            )
        )
    login(app_client, "ars@test.fr")
    r = app_client.get("/administration/imports")
    assert "etalab-test.csv" in r.text and "en cours ou interrompu" in r.text


def test_crisis_declared_shown_and_ended_from_the_dashboard(app_client: TestClient, services: Services) -> None:
    login(app_client, "samu@test.fr")  # a regulator sees crises but may not declare one
    page = app_client.get("/tableau-de-bord?region=53")
    assert 'action="/tableau-de-bord/crises"' not in page.text
    declare = {"type": "02", "portee": "region", "codes": "53", "fraicheur": "30", "motif": "Afflux massif"}
    r = app_client.post("/tableau-de-bord/crises", data={**declare, "csrf": csrf_of(page.text)})
    assert r.status_code == 403

    login(app_client, "ars@test.fr")
    page = app_client.get("/tableau-de-bord")
    csrf = csrf_of(page.text)
    assert app_client.post("/tableau-de-bord/crises", data=declare).status_code == 403  # no CSRF
    other = {**declare, "codes": "11", "csrf": csrf}
    assert app_client.post("/tableau-de-bord/crises", data=other).status_code == 403  # another région
    r = app_client.post("/tableau-de-bord/crises", data={**declare, "csrf": csrf, "retour_region": "53"})
    assert r.status_code == 200 and "Crise déclarée" in r.text
    assert "Crise en cours" in r.text and "Afflux massif" in r.text
    active = app_client.get("/api/crises").json()["crises"]
    assert len(active) == 1 and active[0]["codes"] == ["53"] and active[0]["freshnessMinutes"] == 30
    assert active[0]["startedBy"] == "person:ars@test.fr"
    crisis_id = active[0]["id"]

    login(app_client, "samu@test.fr")
    page = app_client.get("/tableau-de-bord?region=53")
    assert "Crise en cours" in page.text and f"/tableau-de-bord/crises/{crisis_id}/fin" not in page.text
    assert app_client.get("/tableau-de-bord?region=11").text.count("Crise en cours") == 0  # not covered
    r = app_client.post(f"/tableau-de-bord/crises/{crisis_id}/fin", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 403

    login(app_client, "ars@test.fr")
    page = app_client.get("/tableau-de-bord")
    r = app_client.post(f"/tableau-de-bord/crises/{crisis_id}/fin", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 200 and "Crise terminée" in r.text and "Crise en cours" not in r.text
    assert app_client.get("/api/crises").json()["crises"] == []
    history = app_client.get("/administration/crises").text
    assert "Afflux massif" in history and "person:ars@test.fr" in history
    with services.engine.connect() as c:
        rows = c.execute(
            select(audit_event.c.actor_id, audit_event.c.action, audit_event.c.outcome).where(
                audit_event.c.res_type == "Crisis"
            )
        ).all()
    got = {tuple(r) for r in rows}
    assert ("person:ars@test.fr", "crisis-start", "success") in got
    assert ("person:ars@test.fr", "crisis-end", "success") in got
    assert ("person:samu@test.fr", "crisis-start", "denied") in got
    assert ("person:samu@test.fr", "crisis-end", "denied") in got


def test_audit_log_filters_pages_and_region(app_client: TestClient, services: Services) -> None:
    engine = services.engine
    for i in range(60):
        audit.record(engine, actor_type="client", actor_id="ror-pager", action="update", outcome="success",
                     res_type="Location", res_id=REA, version_id=i + 1)  # fmt: skip
    audit.record(engine, actor_type="client", actor_id="ror-ailleurs", action="update", outcome="denied",
                 res_type="Location", res_id="loc-750000001-rea")  # fmt: skip
    login(app_client, "admin@test.fr")
    first = app_client.get("/administration/journal?acteur=ror-pager")
    assert first.status_code == 200 and first.text.count('<tr class="outcome-success">') == 50
    m = re.search(r'id="page-suivante" href="([^"]+)"', first.text)
    assert m
    second = app_client.get(m.group(1).replace("&amp;", "&"))
    assert second.text.count('<tr class="outcome-success">') == 10 and 'id="page-suivante"' not in second.text
    assert "v60" in first.text and "v1<" in second.text
    denied = app_client.get("/administration/journal?resultat=denied&acteur=ror-ailleurs")
    assert "loc-750000001-rea" in denied.text
    assert "ror-pager" not in app_client.get("/administration/journal?resultat=denied").text
    assert app_client.get("/administration/journal?du=2026-13-01").status_code == 400

    login(app_client, "ars@test.fr")  # région 53: events about its resources or made by its people
    regional = app_client.get("/administration/journal?acteur=ror-ailleurs")
    assert "loc-750000001-rea" not in regional.text and "Aucun événement" in regional.text
    assert "ror-pager" in app_client.get("/administration/journal?acteur=ror-pager").text
    own = app_client.get("/administration/journal?acteur=ars@test.fr&action=login").text  # a person of 53
    assert own.count('<tr class="outcome-success">') >= 1


def test_trend_follows_a_capacity_change(app_client: TestClient, services: Services) -> None:
    with services.engine.connect() as c:
        before_units = critical_units(c, region="53")
        _, before = available_trend(c, before_units, utcnow(), region="53")
    category = next(u.category for u in before_units if u.location_id == REA)
    assert category in set(CATEGORY_OF.values())
    login(app_client, "admin@test.fr")
    _entry_add(app_client, 5)
    delta = 5
    with services.engine.connect() as c:
        after_units = critical_units(c, region="53")
        _, after = available_trend(c, after_units, utcnow(), region="53")
    assert after[category][-1][1] == before[category][-1][1] + delta  # now
    with services.engine.connect() as c:
        rea_now = c.execute(
            select(func.sum(capacity.c.nb)).where(
                capacity.c.location_id.in_([u.location_id for u in after_units if u.category == category]),
                capacity.c.status == "02",
                capacity.c.temporality == "01",
                capacity.c.temporary_assignment.in_(("", "01")),
            )
        ).scalar_one()
    assert after[category][-1][1] == rea_now  # the last point is the projection
    assert after[category][0][1] == before[category][0][1]  # 7 days ago: unchanged history
    page = app_client.get("/tableau-de-bord")
    assert 'id="graphique-tendance"' in page.text and "<polyline" in page.text
    fragment = app_client.get("/tableau-de-bord/direct")
    assert fragment.status_code == 200 and "<html" not in fragment.text and 'id="total-disponibles"' in fragment.text
    login(app_client, "lecteur@test.fr")
    assert app_client.get("/tableau-de-bord/direct").status_code == 403
    assert app_client.get("/tableau-de-bord/flux").status_code == 403


@pytest.fixture(scope="module")
def live_server(engine: Engine, services: Services) -> Iterator[str]:
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _http_login(client: httpx.Client, email: str) -> None:
    page = client.get("/connexion")
    r = client.post("/connexion", data={"email": email, "password": PASSWORD, "csrf": csrf_of(page.text)})
    assert r.status_code in (200, 303), r.text[:200]


def test_dashboard_stream_pushes_a_capacity_change(live_server: str, services: Services) -> None:
    """Real uvicorn, real SSE: the regional administrator's dashboard stream receives the change saved by the
    establishment's manager; a stream of another région does not."""
    received: list[str] = []
    other: list[str] = []
    ready = threading.Event()
    ready_other = threading.Event()

    def listen(region: str, into: list[str], connected: threading.Event, quiet_s: float) -> None:
        """Collect the first event; give up after `quiet_s` of silence (heartbeats come every 15 s)."""
        with httpx.Client(base_url=live_server, timeout=quiet_s, follow_redirects=True) as c:
            _http_login(c, "admin@test.fr")
            try:
                with c.stream("GET", f"/tableau-de-bord/flux?region={region}") as r:
                    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
                    for line in r.iter_lines():
                        if line.startswith(": connected"):
                            connected.set()
                        if line.startswith("data: "):
                            into.append(line[6:])
                            return
            except httpx.ReadTimeout:
                return

    t = threading.Thread(target=listen, args=("53", received, ready, 14.0), daemon=True)
    t2 = threading.Thread(target=listen, args=("11", other, ready_other, 8.0), daemon=True)
    t.start()
    t2.start()
    assert ready.wait(15) and ready_other.wait(15)
    with httpx.Client(base_url=live_server, timeout=20) as c:
        _http_login(c, "cadre@test.fr")
        page = c.get(f"/etablissements/{FINESS}/disponibilites")
        fields = dict(re.findall(r'name="([aovn]-[^"]+)" value="([^"]*)"', page.text))
        key = next(k for k in fields if k.startswith(f"a-{REA}-"))
        new = "1" if fields[key] != "1" else "2"
        r = c.post(
            f"/etablissements/{FINESS}/disponibilites",
            data={**fields, key: new, "csrf": csrf_of(page.text), "action": "save"},
        )
        assert r.status_code in (200, 303)
    t.join(15)
    assert received, "no event on the dashboard stream"
    assert f'"location":"{REA}"' in received[0] and '"departement":"22"' in received[0]
    t2.join(15)
    assert not other  # région 11 saw nothing
