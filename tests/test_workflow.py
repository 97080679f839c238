"""The validation workflow (docs/workflow.md): transitions and who may do them, comments, audit, and consumers
seeing only the published version while a draft is in progress."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, select

from ror.access.people import Person, PersonRegistry
from ror.db.tables import audit_event, offer_change, person
from ror.directory import ids
from ror.errors import PreconditionFailed
from ror.geo.loader import load_geography
from ror.server import create_app
from ror.services import Services
from ror.store import ResourceStore
from ror.terminology.loader import load_nos
from ror.validation import ValidationFailed
from ror.workflow import WorkflowError
from ror.workflow.service import NotAllowed
from tests import validation_fixtures as vf

FINESS, OTHER = "350000001", "290000002"
PASSWORD = "un mot de passe assez long"


@pytest.fixture(scope="module")
def reference(engine: Engine, reference_dir: Path) -> Services:
    load_nos(engine, reference_dir / "nos")
    load_geography(engine, reference_dir / "geo")
    services = Services(engine)
    services.terminology.reload()
    services.geography.reload()
    return services


@pytest.fixture
def services(store: ResourceStore, engine: Engine, reference: Services) -> Services:
    region = {"system": ids.TRE_R30, "code": "53"}
    store.bulk_upsert(
        [
            {
                "resourceType": "Organization",
                "id": f"eg-{FINESS}",
                "name": "CH Rennes test",
                "meta": {"tag": [region]},
                "identifier": [{"system": ids.FINESS, "value": FINESS}],
            },
            {
                **vf.location(),
                "id": f"loc-{FINESS}",
                "managingOrganization": {"reference": f"Organization/eg-{FINESS}"},
            },
        ]
    )
    with engine.begin() as c:
        c.execute(delete(offer_change))
        c.execute(delete(audit_event))
    s = Services(engine)
    s.terminology = reference.terminology
    s.geography = reference.geography
    return s


@pytest.fixture
def people(services: Services, engine: Engine) -> dict[str, Person]:
    with engine.begin() as c:
        c.execute(delete(person))
    reg = PersonRegistry(engine)
    return {
        "editor": reg.add("editeur@ch.test", "Éditrice", "unit_editor", PASSWORD, [FINESS]),
        "head": reg.add("directeur@ch.test", "Directeur", "establishment_manager", PASSWORD, [FINESS]),
        "ars": reg.add("ars@bretagne.test", "ARS Bretagne", "regional_admin", PASSWORD, region="53"),
        "ars_idf": reg.add("ars@idf.test", "ARS IdF", "regional_admin", PASSWORD, region="11"),
        "stranger": reg.add("autre@ch.test", "Autre", "unit_editor", PASSWORD, [OTHER]),
    }


def offer(name: str = "Médecine polyvalente") -> dict[str, Any]:
    hs = vf.healthcare_service()
    for key in ("id", "meta"):
        hs.pop(key)
    hs["name"] = name
    hs["identifier"] = [{"value": "53/7777"}]
    hs["providedBy"] = {"reference": f"Organization/eg-{FINESS}"}
    hs["location"] = [{"reference": f"Location/loc-{FINESS}"}]
    hs["characteristic"] = [vf.cc(ids.TRE_R213, "28")]
    hs.pop("availableTime")
    return hs


def test_full_flow_from_draft_to_published(services: Services, people: dict[str, Person], engine: Engine) -> None:
    wf = services.workflow
    ch = wf.create_draft(people["editor"], FINESS, offer(), comment="nouvelle offre")
    assert ch.status == "brouillon" and not services.store.exists("HealthcareService", ch.res_id)
    ch = wf.act(people["editor"], ch.pk, "submit")
    assert ch.status == "soumis"
    with pytest.raises(NotAllowed):
        wf.act(people["head"], ch.pk, "review")  # relecture is the regional team's
    with pytest.raises(NotAllowed):
        wf.act(people["ars_idf"], ch.pk, "review")  # another region
    ch = wf.act(people["ars"], ch.pk, "review", "relu, RAS")
    assert ch.status == "valide"
    with pytest.raises(NotAllowed):
        wf.act(people["ars"], ch.pk, "publish")  # validation is the head's
    ch = wf.act(people["head"], ch.pk, "publish", "validé")
    assert ch.status == "publie"
    stored = services.store.read("HealthcareService", ch.res_id)
    assert stored.resource()["name"] == "Médecine polyvalente"
    steps = wf.transitions(ch.pk)
    assert [(t.from_status, t.to_status) for t in steps] == [
        (None, "brouillon"),
        ("brouillon", "soumis"),
        ("soumis", "valide"),
        ("valide", "publie"),
    ]
    assert [t.comment for t in steps] == ["nouvelle offre", None, "relu, RAS", "validé"]
    with engine.connect() as c:
        actions = c.execute(select(audit_event.c.action, audit_event.c.actor_id).order_by(audit_event.c.pk)).all()
    assert [a for a, _ in actions] == [
        "workflow:brouillon",
        "workflow:soumis",
        "workflow:valide",
        "create",  # the publication writes the new offer (write service audit), then the transition
        "workflow:publie",
    ]
    assert actions[3][1] == "person:directeur@ch.test"


def test_consumers_see_only_the_published_version(
    services: Services, people: dict[str, Person], engine: Engine
) -> None:
    wf = services.workflow
    first = wf.create_draft(people["editor"], FINESS, offer("Ancien nom"))
    for who, action in (("editor", "submit"), ("ars", "review"), ("head", "publish")):
        wf.act(people[who], first.pk, action)
    current = services.store.read("HealthcareService", first.res_id).resource()
    draft = wf.create_draft(people["editor"], FINESS, {**current, "name": "Nouveau nom"}, res_id=first.res_id)
    wf.act(people["editor"], draft.pk, "submit")
    with TestClient(create_app(engine)) as client:
        assert client.get(f"/fhir/HealthcareService/{first.res_id}").json()["name"] == "Ancien nom"
        found = client.get("/fhir/HealthcareService", params={"name": "Nouveau"}).json()
        assert found["total"] == 0
        wf.act(people["ars"], draft.pk, "review")
        wf.act(people["head"], draft.pk, "publish")
        assert client.get(f"/fhir/HealthcareService/{first.res_id}").json()["name"] == "Nouveau nom"
        assert client.get("/fhir/HealthcareService", params={"name": "Nouveau"}).json()["total"] == 1


def test_reject_needs_a_comment_and_goes_back_to_the_author(services: Services, people: dict[str, Person]) -> None:
    wf = services.workflow
    ch = wf.create_draft(people["editor"], FINESS, offer())
    wf.act(people["editor"], ch.pk, "submit")
    with pytest.raises(WorkflowError):
        wf.act(people["ars"], ch.pk, "reject", "  ")
    ch = wf.act(people["ars"], ch.pk, "reject", "La patientèle est incomplète")
    assert ch.status == "rejete"
    assert [c.pk for c in wf.pending_for(people["editor"])["brouillons"]] == [ch.pk]
    assert wf.transitions(ch.pk)[-1].comment == "La patientèle est incomplète"
    with pytest.raises(WorkflowError):
        wf.edit_draft(people["editor"], ch.pk, offer("x"))  # rework first
    wf.act(people["editor"], ch.pk, "rework")
    ch = wf.edit_draft(people["editor"], ch.pk, offer("Corrigé"))
    assert ch.status == "brouillon" and ch.content["name"] == "Corrigé"


def test_submission_needs_a_valid_resource(services: Services, people: dict[str, Person]) -> None:
    bad = offer()
    bad["extension"] = [e for e in bad["extension"] if e["url"] != ids.EXT_PATIENT_TYPE]
    ch = services.workflow.create_draft(people["editor"], FINESS, bad)
    with pytest.raises(ValidationFailed) as exc:
        services.workflow.act(people["editor"], ch.pk, "submit")
    assert exc.value.status == 422
    assert any(ids.EXT_PATIENT_TYPE in i.expression[0] for i in exc.value.issues)
    assert services.workflow.get(ch.pk).status == "brouillon"


def test_rights_of_authors(services: Services, people: dict[str, Person]) -> None:
    with pytest.raises(NotAllowed):
        services.workflow.create_draft(people["stranger"], FINESS, offer())
    ch = services.workflow.create_draft(people["ars"], FINESS, offer())  # the regional team may propose too
    with pytest.raises(NotAllowed):
        services.workflow.act(people["stranger"], ch.pk, "submit")


def test_publish_conflict_when_the_resource_changed_meanwhile(services: Services, people: dict[str, Person]) -> None:
    wf = services.workflow
    first = wf.create_draft(people["editor"], FINESS, offer())
    for who, action in (("editor", "submit"), ("ars", "review"), ("head", "publish")):
        wf.act(people[who], first.pk, action)
    current = services.store.read("HealthcareService", first.res_id).resource()
    draft = wf.create_draft(people["editor"], FINESS, {**current, "name": "Brouillon"}, res_id=first.res_id)
    services.store.update("HealthcareService", first.res_id, {**current, "name": "Changé ailleurs"})
    wf.act(people["editor"], draft.pk, "submit")
    wf.act(people["ars"], draft.pk, "review")
    with pytest.raises(PreconditionFailed):
        wf.act(people["head"], draft.pk, "publish")
    assert wf.get(draft.pk).status == "valide"


def test_pending_for_each_role(services: Services, people: dict[str, Person]) -> None:
    wf = services.workflow
    draft = wf.create_draft(people["editor"], FINESS, offer("a"))
    submitted = wf.create_draft(people["editor"], FINESS, offer("b"))
    wf.act(people["editor"], submitted.pk, "submit")
    reviewed = wf.create_draft(people["editor"], FINESS, offer("c"))
    wf.act(people["editor"], reviewed.pk, "submit")
    wf.act(people["ars"], reviewed.pk, "review")

    def pks(who: str) -> dict[str, list[int]]:
        return {k: [c.pk for c in v] for k, v in wf.pending_for(people[who]).items()}

    assert pks("editor") == {"brouillons": [draft.pk], "relecture": [], "validation": []}
    assert pks("ars") == {"brouillons": [draft.pk], "relecture": [submitted.pk], "validation": []}
    assert pks("head") == {"brouillons": [draft.pk], "relecture": [], "validation": [reviewed.pk]}
    assert pks("ars_idf") == {"brouillons": [], "relecture": [], "validation": []}
    assert pks("stranger") == {"brouillons": [], "relecture": [], "validation": []}


def _login(client: TestClient, email: str) -> None:
    client.cookies.clear()
    page = client.get("/connexion")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    r = client.post(
        "/connexion", data={"email": email, "password": PASSWORD, "csrf": csrf.group(1)}, follow_redirects=False
    )
    assert r.status_code == 303, r.text[:300]


def _act(client: TestClient, pk: int, action: str, comment: str = "") -> Any:
    page = client.get(f"/modifications/{pk}")
    assert f'value="{action}"' in page.text, page.text[:2000]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    return client.post(
        f"/modifications/{pk}",
        data={"csrf": csrf.group(1), "action": action, "commentaire": comment},
        follow_redirects=False,
    )


def test_pages_a_traiter_and_actions(services: Services, people: dict[str, Person], engine: Engine) -> None:
    ch = services.workflow.create_draft(people["editor"], FINESS, offer("Offre par les pages"))
    with TestClient(create_app(engine)) as client:
        _login(client, "editeur@ch.test")
        todo = client.get("/a-traiter")
        assert todo.status_code == 200 and "Offre par les pages" in todo.text
        assert _act(client, ch.pk, "submit").status_code == 303
        assert 'data-status="soumis"' in client.get(f"/modifications/{ch.pk}").text
        assert 'value="review"' not in client.get(f"/modifications/{ch.pk}").text  # not the editor's
        _login(client, "ars@bretagne.test")
        assert "Offre par les pages" in client.get("/a-traiter").text
        refused = _act(client, ch.pk, "reject")  # no comment
        assert refused.status_code == 409 and "comment" in refused.text
        assert _act(client, ch.pk, "review", "relu").status_code == 303
        _login(client, "directeur@ch.test")
        assert _act(client, ch.pk, "publish").status_code == 303
        page = client.get(f"/modifications/{ch.pk}").text
        assert 'data-status="publie"' in page and "relu" in page
        assert client.get(f"/fhir/HealthcareService/{ch.res_id}").json()["name"] == "Offre par les pages"
        _login(client, "autre@ch.test")
        assert client.get(f"/modifications/{ch.pk}").status_code == 403
