"""Quality engine: each rule with a conforming and a violating case, anomalies as RORTask searchable over HTTP,
idempotent re-runs that close fixed anomalies, weekly indicators, population flags; the /qualite page and CLI."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from ror.db.tables import quality_indicator, resource
from ror.directory import ids
from ror.directory.scope import Scope
from ror.directory.units import UNIT_TYPES, Site, capacity_indicator, healthcare_service, unit_location
from ror.quality.data import QualityData
from ror.quality.engine import QualityRun, run_quality, run_rule
from ror.quality.population import A_FAIRE, EN_COURS, FINALISE, population
from ror.quality.rules import ALL_RULES, RULES_BY_ID
from ror.quality.rules.freshness import conforming
from ror.quality.tasks import RULE_TAG, task_id
from ror.search.normalise import utcnow
from ror.server import create_app
from ror.store import ResourceStore
from ror.store.meta import REGION_SYSTEM

SCOPE = Scope.parse("region:53")
FLAT_HEADER = (
    "nofinesset;nofinessej;rs;adresse_ligne1;adresse_ligne2;code_postal;ville;telephone;categetab;libcategetab;"
    "categagretab;libcategagretab;siret;codeape;codesph;libsph;dateouv;datemaj;coordxet;coordyet;crs;latitude;longitude"
)
# FINESS ET -> (EJ, name, category) as the FINESS extract says
FINESS = {
    "350000001": ("350000100", "CH CONFORME", "355"),
    "350000002": ("350000200", "CH MAL CATEGORISE", "355"),
    "350000003": ("350000300", "EHPAD MAL RATTACHE", "500"),
    "350000004": ("350000400", "EHPAD ABSENT DU ROR", "500"),
    "350000006": ("350000600", "IME DES LANDES", "183"),
}
SITES = {f: Site(f, "53", "35238", "Rennes", {"line": ["1 RUE X"], "city": "RENNES", "postalCode": "35000"}) for f in
         ("350000001", "350000002", "350000003", "350000005", "350000006")}  # fmt: skip


def write_reference(root: Path) -> Path:
    (root / "finess").mkdir(parents=True)
    lines = [FLAT_HEADER]
    for et, (ej, name, cat) in FINESS.items():
        lines.append(f"{et};{ej};{name};;;35000;RENNES;;{cat};;;;;;;;2000-01-01;;;;;;")
    with gzip.open(root / "finess" / "finess_et_20210108_flat_from_fhir.csv.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    sae = root / "capacity" / "sae-2023"
    sae.mkdir(parents=True)
    rea = ["BOR;AN;FI;RS;FI_EJ;UNI;LIT"]
    rea += ["REA;2023;350000001;X;Y;REAADU;10", "REA;2023;350000002;X;Y;REAADU;5"]
    rea += ["REA;2023;350000001;X;Y;REAENF;6", "REA;2023;350000002;X;Y;REAENF;4"]
    (sae / "REA_2023r.csv").write_text("\n".join(rea) + "\n", encoding="cp1252")
    perinat = ["BOR;AN;FI;RS;FI_EJ;LIT_REA", "PERINAT;2023;350000001;X;Y;3", "PERINAT;2023;350000002;X;Y;2"]
    (sae / "PERINAT_2023r.csv").write_text("\n".join(perinat) + "\n", encoding="cp1252")
    return root


def eg(finess: str, ej: str, name: str, category: str, *, id_nat: str | None = None, active: bool = True) -> dict:
    ident = [{"system": ids.FINESS, "value": finess}, {"system": ids.ID_NAT_STRUCT, "value": id_nat or "1" + finess}]
    return {
        "resourceType": "Organization",
        "id": ids.eg_id(finess),
        "meta": {"tag": [{"system": REGION_SYSTEM, "code": "53"}]},
        "identifier": ident,
        "active": active,
        "type": [{"coding": [{"system": ids.TRE_R66, "code": category}]}],
        "name": name,
        "address": [
            {"extension": [{"url": ids.EXT_FR_INSEE_CODE, "valueCoding": {"system": ids.TRE_R13, "code": "35238"}}]}
        ],
        "partOf": {"reference": f"Organization/{ids.ej_id(ej)}"},
    }


def ej(finess: str) -> dict:
    return {
        "resourceType": "Organization",
        "id": ids.ej_id(finess),
        "meta": {"tag": [{"system": REGION_SYSTEM, "code": "53"}]},
        "identifier": [{"system": ids.FINESS, "value": finess}, {"system": ids.ID_NAT_STRUCT, "value": "1" + finess}],
    }


def offer(
    finess: str,
    key: str,
    name: str,
    *,
    activity: str | None = None,
    mode: str | None = None,
    sensitive: bool = False,
    category: str | None = None,
    reception: str | None = None,
) -> dict:
    res = healthcare_service(SITES[finess], UNIT_TYPES["med"], sensitive=sensitive)
    res["id"] = ids.unit_service_id(finess, key)
    res["name"] = name
    res["location"] = [{"reference": f"Location/{ids.unit_location_id(finess, key)}"}]
    if activity:
        res["specialty"] = [{"coding": [{"system": ids.TRE_R211, "code": activity}]}]
    chars = [{"coding": [{"system": ids.TRE_R213, "code": mode or "28"}]}]
    if reception:
        chars.append({"coding": [{"system": ids.nos("TRE_R240-TemporaliteAccueil"), "code": reception}]})
    res["characteristic"] = chars
    res.pop("category", None)
    if category:
        res["category"] = [{"coding": [{"system": ids.TRE_R244, "code": category}]}]
    return res


def place(finess: str, key: str, *caps: dict) -> dict:
    loc = unit_location(SITES[finess], UNIT_TYPES["med"], caps)
    loc["id"] = ids.unit_location_id(finess, key)
    return loc


def cap(status: str, nb: int, when: Any, nature: str = "01") -> dict:
    return capacity_indicator(nature, status, "01", nb, "01", when)


CONTACT = {
    "url": ids.SD + "ror-healthcareservice-contact",
    "extension": [
        {
            "url": "ror-healthcareservice-contact-telecom",
            "extension": [
                {"url": "telecomAddress", "valueString": "0299000000"},
                {"url": ids.EXT_TELECOM_CHANNEL, "valueCodeableConcept": {"coding": [{"code": "2"}]}},
                {"url": ids.EXT_TELECOM_CONFIDENTIALITY, "valueCodeableConcept": {"coding": [{"code": "1"}]}},
            ],
        }
    ],
}


def world() -> list[dict]:
    now = utcnow()
    complete = offer("350000001", "rea", "Réanimation polyvalente", activity="127")
    complete["extension"].append(CONTACT)
    return [
        ej("350000100"),
        ej("350000200"),
        ej("350000300"),
        ej("350000999"),
        eg("350000001", "350000100", "CH CONFORME", "355"),
        eg("350000002", "350000200", "CH MAL CATEGORISE", "365"),  # CO4: FINESS says 355
        eg("350000003", "350000999", "EHPAD MAL RATTACHE", "500"),  # ST2: FINESS EJ is 350000300
        eg("350000005", "350000100", "CLINIQUE FERMEE AU FINESS", "365", id_nat="1350000001"),  # EX2, ST3 dup
        eg("350000006", "350000600", "IME DES LANDES", "183"),
        # CO1
        offer("350000001", "urg", "Urgences adultes", activity="157", mode="33"),
        offer("350000002", "sau", "Accueil SAU", activity="249", mode="33"),
        # CO3
        offer("350000001", "uhsa", "UHSA de Rennes", activity="229"),
        offer("350000001", "usmp", "USMP maison d'arrêt", activity="229", sensitive=True),
        offer("350000002", "flag", "Médecine interne", activity="083", sensitive=True),
        # EX3 / EX4 / EX5 (SAE: 350000001 and 350000002 have REAADU, REAENF, LIT_REA)
        complete,
        offer("350000002", "reaped", "Réanimation pédiatrique", activity="130"),
        offer("350000001", "reaneo", "Réanimation néonatale", activity="128"),
        # CP5 / CP6 (IME)
        offer("350000006", "hebok", "Internat IME", activity="293", mode="46", category="40", reception="02"),
        offer("350000006", "hebko", "Internat IME bis", activity="293", mode="46"),
        place("350000006", "hebok", cap("01", 20, now, nature="02")),
        place("350000006", "hebko"),
        # CAP1 / CAP2
        place("350000001", "rea", cap("01", 10, now), cap("02", 3, now)),
        place("350000001", "urg", cap("01", 10, now), cap("02", 12, now)),  # more available than installed
        place("350000002", "sau", cap("01", 8, now), cap("02", 1, now - timedelta(days=3))),  # stale
    ]


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    return write_reference(tmp_path / "ref")


@pytest.fixture
def loaded(store: ResourceStore, engine: Engine, reference: Path) -> ResourceStore:
    with engine.begin() as c:
        c.execute(quality_indicator.delete())
    store.bulk_upsert(world())
    return store


@pytest.fixture
def first(loaded: ResourceStore, reference: Path) -> QualityRun:
    return run_quality(loaded, SCOPE, reference)


def verdicts(run: QualityRun, rule: str) -> dict[str, bool]:
    result = next(r for r in run.results if r.rule.id == rule)
    assert result.status == "ok", result.reason
    return {c.focus_id: c.ok for c in result.checks}


EXPECTED: dict[str, tuple[str, str]] = {  # rule -> (a conforming object, a violating object)
    "CO1": ("hs-350000001-urg", "hs-350000002-sau"),
    "CO3": ("hs-350000001-usmp", "hs-350000001-uhsa"),
    "CO4": ("eg-350000001", "eg-350000002"),
    "ST2": ("eg-350000001", "eg-350000003"),
    "ST3": ("eg-350000002", "eg-350000005"),
    "CP5": ("hs-350000006-hebok", "hs-350000006-hebko"),
    "CP6": ("hs-350000006-hebok", "hs-350000006-hebko"),
    "EX1.2": ("finess:350000001", "finess:350000004"),
    "EX2": ("eg-350000001", "eg-350000005"),
    "EX3": ("eg-350000001", "eg-350000002"),
    "EX4": ("eg-350000002", "eg-350000001"),
    "EX5": ("eg-350000001", "eg-350000002"),
    "CAP1": ("loc-350000001-rea", "loc-350000001-urg"),
    "CAP2": ("loc-350000001-rea", "loc-350000002-sau"),
}


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_rule_conforming_and_violating(first: QualityRun, rule: str) -> None:
    good, bad = EXPECTED[rule]
    v = verdicts(first, rule)
    assert v[good] is True
    assert v[bad] is False


def test_every_rule_is_documented_and_tested() -> None:
    assert set(EXPECTED) | {"RE1.2"} == set(RULES_BY_ID)
    for r in ALL_RULES:
        assert r.id and r.title and r.description and r.needs and r.theme


def test_co3_reverse_check_and_st3_both_members(first: QualityRun) -> None:
    assert verdicts(first, "CO3")["hs-350000002-flag"] is False  # flagged sensitive without any clue
    st3 = verdicts(first, "ST3")
    assert st3["eg-350000001"] is False and st3["eg-350000005"] is False  # same idNatStruct


def test_freshness_thresholds_and_re12(loaded: ResourceStore, reference: Path) -> None:
    assert conforming(0, 0) and conforming(3, 1) and not conforming(3, 0)
    assert conforming(8, 2) and not conforming(9, 2)  # 2/9 = 0.22
    fresh = run_rule(RULES_BY_ID["RE1.2"], QualityData(loaded.engine, SCOPE, reference))
    assert {c.focus_id: c.ok for c in fresh.checks}["eg-350000001"] is True
    later = QualityData(loaded.engine, SCOPE, reference, now=utcnow() + timedelta(days=400))
    stale = {c.focus_id: c for c in run_rule(RULES_BY_ID["RE1.2"], later).checks}
    assert stale["eg-350000001"].ok is False and stale["eg-350000001"].error_value == "0/5"
    assert stale["eg-350000003"].ok is True  # no offer: N = 0


def test_rules_without_their_data_say_so(loaded: ResourceStore) -> None:
    data = QualityData(loaded.engine, SCOPE, None)
    for rule in ("CO4", "ST2", "EX1.2", "EX2", "EX3", "EX4", "EX5"):
        result = run_rule(RULES_BY_ID[rule], data)
        assert result.status == "not-applicable" and "needs" in result.reason
    assert run_rule(RULES_BY_ID["CO1"], data).status == "ok"


def _tasks(engine: Engine) -> dict[str, tuple[int, dict]]:
    import orjson

    with engine.connect() as c:
        rows = c.execute(
            select(resource.c.res_id, resource.c.version_id, resource.c.content).where(resource.c.res_type == "Task")
        ).all()
    return {r.res_id: (r.version_id, orjson.loads(r.content)) for r in rows}


def test_anomalies_are_tasks_rerun_is_idempotent_and_fixes_close_them(
    first: QualityRun, loaded: ResourceStore, reference: Path, engine: Engine
) -> None:
    n = sum(len(r.anomalies) for r in first.results)
    assert first.tasks.opened == n > 0
    tasks = _tasks(engine)
    assert len(tasks) == n
    co4 = tasks[task_id("CO4", "Organization", "eg-350000002")][1]
    assert co4["status"] == "ready" and co4["focus"] == {"reference": "Organization/eg-350000002"}
    inputs = {i["type"]["coding"][0]["code"]: i for i in co4["input"]}
    assert inputs["ruleErrorId"]["valueString"] == "CO4"
    assert (inputs["errorValue"]["valueString"], inputs["proposedValue"]["valueString"]) == ("365", "355")
    assert "TRE_R66" in inputs["pathElementError"]["valueExpression"]["expression"]
    ex12 = tasks[task_id("EX1.2", "Organization", "finess:350000004")][1]
    assert ex12["focus"]["identifier"] == {"system": ids.FINESS, "value": "350000004"}

    again = run_quality(loaded, SCOPE, reference)
    assert (again.tasks.opened, again.tasks.closed, again.tasks.kept) == (0, 0, n)
    assert {k: v[0] for k, v in _tasks(engine).items()} == {k: v[0] for k, v in tasks.items()}  # no new version

    fixed = eg("350000002", "350000200", "CH MAL CATEGORISE", "355")
    loaded.bulk_upsert([fixed])
    third = run_quality(loaded, SCOPE, reference, rules=["CO4"])
    assert (third.tasks.closed, third.tasks.opened) == (1, 0)
    version, task = _tasks(engine)[task_id("CO4", "Organization", "eg-350000002")]
    assert version == 2 and task["status"] == "completed" and task["businessStatus"]["coding"][0]["code"] == "08"
    # other rules' tasks were left alone by a CO4-only run
    assert _tasks(engine)[task_id("CO1", "HealthcareService", "hs-350000002-sau")][1]["status"] == "ready"


def test_indicators_table(first: QualityRun, engine: Engine) -> None:
    with engine.connect() as c:
        rows = {
            (r.kind, r.code, r.territory_kind, r.territory_code): r.value for r in c.execute(select(quality_indicator))
        }
    assert rows[("rule", "CO4:perimetre", "region", "53")] == 5
    assert rows[("rule", "CO4:ecarts", "region", "53")] == 2  # wrong category + FINESS not found
    assert rows[("rule", "CO4:ecarts", "departement", "35")] == 2
    assert ("rule", "CO4:ecarts", "nation", "FR") not in rows  # a regional run writes no national row
    assert rows[("population", "perimetre", "region", "53")] == 5
    periods = {r.period for r in engine.connect().execute(select(quality_indicator.c.period))}
    assert any("-W" in p for p in periods) and any("-Q" in p for p in periods)


def test_population_flags(loaded: ResourceStore, reference: Path) -> None:
    egs = {e.id: e for e in population(QualityData(loaded.engine, SCOPE, reference))}
    rea = next(o for o in egs["eg-350000001"].offers if o.offer_id == "hs-350000001-rea")
    assert rea.status == FINALISE and rea.flags["categorie"] is None  # not a home service: not applicable
    urg = next(o for o in egs["eg-350000001"].offers if o.offer_id == "hs-350000001-urg")
    assert urg.status == EN_COURS and urg.flags["contact"] is False and urg.flags["adresse"] is True
    assert egs["eg-350000001"].status == EN_COURS  # finalised + in-progress offers
    assert egs["eg-350000003"].status == A_FAIRE  # no offer at all
    assert "eg-350000005" in egs  # open in the ROR, tracked category


# --- adapters -------------------------------------------------------------------------------------------------
@pytest.fixture
def client(first: QualityRun, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine)) as c:
        yield c


def test_anomalies_searchable_through_fhir_task_search(client: TestClient) -> None:
    r = client.get("/fhir/Task", params={"_tag": f"{RULE_TAG}|CO4", "status": "ready"})
    assert r.status_code == 200, r.text
    focus = sorted(e["resource"]["focus"]["reference"] for e in r.json()["entry"])
    assert focus == ["Organization/eg-350000002", "Organization/eg-350000005"]
    by_focus = client.get("/fhir/Task", params={"focus": "Organization/eg-350000003"}).json()
    rules = {
        i["valueString"]
        for e in by_focus["entry"]
        for i in e["resource"]["input"]
        if i["type"]["coding"][0]["code"] == "ruleErrorId"
    }
    assert "ST2" in rules
    region = client.get("/fhir/Task", params={"_tag": f"{REGION_SYSTEM}|53", "_count": "5"}).json()
    assert region["total"] > 10 and len(region["entry"]) == 5


# --- web pages ------------------------------------------------------------------------------------------------
PASSWORD = "correct horse battery staple"


def web_login(client: TestClient, engine: Engine, role: str, region: str | None = None) -> None:
    import re

    from ror.access.people import PersonRegistry
    from ror.db.tables import person

    with engine.begin() as c:
        c.execute(person.delete())
    PersonRegistry(engine).add(f"{role}@ror.invalid", role, role, PASSWORD, [], region)
    client.cookies.clear()
    page = client.get("/connexion")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    r = client.post(
        "/connexion",
        data={"email": f"{role}@ror.invalid", "password": PASSWORD, "csrf": csrf.group(1)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:300]


def test_quality_pages_for_a_regional_administrator(client: TestClient, engine: Engine) -> None:
    web_login(client, engine, "viewer")
    assert client.get("/qualite").status_code == 403
    web_login(client, engine, "regional_admin", "53")
    page = client.get("/qualite")
    assert page.status_code == 200 and "Qualité des données" in page.text
    assert 'href="/qualite/anomalies?rule=CO4&amp;region=53">2</a> / 5' in page.text
    drill = client.get("/qualite/anomalies", params={"rule": "CO4", "region": "53"})
    assert drill.status_code == 200 and "Organization/eg-350000002" in drill.text and "eg-350000001" not in drill.text
    csv_text = client.get("/qualite/anomalies.csv", params={"rule": "CO4"}).content.decode("utf-8-sig")
    lines = csv_text.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("règle;") and "355" in csv_text
    pop = client.get("/qualite/peuplement", params={"departement": "35"})
    assert pop.status_code == 200 and "CH CONFORME" in pop.text and "En cours" in pop.text
    assert client.get("/qualite/peuplement", params={"departement": "44"}).status_code == 403  # another région
