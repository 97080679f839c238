"""Population flags on the establishment's offers page (issue 7 item 5, docs/quality.md "Population"): per open
offer its seven flags (✓ / ✗ / n.a.) and the establishment's status, computed for that one establishment
(`establishment_population`) — and the same as the territory view `/qualite/peuplement` computes from QualityData.

The seed: NOS + geography + the built-in seed of département 22 (tests/test_web_pages.py), plus a CH of Saint-Brieuc
with a complete offer, an offer without patientèle and a closed offer (not counted)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from ror.access.people import PersonRegistry
from ror.directory import ids
from ror.directory.scope import Scope
from ror.directory.units import UNIT_TYPES, Site, healthcare_service, unit_location
from ror.quality.data import QualityData
from ror.quality.population import EN_COURS, FINALISE, FLAGS, establishment_population, population
from ror.server import create_app
from ror.services import Services
from ror.store.meta import REGION_SYSTEM
from tests.test_quality import CONTACT
from tests.test_web_pages import PASSWORD, load_seed_data, login

CH = "220099970"
EG_ID = ids.eg_id(CH)
MANAGER = "cadre@peuplement.test"
SITE = Site(
    CH, "53", "22278", "Saint-Brieuc", {"line": ["2 rue du Test"], "city": "SAINT-BRIEUC", "postalCode": "22000"}
)
COMPLETE, NO_AGES, CLOSED = (ids.unit_service_id(CH, k) for k in ("med", "chi", "obs"))


def _offer(key: str, *, ages: bool = True, active: bool = True) -> dict:
    res = healthcare_service(SITE, UNIT_TYPES[key])
    res["extension"].append(CONTACT)
    if not ages:
        res["extension"] = [e for e in res["extension"] if e["url"] != ids.EXT_PATIENT_TYPE]
    res["active"] = active
    return res


def seed(services: Services) -> None:
    org = {
        "resourceType": "Organization",
        "id": EG_ID,
        "meta": {"tag": [{"system": REGION_SYSTEM, "code": "53"}]},
        "identifier": [{"system": ids.FINESS, "value": CH}],
        "active": True,
        "type": [{"coding": [{"system": ids.TRE_R66, "code": "355"}]}],  # CH: tracked, not a home service
        "name": "CH DU PEUPLEMENT",
        "address": [{"line": ["2 rue du Test"], "postalCode": "22000", "city": "Saint-Brieuc"}],
    }
    services.store.update("Organization", EG_ID, org)
    for key in ("med", "chi", "obs"):
        loc = unit_location(SITE, UNIT_TYPES[key])
        services.store.update("Location", loc["id"], loc)
    for res in (_offer("med"), _offer("chi", ages=False), _offer("obs", active=False)):
        services.store.update("HealthcareService", res["id"], res)
    PersonRegistry(services.engine).add(MANAGER, "Cadre", "establishment_manager", PASSWORD, [CH], None)


@pytest.fixture(scope="module")
def services(engine: Engine, reference_dir: Path) -> Services:
    services = load_seed_data(engine, reference_dir)
    seed(services)
    return services


@pytest.fixture(scope="module")
def client(engine: Engine, services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(engine)) as c:
        yield c


def shown_flags(html: str) -> dict[str, tuple[dict[str, str], str]]:
    """offer id -> ({flag: oui/non/na}, status) from the population table of the offers page."""
    table = html.split('id="table-peuplement"', 1)[1].split("</table>", 1)[0]
    out = {}
    for offer_id, status, row in re.findall(r'<tr data-offre="([^"]+)" data-statut="([^"]+)">(.*?)</tr>', table, re.S):
        out[offer_id] = (dict(re.findall(r'data-indicateur="([^"]+)" data-valeur="([^"]+)"', row)), status)
    return out


def test_offers_page_shows_the_flags_and_the_status(client: TestClient) -> None:
    login(client, MANAGER)
    page = client.get(f"/etablissements/{CH}/offres")
    assert page.status_code == 200, page.text[:500]
    assert re.search(r'id="statut-peuplement" data-statut="en_cours"[^>]*>En cours<', page.text)
    assert 'id="hors-perimetre"' not in page.text
    shown = shown_flags(page.text)
    assert set(shown) == {COMPLETE, NO_AGES}  # the closed offer is not counted
    complete, status = shown[COMPLETE]
    assert status == FINALISE and complete == {f: "oui" for f in FLAGS} | {"categorie": "na"}
    missing, status = shown[NO_AGES]
    assert status == EN_COURS and missing == {f: "oui" for f in FLAGS} | {"patientele": "non", "categorie": "na"}
    row = page.text.split(f'data-offre="{NO_AGES}" data-statut', 1)[1].split("</tr>", 1)[0]
    assert ">✗<" in row and ">n.a.<" in row and "Finalisé" not in row


def test_same_as_the_territory_view(client: TestClient, services: Services) -> None:
    # the function the page uses and the territory computation agree offer by offer
    territory = {e.id: e for e in population(QualityData(services.engine, Scope("departement", "22")))}[EG_ID]
    org = services.store.read("Organization", EG_ID).resource()
    offers = [services.store.read("HealthcareService", i).resource() for i in (COMPLETE, NO_AGES, CLOSED)]
    loc_ids = [o["location"][0]["reference"].split("/")[1] for o in offers]
    places = {loc: services.store.read("Location", loc).resource() for loc in loc_ids}
    with services.engine.connect() as conn:
        one = establishment_population(conn, org, offers, places, region="53")
    assert one is not None and one.tracked
    assert {o.offer_id: o.flags for o in one.offers} == {o.offer_id: o.flags for o in territory.offers}
    assert one.status == territory.status == EN_COURS and one.departement == territory.departement == "22"

    # and /qualite/peuplement shows for this establishment what its offers page shows
    login(client, MANAGER)
    shown = shown_flags(client.get(f"/etablissements/{CH}/offres").text)
    login(client, "ars@test.fr")  # regional administrator of Bretagne
    pop = client.get("/qualite/peuplement", params={"departement": "22"})
    assert pop.status_code == 200, pop.text[:500]
    row = pop.text.split(f"CH DU PEUPLEMENT ({CH})", 1)[1].split("</tr>", 1)[0]
    cells = re.findall(r'<td class="num-cell">(\d+)</td>', row)
    assert "En cours" in row and int(cells[0]) == len(shown) == 2
    counts = {f: sum(flags[f] == "oui" for flags, _ in shown.values()) for f in FLAGS}
    assert [int(c) for c in cells[1:]] == [counts[f] for f in FLAGS]
    assert counts["patientele"] == 1 and counts["champ"] == 2 and counts["categorie"] == 0
