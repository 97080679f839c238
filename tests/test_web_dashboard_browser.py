"""The dashboard in a real browser (Debian Chromium driven by Playwright) against a live uvicorn: a regional
administrator keeps the dashboard open, the establishment's manager saves a capacity in another session, and the
dashboard's map tile, total and table change through Server-Sent Events without a reload; then the crisis banner
after a declaration, and the administration audit log. Screenshots in tests/artifacts/.

Under CI (CI=true) a missing browser fails the test; elsewhere it is skipped with the reason."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, delete

from ror.db.tables import crisis
from ror.services import Services
from tests.test_web_browser import ARTIFACTS, CHROMIUM, _browser_or_skip, shot
from tests.test_web_browser import live_server as live_server
from tests.test_web_pages import FINESS, PASSWORD, csrf_of, load_seed_data

REA = f"loc-{FINESS}-rea-adu"


@pytest.fixture(scope="module")
def services(engine: Engine, reference_dir: Path) -> Services:
    s = load_seed_data(engine, reference_dir)
    with engine.begin() as c:
        c.execute(delete(crisis))
    return s


@pytest.fixture(scope="module")
def page(live_server: str) -> Iterator[Any]:
    sync_playwright = _browser_or_skip()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        yield pg
        context.close()
        browser.close()


def _save_more_beds(base: str, more: int) -> int:
    """The establishment manager, in its own HTTP session, adds beds to the réanimation unit; returns the field's
    new value."""
    with httpx.Client(base_url=base, timeout=20) as c:
        login = c.get("/connexion")
        c.post("/connexion", data={"email": "cadre@test.fr", "password": PASSWORD, "csrf": csrf_of(login.text)})
        form = c.get(f"/etablissements/{FINESS}/disponibilites")
        fields = dict(re.findall(r'name="([aovn]-[^"]+)" value="([^"]*)"', form.text))
        key = next(k for k in fields if k.startswith(f"a-{REA}-"))
        new = int(fields[key]) + more
        r = c.post(
            f"/etablissements/{FINESS}/disponibilites",
            data={**fields, key: str(new), "csrf": csrf_of(form.text), "action": "save"},
        )
        assert r.status_code == 303 and "enregistre=1" in r.headers["location"], r.text[:300]
    return new


def _tile_number(page: Any) -> int:
    text = page.text_content('.map a[href="/tableau-de-bord/departements/22"] text >> nth=1')
    return int(text or 0)


def test_dashboard_changes_through_sse(page: Any, live_server: str, services: Services) -> None:
    page.goto(f"{live_server}/tableau-de-bord")
    assert "/connexion" in page.url
    page.fill("#email", "ars@test.fr")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/tableau-de-bord")
    page.wait_for_selector("#graphique-tendance svg polyline")
    page.wait_for_function("document.getElementById('direct').dataset.live === 'connecte'")
    total = int(page.inner_text("#total-disponibles"))
    tile = _tile_number(page)
    row = page.inner_text("#table-departements tbody tr >> nth=0")
    shot(page, "tableau-de-bord-avant")

    _save_more_beds(live_server, 7)  # another person, another session: no reload here
    page.wait_for_function(
        f"Number(document.getElementById('total-disponibles').textContent) === {total + 7}", timeout=15_000
    )
    assert page.evaluate("document.getElementById('direct').dataset.updates") == "1"
    assert _tile_number(page) == tile + 7
    assert page.inner_text("#table-departements tbody tr >> nth=0") != row
    assert "/connexion" not in page.url  # same page, never reloaded
    shot(page, "tableau-de-bord-sse")

    # crisis: declared from the page, the banner appears; the audit log shows it
    page.click("#declarer-crise summary")
    page.fill("#crise-codes", "53")
    page.fill("#crise-motif", "Accident collectif")
    page.click("#declarer-crise button[type=submit]")
    page.wait_for_selector(".bandeau-crise")
    assert "Accident collectif" in page.inner_text(".bandeau-crise")
    shot(page, "tableau-de-bord-crise")
    page.goto(f"{live_server}/administration/journal?action=crisis-start")
    page.wait_for_selector("#table-journal")
    assert "person:ars@test.fr" in page.inner_text("#table-journal")
    shot(page, "administration-journal")


def test_unit_history_choice_by_keyboard_and_without_javascript(
    page: Any, live_server: str, services: Services
) -> None:
    """The 7/30-day choice of the unit page: reached with Tab, followed with Enter (shareable URL), and the same
    links work in a browser with JavaScript disabled."""
    page.goto(f"{live_server}/unites/{REA}")
    if "/connexion" in page.url:
        page.fill("#email", "ars@test.fr")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server}/unites/{REA}")
    assert page.get_attribute("#historique-7", "aria-current") == "true"
    page.focus("#historique-7")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "historique-30"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server}/unites/{REA}?historique=30#historique")
    assert "Historique (30 jours)" in page.inner_text("#historique")
    assert page.get_attribute("#historique-30", "aria-current") == "true"
    page.wait_for_selector("#graphique-historique svg polyline", state="attached")  # a flat line has no height
    assert len(page.query_selector_all("#table-historique tbody tr")) >= 30
    shot(page, "unite-historique-30-jours")

    browser = page.context.browser
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900}, locale="fr-FR")
    try:
        plain = context.new_page()
        plain.goto(f"{live_server}/connexion")
        plain.fill("#email", "ars@test.fr")
        plain.fill("#password", PASSWORD)
        plain.click("button[type=submit]")
        plain.goto(f"{live_server}/unites/{REA}")
        plain.click("#historique-30")
        plain.wait_for_url(f"{live_server}/unites/{REA}?historique=30#historique")
        assert "Historique (30 jours)" in plain.inner_text("#historique")
        plain.click("#historique-7")
        plain.wait_for_url(f"{live_server}/unites/{REA}?historique=7#historique")
        assert "Historique (7 jours)" in plain.inner_text("#historique")
    finally:
        context.close()
