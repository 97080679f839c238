"""Issue 7 "Done means": in a real browser (Debian Chromium driven by Playwright) against a live uvicorn, create an
offer from an establishment without any through the forms as its manager (NOS pickers answering as one types),
submit it, review it as the regional team, validate and publish it as the head of the establishment, then find it
in the search page and through GET /fhir/HealthcareService. Screenshots go to tests/artifacts/ (the form is copied
to docs/screenshots/ when ROR_PUBLISH_SCREENSHOTS=1).

Under CI (CI=true) a missing browser fails the test; elsewhere it is skipped with the reason."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete

from ror.db.tables import offer_change
from ror.server import create_app
from ror.services import Services
from tests.test_offer_forms import EMPTY, add_empty_establishment
from tests.test_web_browser import ARTIFACTS, CHROMIUM, _browser_or_skip, shot
from tests.test_web_pages import PASSWORD, load_seed_data

OFFER = "Réanimation polyvalente - Clinique des Essais"


@pytest.fixture(scope="module")
def services(engine: Engine, reference_dir: Path) -> Services:
    services = load_seed_data(engine, reference_dir)
    add_empty_establishment(services)
    with engine.begin() as c:
        c.execute(delete(offer_change))
    return services


@pytest.fixture(scope="module")
def live_server(engine: Engine, services: Services) -> Iterator[str]:
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):  # startup poll of the server flag, not a wait on the page
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


def log_in(page: Any, base: str, email: str) -> None:
    if page.locator("form[action='/deconnexion'] button").count():
        page.click("form[action='/deconnexion'] button")
        page.wait_for_url(f"{base}/connexion")
    page.goto(f"{base}/connexion")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/")


def pick(page: Any, selector: str, typed: str, expected: str) -> None:
    """Type in a NOS / commune picker, wait for the suggestion with its label, choose it."""
    page.fill(selector, "")
    page.type(selector, typed)
    listbox = page.get_attribute(selector, "list")
    page.wait_for_function(
        "([id, want]) => [...document.getElementById(id).options].some(o => o.value === want)",
        arg=[listbox, expected],
    )
    page.fill(selector, expected)


def act(page: Any, base: str, section: str, action: str, status: str, comment: str = "") -> None:
    page.goto(f"{base}/a-traiter")
    page.click(f"[data-section={section}] a:has-text('{OFFER}')")
    page.wait_for_selector("[data-status]")
    if comment:
        page.fill("#commentaire", comment)
    page.click(f"button[name=action][value={action}]")
    page.wait_for_selector(f"[data-status={status}]")


def test_create_submit_review_publish_and_find_an_offer(page: Any, live_server: str, services: Services) -> None:
    base = live_server
    # the establishment manager opens the offers of an establishment without any and creates one
    log_in(page, base, "redacteur@vide.test")
    assert page.locator("nav a[href='/a-traiter']").count() == 1
    page.click("nav a[href='/offres']")
    page.wait_for_url(f"{base}/etablissements/{EMPTY}/offres")
    assert page.locator("#aucune-offre").count() == 1
    page.click("#nouvelle-offre")
    page.wait_for_selector("#offre-form")
    page.fill("#nom", OFFER)
    pick(page, "#activite", "réanimation poly", "127 — Réanimation polyvalente")
    pick(page, "#mode", "complète", "28 — Hospitalisation complète (HC)")
    page.select_option("#champ", "01")
    page.fill("#age_min", "18")
    page.fill("#age_max", "120")
    page.click("label[for=h247]")  # 24 h/24, 7 j/7: the weekly grid is greyed out
    assert page.is_checked("#h247") and page.is_disabled("#debut-mon")
    page.fill("#fe-0-motif", "Travaux")
    page.fill("#fe-0-debut", "2027-08-01")
    page.fill("#fe-0-fin", "2027-08-15")
    page.select_option("#ct-0-nature", "06")
    page.select_option("#ct-0-canal", "2")
    page.fill("#ct-0-valeur", "02 96 00 00 01")
    page.select_option("#ct-0-niveau", "1")
    page.fill("#lieu_nom", "Réanimation — bâtiment B")
    page.select_option("#lieu_fonction", "001")
    page.fill("#lieu_adresse", "1 rue des Essais")
    page.fill("#lieu_cp", "22000")
    pick(page, "#lieu_commune", "Saint-Brieu", "22278 — Saint-Brieuc")
    equipment = page.evaluate(
        "() => fetch('/api/web/nomenclatures/J18?q=bariatrique').then(r => r.json()).then(x => x[0])"
    )
    pick(page, "#eq-0-type", "bariatrique", f"{equipment['code']} — {equipment['label']}")
    page.fill("#eq-0-nombre", "2")
    shot(page, "offre-formulaire", publish=True)
    page.click("#enregistrer-offre")
    page.wait_for_url(re.compile(r".*/modifications/\d+$"))
    pk = int(page.url.rsplit("/", 1)[1])
    assert page.get_attribute("[data-status]", "data-status") == "brouillon"
    change = services.workflow.get(pk)
    assert not services.store.exists("HealthcareService", change.res_id)  # a draft, not published

    # submit, relecture by the regional team, validation and publication by the head of the establishment
    page.click("button[name=action][value=submit]")
    page.wait_for_selector("[data-status=soumis]")
    log_in(page, base, "ars@test.fr")
    act(page, base, "relecture", "review", "valide", "Relu : conforme.")
    assert not services.store.exists("HealthcareService", change.res_id)
    log_in(page, base, "directeur@vide.test")
    act(page, base, "validation", "publish", "publie", "Validé par la direction.")
    shot(page, "offre-publiee")
    hs = services.store.read("HealthcareService", change.res_id).resource()
    assert hs["name"] == OFFER

    # consumers find it: the search page (activity + département) and the FHIR API
    page.goto(f"{base}/recherche?activite=127&departement=22")
    page.wait_for_selector("#resultats")
    result = page.locator("ol.results li.result", has_text=OFFER)
    assert result.count() == 1
    assert "Saint-Brieuc" in result.inner_text() and "18–120 ans" in result.inner_text()
    shot(page, "offre-recherche")
    result.locator("h3 a").click()
    page.wait_for_selector("section[aria-labelledby=offre]")
    assert OFFER in page.inner_text("section[aria-labelledby=offre]")
    answer = page.request.get(
        f"{base}/fhir/HealthcareService",
        params={"organization": f"Organization/eg-{EMPTY}", "specialty": "127"},
    )
    assert answer.status == 200
    bundle = answer.json()
    assert bundle["total"] == 1 and bundle["entry"][0]["resource"]["name"] == OFFER
    location = bundle["entry"][0]["resource"]["location"][0]["reference"]
    place = page.request.get(f"{base}/fhir/{location}").json()
    assert place["name"] == "Réanimation — bâtiment B"
