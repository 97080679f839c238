"""The offer forms over HTTP (TestClient on the ASGI app, the built-in seed of département 22 + an establishment
without any offer): every field lands in the workflow draft (never in the store before publication), profile
validation messages come back next to their field, rights per establishment, CSRF, duplicate, close / reopen, the
NOS pickers' suggestions, and the place proposed with a new offer moving through the workflow with it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, func, select

from ror.access.people import PersonRegistry
from ror.db.tables import offer_change
from ror.directory import ids
from ror.server import create_app
from ror.services import Services
from ror.web.offer_form import EXT_EQUIPMENT, EXT_HS_CONTACT, R212
from ror.write.closure import CLOSING_ID
from tests.test_web_pages import FINESS, PASSWORD, csrf_of, load_seed_data, login

EMPTY = "220099990"  # an establishment of the seed's region without any offer (added here)
EMPTY_PEOPLE = {
    "redacteur@vide.test": ("establishment_manager", [EMPTY], None),
    "directeur@vide.test": ("establishment_manager", [EMPTY], None),
}


def add_empty_establishment(services: Services) -> None:
    """A geographic establishment in Saint-Brieuc (région 53) with no offer and no place but its address; its two
    managers (the author and the head)."""
    services.store.update(
        "Organization",
        ids.eg_id(EMPTY),
        {
            "resourceType": "Organization",
            "id": ids.eg_id(EMPTY),
            "meta": {"tag": [{"system": ids.TRE_R30, "code": "53"}]},
            "identifier": [{"system": ids.FINESS, "value": EMPTY}],
            "active": True,
            "name": "CLINIQUE DES ESSAIS",
            "address": [{"line": ["1 rue des Essais"], "postalCode": "22000", "city": "Saint-Brieuc"}],
        },
    )
    people = PersonRegistry(services.engine)
    for email, (role, finess, region) in EMPTY_PEOPLE.items():
        people.add(email, email.split("@")[0].title(), role, PASSWORD, finess, region)


@pytest.fixture(scope="module")
def services(engine: Engine, reference_dir: Path) -> Services:
    services = load_seed_data(engine, reference_dir)
    add_empty_establishment(services)
    return services


@pytest.fixture(scope="module")
def client(engine: Engine, services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(engine)) as c:
        yield c


@pytest.fixture(autouse=True)
def no_changes(engine: Engine, services: Services) -> None:
    with engine.begin() as c:
        c.execute(delete(offer_change))


def full_form(csrf: str, **over: str) -> dict[str, str]:
    form = {
        "csrf": csrf,
        "nom": "Réanimation polyvalente - Hospitalisation complète",
        "activite": "127 — Réanimation polyvalente",
        "mode": "28",
        "champ": "01",
        "categorie": "121",
        "accueil": "02",
        "sensible": "1",
        "age_min": "18",
        "age_max": "120",
        **{f"j-{d}": "1" for d in ("mon", "tue", "wed", "thu", "fri", "sat")},
        **{f"debut-{d}": "08:00" for d in ("mon", "tue", "wed", "thu", "fri")},
        **{f"fin-{d}": "18:30" for d in ("mon", "tue", "wed", "thu", "fri")},
        "debut-sat": "09:00",
        "fin-sat": "12:00",
        "debut-sun": "08:00",
        "fin-sun": "18:00",  # not open: ignored
        "fe-0-motif": "Travaux",
        "fe-0-debut": "2026-08-01",
        "fe-0-fin": "2026-08-15",
        "ct-0-nature": "06",
        "ct-0-canal": "2",
        "ct-0-valeur": "02 96 00 00 01",
        "ct-0-niveau": "1",
        "ct-1-nature": "04",
        "ct-1-canal": "8",
        "ct-1-valeur": "02 96 00 00 99",
        "ct-1-niveau": "3",
        "lieu_nom": "Réanimation — bâtiment B",
        "lieu_fonction": "001",
        "lieu_adresse": "1 rue des Essais",
        "lieu_cp": "22000",
        "lieu_commune": "22278 — Saint-Brieuc",
        "lieu_id_externe": "REA-B",
        "eq-0-type": "089",
        "eq-0-nombre": "2",
    }
    form.update(over)
    return form


def _change(engine: Engine, pk: int) -> Any:
    with engine.connect() as c:
        return c.execute(select(offer_change).where(offer_change.c.pk == pk)).one()


def _changes(engine: Engine) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(offer_change)).scalar_one())


def _new_offer(client: TestClient, **over: str) -> Any:
    page = client.get(f"/etablissements/{EMPTY}/offres/nouvelle")
    assert page.status_code == 200
    return client.post(
        f"/etablissements/{EMPTY}/offres/nouvelle", data=full_form(csrf_of(page.text), **over), follow_redirects=False
    )


def _pk(response: Any) -> int:
    assert response.status_code == 303, response.text[:2000]
    m = re.fullmatch(r"/modifications/(\d+)", response.headers["location"])
    assert m, response.headers["location"]
    return int(m.group(1))


def _codes(items: list[dict[str, Any]], system: str) -> list[str]:
    return [c["code"] for cc in items for c in cc.get("coding") or [] if c.get("system") == system]


def _ext(res: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in res.get("extension") or [] if e.get("url") == url]


def test_the_form_is_labelled_and_linked_from_the_navigation(client: TestClient) -> None:
    login(client, "redacteur@vide.test")
    home = client.get("/")
    assert 'href="/offres"' in home.text and 'href="/a-traiter"' in home.text
    r = client.get("/offres", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/etablissements/{EMPTY}/offres"
    offers = client.get(f"/etablissements/{EMPTY}/offres")
    assert offers.status_code == 200 and 'id="aucune-offre"' in offers.text
    form = client.get(f"/etablissements/{EMPTY}/offres/nouvelle").text
    names = set(re.findall(r'<(?:input|select)[^>]* name="([^"]+)"', form)) - {"csrf"}
    assert {
        "nom",
        "activite",
        "mode",
        "champ",
        "age_min",
        "age_max",
        "h247",
        "j-mon",
        "debut-mon",
        "fe-0-debut",
    } <= names
    assert {"ct-0-canal", "ct-0-niveau", "ct-0-valeur", "lieu_commune", "eq-0-type", "eq-0-nombre"} <= names
    for name in names - {"csrf"}:  # every field has its label
        assert f'for="{name}"' in form, name
    assert 'data-suggest="/api/web/nomenclatures/J17"' in form and "cdn" not in form.lower()
    login(client, "lecteur@test.fr")
    assert 'href="/a-traiter"' not in client.get("/").text


def test_every_field_lands_in_the_drafts_not_in_the_store(
    client: TestClient, services: Services, engine: Engine
) -> None:
    login(client, "redacteur@vide.test")
    pk = _pk(_new_offer(client))
    row = _change(engine, pk)
    assert row.status == "brouillon" and row.res_type == "HealthcareService" and row.establishment == EMPTY
    change = services.workflow.get(pk)
    hs = change.content
    assert not services.store.exists("HealthcareService", change.res_id)
    assert hs["name"] == "Réanimation polyvalente - Hospitalisation complète"
    assert hs["providedBy"] == {"reference": f"Organization/eg-{EMPTY}"}
    assert _codes(hs["specialty"], ids.TRE_R211) == ["127"]
    assert hs["specialty"][0]["coding"][0]["display"] == "Réanimation polyvalente"
    assert _codes(hs["characteristic"], ids.TRE_R213) == ["28"]
    assert _codes(hs["characteristic"], ids.nos("TRE_R240-TemporaliteAccueil")) == ["02"]
    assert _codes(hs["type"], ids.TRE_R227) == ["01"] and _codes(hs["category"], ids.TRE_R244) == ["121"]
    assert _ext(hs, ids.EXT_SENSITIVE_UNIT) == [{"url": ids.EXT_SENSITIVE_UNIT, "valueBoolean": True}]
    age = _ext(hs, ids.EXT_PATIENT_TYPE)[0]["extension"][0]["valueRange"]
    assert (age["low"]["value"], age["high"]["value"], age["low"]["code"]) == (18, 120, "a")
    times = {
        tuple(t["daysOfWeek"]): (t.get("availableStartTime"), t.get("availableEndTime")) for t in hs["availableTime"]
    }
    assert times == {("mon", "tue", "wed", "thu", "fri"): ("08:00:00", "18:30:00"), ("sat",): ("09:00:00", "12:00:00")}
    assert hs["notAvailable"] == [
        {"id": "fermeture-1", "description": "Travaux", "during": {"start": "2026-08-01", "end": "2026-08-15"}}
    ]
    contacts = _ext(hs, EXT_HS_CONTACT)
    assert len(contacts) == 2
    levels = [
        c["code"]
        for contact in contacts
        for sub in contact["extension"]
        if sub["url"].endswith("ror-confidentiality-level")
        for c in sub["valueCodeableConcept"]["coding"]
    ]
    assert levels == ["1", "3"]
    telecom = next(s for s in contacts[1]["extension"] if s["url"].endswith("-telecom"))
    assert {"url": "telecomAddress", "valueString": "02 96 00 00 99"} in telecom["extension"]
    assert hs["identifier"][0]["value"].startswith("53/")

    # the place: a draft of its own that moves with the offer
    (place,) = services.workflow.companions(change)
    loc = place.content
    assert hs["location"] == [{"reference": f"Location/{place.res_id}"}]
    assert not services.store.exists("Location", place.res_id)
    assert loc["name"] == "Réanimation — bâtiment B" and _codes(loc["type"], ids.TRE_R343) == ["001"]
    assert loc["managingOrganization"] == {"reference": f"Organization/eg-{EMPTY}"}
    assert loc["address"] == {"line": ["1 rue des Essais"], "postalCode": "22000", "city": "Saint-Brieuc"}
    commune = _ext(loc, ids.EXT_COMMUNE_COG)[0]["valueCodeableConcept"]["coding"][0]
    assert commune["code"] == "22278" and 48 < loc["position"]["latitude"] < 49
    assert [i["value"] for i in loc["identifier"] if i["type"]["coding"][0]["code"] == "26"] == ["REA-B"]
    equipment = _ext(loc, EXT_EQUIPMENT)[0]["extension"]
    assert equipment[0]["valueCodeableConcept"]["coding"][0] == {
        "system": R212,
        "code": "089",
        "display": equipment[0]["valueCodeableConcept"]["coding"][0]["display"],
    }
    assert {"url": "nbInService", "valueInteger": 2} in equipment
    assert services.workflow.validate(change).ok and services.workflow.validate(place).ok

    # the draft page shows the values back; saving it again with the 24/7 shortcut updates the same drafts
    page = client.get(f"/etablissements/{EMPTY}/offres/brouillons/{pk}")
    assert page.status_code == 200 and 'value="127 — Réanimation polyvalente"' in page.text
    assert 'value="REA-B"' in page.text and 'value="02 96 00 00 99"' in page.text
    r = client.post(
        f"/etablissements/{EMPTY}/offres/brouillons/{pk}",
        data=full_form(csrf_of(page.text), h247="1", nom="Réanimation 24/7"),
        follow_redirects=False,
    )
    assert _pk(r) == pk and _changes(engine) == 2
    hs = services.workflow.get(pk).content
    assert hs["name"] == "Réanimation 24/7"
    assert hs["availableTime"] == [
        {
            "extension": hs["availableTime"][0]["extension"],
            "daysOfWeek": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
            "allDay": True,
        }
    ]
    assert (
        'id="h247" name="h247" value="1" checked' in client.get(f"/etablissements/{EMPTY}/offres/brouillons/{pk}").text
    )


def test_validation_errors_come_back_next_to_their_field(
    client: TestClient, services: Services, engine: Engine
) -> None:
    login(client, "redacteur@vide.test")
    # profile errors: a code outside JDV_J17, no champ d'activité, age range upside down → the draft is kept
    r = _new_offer(client, activite="999", champ="", age_min="90", age_max="10")
    assert r.status_code == 200, r.text[:500]
    html = r.text
    for name in ("activite", "champ", "age_min"):
        assert f'id="{name}-err"' in html, name
        assert re.search(rf'id="{name}"[^>]*aria-describedby="[^"]*{name}-err"[^>]*aria-invalid="true"', html), name
    assert re.search(r'id="activite-err">[^<]*JDV_J17', html)
    assert re.search(r'id="age_min-err">[^<]*inférieur ou égal', html)
    assert 'href="#champ"' in html  # the summary links to the field
    assert "Brouillon n°" in html and _changes(engine) == 2  # saved as a draft, not submittable
    pk = int(re.search(r"Brouillon n° (\d+)", html).group(1))  # type: ignore[union-attr]
    submit = client.post(
        f"/modifications/{pk}", data={"csrf": csrf_of(html), "action": "submit"}, follow_redirects=False
    )
    assert submit.status_code == 422 and services.workflow.get(pk).status == "brouillon"
    # the same messages are shown when the draft is opened again
    again = client.get(f"/etablissements/{EMPTY}/offres/brouillons/{pk}").text
    assert 'id="champ-err"' in again and 'id="activite-err"' in again

    # form errors (not a number, unknown commune, a contact without channel): nothing is saved
    before = _changes(engine)
    form = full_form("x", age_max="beaucoup", lieu_commune="Nulle-Part-sur-Mer", **{"ct-0-canal": ""})
    page = client.get(f"/etablissements/{EMPTY}/offres/nouvelle")
    form["csrf"] = csrf_of(page.text)
    r = client.post(f"/etablissements/{EMPTY}/offres/nouvelle", data=form)
    assert r.status_code == 400
    for name in ("age_max", "lieu_commune", "ct-0-canal"):
        assert f'id="{name}-err"' in r.text, name
    assert 'value="beaucoup"' in r.text  # what was typed comes back
    assert _changes(engine) == before


def test_rights_per_establishment(client: TestClient, services: Services, engine: Engine) -> None:
    login(client, "redacteur@vide.test")
    pk = _pk(_new_offer(client))
    # a manager of another establishment
    login(client, "cadre@test.fr")
    csrf = csrf_of(client.get("/").text)
    for url in (
        f"/etablissements/{EMPTY}/offres",
        f"/etablissements/{EMPTY}/offres/nouvelle",
        f"/etablissements/{EMPTY}/offres/brouillons/{pk}",
    ):
        r = client.get(url)
        assert r.status_code == 403 and "Accès refusé" in r.text, url
    r = client.post(f"/etablissements/{EMPTY}/offres/nouvelle", data=full_form(csrf))
    assert r.status_code == 403
    r = client.post(f"/etablissements/{EMPTY}/offres/brouillons/{pk}", data=full_form(csrf, nom="piraté"))
    assert r.status_code == 403 and services.workflow.get(pk).content["name"] != "piraté"
    assert _changes(engine) == 2
    # a viewer writes nothing; the regional administrator of the region may propose changes
    login(client, "lecteur@test.fr")
    assert client.get(f"/etablissements/{EMPTY}/offres").status_code == 403
    login(client, "ars@test.fr")
    assert client.get(f"/etablissements/{EMPTY}/offres").status_code == 200
    # their own establishment works for the other manager
    login(client, "cadre@test.fr")
    assert client.get(f"/etablissements/{FINESS}/offres").status_code == 200


def test_csrf_is_enforced(client: TestClient, services: Services, engine: Engine) -> None:
    login(client, "redacteur@vide.test")
    form = full_form("not-the-token")
    r = client.post(f"/etablissements/{EMPTY}/offres/nouvelle", data=form)
    assert r.status_code == 403 and "CSRF" in r.text
    form.pop("csrf")
    assert client.post(f"/etablissements/{EMPTY}/offres/nouvelle", data=form).status_code == 403
    hs_id = f"hs-{FINESS}-rea-adu"
    login(client, "cadre@test.fr")
    r = client.post(
        f"/etablissements/{FINESS}/offres/{hs_id}/fermeture", data={"action": "fermer", "date": "2026-12-01"}
    )
    assert r.status_code == 403
    assert _changes(engine) == 0


def test_publication_then_edit_duplicate_close_and_reopen(
    client: TestClient, services: Services, engine: Engine
) -> None:
    wf = services.workflow
    login(client, "redacteur@vide.test")
    pk = _pk(_new_offer(client))
    hs_id = wf.get(pk).res_id
    (place,) = wf.companions(wf.get(pk))

    def act(email: str, action: str, comment: str = "") -> None:
        login(client, email)
        page = client.get(f"/modifications/{pk}")
        r = client.post(
            f"/modifications/{pk}",
            data={"csrf": csrf_of(page.text), "action": action, "commentaire": comment},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text[:1000]

    act("redacteur@vide.test", "submit")
    assert wf.get(place.pk).status == "soumis"  # the place moves with its offer
    act("ars@test.fr", "review", "relu")
    assert not services.store.exists("HealthcareService", hs_id)
    act("directeur@vide.test", "publish", "validé")
    assert wf.get(pk).status == "publie" and wf.get(place.pk).status == "publie"
    hs = services.store.read("HealthcareService", hs_id).resource()
    assert hs["location"] == [{"reference": f"Location/{place.res_id}"}]
    assert services.store.read("Location", place.res_id).resource()["name"] == "Réanimation — bâtiment B"
    assert "avec la modification" in (wf.transitions(place.pk)[-1].comment or "")

    # the establishment page lists it; editing the name only proposes an offer change (the place is unchanged)
    login(client, "redacteur@vide.test")
    listing = client.get(f"/etablissements/{EMPTY}/offres").text
    assert f'data-offre="{hs_id}"' in listing
    page = client.get(f"/etablissements/{EMPTY}/offres/{hs_id}/modifier")
    assert page.status_code == 200 and 'value="Réanimation polyvalente - Hospitalisation complète"' in page.text
    values = full_form(csrf_of(page.text), nom="Réanimation polyvalente (modifiée)")
    edit = _pk(client.post(f"/etablissements/{EMPTY}/offres/{hs_id}/modifier", data=values, follow_redirects=False))
    assert wf.get(edit).base_version == 1 and wf.get(edit).res_id == hs_id
    assert wf.companions(wf.get(edit)) == []
    assert services.store.read("HealthcareService", hs_id).resource()["name"].endswith("Hospitalisation complète")
    # a second edit while one is under way continues the same draft
    r = client.get(f"/etablissements/{EMPTY}/offres/{hs_id}/modifier", follow_redirects=False)
    assert r.headers["location"] == f"/etablissements/{EMPTY}/offres/brouillons/{edit}"

    # duplicate: a new offer and a new place, prefilled, without the place's external id
    copy_page = client.get(f"/etablissements/{EMPTY}/offres/nouvelle?modele={hs_id}")
    assert "(copie)" in copy_page.text and 'value="REA-B"' not in copy_page.text
    copy_values = dict(re.findall(r'<input[^>]* name="([^"]+)"[^>]* value="([^"]*)"', copy_page.text))
    assert copy_values["activite"] == "127 — Réanimation polyvalente" and copy_values["lieu_commune"].startswith(
        "22278"
    )
    form = full_form(csrf_of(copy_page.text), nom="Réanimation (copie)", lieu_id_externe="")
    dup = _pk(client.post(f"/etablissements/{EMPTY}/offres/nouvelle?modele={hs_id}", data=form, follow_redirects=False))
    dup_change = wf.get(dup)
    assert dup_change.res_id != hs_id and dup_change.base_version is None
    assert dup_change.content["identifier"][0]["value"] != hs["identifier"][0]["value"]
    assert wf.companions(dup_change)[0].res_id != place.res_id

    # close (a draft too), then reopen
    csrf = csrf_of(listing)
    people = PersonRegistry(engine)
    wf.act(people.get("redacteur@vide.test"), edit, "submit")
    r = client.post(
        f"/etablissements/{EMPTY}/offres/{hs_id}/fermeture",
        data={"csrf": csrf, "action": "fermer", "date": "2026-12-01", "reouverture": "2027-01-15"},
    )
    assert r.status_code == 409  # a change is already under way
    wf.act(people.get("ars@test.fr"), edit, "reject", "non")
    wf.act(people.get("redacteur@vide.test"), edit, "rework")
    close = _pk(
        client.post(
            f"/etablissements/{EMPTY}/offres/{hs_id}/fermeture",
            data={"csrf": csrf, "action": "fermer", "date": "2026-12-01", "reouverture": "2027-01-15"},
            follow_redirects=False,
        )
    )
    assert close == edit  # the open draft gets the closure
    closing = [n for n in wf.get(close).content["notAvailable"] if n["id"] == CLOSING_ID]
    assert closing[0]["during"] == {"start": "2026-12-01", "end": "2027-01-15"}
    reopen = _pk(
        client.post(
            f"/etablissements/{EMPTY}/offres/{hs_id}/fermeture",
            data={"csrf": csrf, "action": "rouvrir"},
            follow_redirects=False,
        )
    )
    assert not [n for n in wf.get(reopen).content.get("notAvailable", []) if n["id"] == CLOSING_ID]


def test_pickers_suggest_current_codes_with_labels(client: TestClient, services: Services) -> None:
    login(client, "redacteur@vide.test")
    found = client.get("/api/web/nomenclatures/J17", params={"q": "réanimation poly"}).json()
    assert {"code": "127", "label": "Réanimation polyvalente"} in found
    current = {c.code for c in services.terminology.expand("JDV_J17-ActiviteOperationnelle-ROR")}
    every = client.get("/api/web/nomenclatures/J17", params={"q": "", "limit": 50}).json()
    assert every and all(item["code"] in current for item in every)
    assert client.get("/api/web/nomenclatures/J18", params={"q": "bariatrique"}).json()
    assert client.get("/api/web/nomenclatures/J999").status_code == 404
    client.cookies.clear()
    assert client.get("/api/web/nomenclatures/J17", follow_redirects=False).status_code == 303
