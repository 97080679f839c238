"""The web application in a real browser (Debian Chromium driven by Playwright) against a live uvicorn: log in,
search an available adult ICU bed within 50 km of a commune, open the unit, update 10 units of an establishment
with the keyboard only (key presses counted), see the dashboard. Screenshots go to tests/artifacts/ and the four
main pages are copied to docs/screenshots/ for the README when ROR_PUBLISH_SCREENSHOTS=1.

Under CI (CI=true) a missing browser fails the test; elsewhere it is skipped with the reason."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from ror.db.tables import capacity
from ror.server import create_app
from ror.services import Services
from tests.test_web_pages import FINESS, PASSWORD, load_seed_data

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
MAX_KEYS_FOR_10_UNITS = 40


def _browser_or_skip() -> Any:
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "the playwright Python package is not installed (.venv/bin/pip install playwright)"
    else:
        if not CHROMIUM.exists():
            reason = f"{CHROMIUM} not found (apt-get install -y chromium)"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser test cannot run under CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return sync_playwright


@pytest.fixture(scope="module")
def services(engine: Engine, reference_dir: Path) -> Services:
    return load_seed_data(engine, reference_dir)


@pytest.fixture(scope="module")
def live_server(engine: Engine, services: Services) -> Iterator[str]:
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(live_server: str) -> Iterator[Any]:
    sync_playwright = _browser_or_skip()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        yield pg
        context.close()
        browser.close()


def shot(page: Any, name: str, publish: bool = False) -> None:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if publish and os.environ.get("ROR_PUBLISH_SCREENSHOTS") == "1":  # refresh the README pictures on demand only
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")


def test_login_search_unit_entry_dashboard(page: Any, live_server: str, services: Services) -> None:
    # log in (a national administrator may do everything shown here)
    page.goto(f"{live_server}/recherche")
    assert "/connexion" in page.url
    page.fill("#email", "admin@test.fr")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/recherche")

    # search: an available adult ICU bed (réanimation polyvalente, 45 years) within 50 km of Saint-Brieuc
    page.fill("#activite", "127")
    page.fill("#age", "45")
    page.fill("#commune", "Saint-Brieuc")
    page.fill("#rayon", "50")
    page.click("label[for=dispo]")  # the DSFR draws the checkbox on its label
    assert page.is_checked("#dispo")
    page.click("#rechercher")
    page.wait_for_selector("#resultats")
    assert "Réanimation" in page.inner_text("ol.results")
    assert page.locator("ol.results li.result").count() >= 1
    assert "disponible" in page.inner_text("ol.results li.result >> nth=0")
    shot(page, "recherche", publish=True)

    # open the unit
    page.click("ol.results li.result >> nth=0 >> h3 a")
    page.wait_for_selector("#capacites")
    assert page.locator("figure.chart svg").count() == 1
    assert "mise à jour" in page.inner_text("#fraicheur")
    shot(page, "unite", publish=True)

    # capacity entry of a whole establishment, keyboard only: 10 units, one number each, ArrowDown between rows
    page.goto(f"{live_server}/etablissements/{FINESS}/disponibilites")
    page.wait_for_selector("#saisie")
    rows = page.eval_on_selector_all(
        "input.num[data-col^=available]",
        "els => { const seen = new Set(); return els.filter(e => { const r = e.dataset.row;"
        " if (seen.has(r)) return false; seen.add(r); return true; }).map(e => [e.dataset.row, e.name, e.value]) }",
    )
    assert len(rows) >= 10
    focused = page.evaluate("document.activeElement.name")
    assert focused == rows[0][1]  # the first field has the focus on load
    keys = 0
    started = time.perf_counter()
    typed: dict[str, int] = {}
    for i, (_loc_id, name, value) in enumerate(rows[:10]):
        new = 1 if value == "0" else 0
        page.keyboard.type(str(new))
        keys += 1
        typed[name] = new
        if i < 9:
            assert page.evaluate("document.activeElement.name") == name
            page.keyboard.press("ArrowDown")
            keys += 1
    assert page.evaluate("document.activeElement.name") == rows[9][1]
    shot(page, "saisie", publish=True)
    page.keyboard.press("Enter")
    keys += 1
    page.wait_for_selector("#entry-message")
    seconds = time.perf_counter() - started
    assert "10 unité(s) enregistrée(s)" in page.inner_text("#entry-message")
    assert keys <= MAX_KEYS_FOR_10_UNITS, keys
    print(f"\n10-unit update: {keys} key presses, 0 clicks, {seconds:.1f} s driven by Playwright")
    with services.engine.connect() as c:
        for name, new in typed.items():
            _, loc_id, gender = name[:2], name[2:].rsplit("-", 1)[0], name.rsplit("-", 1)[1]
            nb = c.execute(
                select(capacity.c.nb).where(
                    capacity.c.location_id == loc_id,
                    capacity.c.status == "02",
                    capacity.c.temporality == "01",
                    capacity.c.gender == gender,
                )
            ).scalar_one()
            assert nb == new, name
        assert (
            c.execute(
                select(func.count()).where(
                    capacity.c.location_id.like(f"loc-{FINESS}-%"), capacity.c.source_type == "01"
                )
            ).scalar_one()
            > 0
        )

    # dashboard: map, table, a click on the département
    page.goto(f"{live_server}/tableau-de-bord")
    page.wait_for_selector(".map svg")
    assert page.locator('.map a[href="/tableau-de-bord/departements/22"]').count() == 1
    assert int(page.inner_text("#total-disponibles")) >= 0
    shot(page, "tableau-de-bord", publish=True)
    page.click('.map a[href="/tableau-de-bord/departements/22"]')
    page.wait_for_selector("#table-etablissements")
    assert "YVES LE FOLL" in page.inner_text("#table-etablissements")
    shot(page, "departement")
