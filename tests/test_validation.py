"""Profile validation (docs/validation.md): one test per constraint — a violating resource is reported with the
rule's FHIRPath expression — and the IG examples are accepted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ror.directory import ids
from ror.geo.loader import load_geography
from ror.services import Services
from ror.store import ResourceStore
from ror.terminology.loader import load_nos
from ror.validation import ValidationFailed, Validator
from ror.validation.rules import (
    ALL_RULES,
    CHANNEL,
    COMMUNE,
    CONFIDENTIALITY,
    CONTACT_CONFIDENTIALITY,
    CREATION,
    EXERCISE_MODE,
    HS_CONTACT,
    PATIENT_TYPE,
    SENSITIVE,
)
from tests import validation_fixtures as vf
from tests.search_fixtures import capacity

R211, R213 = ids.TRE_R211, ids.TRE_R213
Mutate = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def reference(engine: Engine, reference_dir: Path) -> Services:
    """NOS and geography loaded once for the module; their in-memory caches kept across tests."""
    load_nos(engine, reference_dir / "nos")
    load_geography(engine, reference_dir / "geo")
    services = Services(engine)
    services.terminology.reload()
    services.geography.reload()
    return services


@pytest.fixture
def validator(store: ResourceStore, engine: Engine, reference: Services) -> Validator:
    store.bulk_upsert(vf.referenced())
    return Validator(engine, reference.terminology, reference.geography)


FACTORIES: dict[str, Callable[[], dict[str, Any]]] = {
    "HealthcareService": vf.healthcare_service,
    "Location": vf.location,
    "Organization": vf.organization_eg,
    "Practitioner": vf.practitioner,
    "PractitionerRole": vf.practitioner_role,
    "Task": vf.task,
}


@pytest.mark.parametrize("res_type", list(FACTORIES))
def test_ig_examples_are_accepted(validator: Validator, res_type: str) -> None:
    result = validator.validate(FACTORIES[res_type]())
    assert result.errors == [], [f.message for f in result.errors]
    result.raise_for_errors()


def test_ig_healthcareservice_warnings_where_the_ig_is_lax(validator: Validator) -> None:
    result = validator.validate(vf.healthcare_service())
    assert {f.rule for f in result.warnings} == {"hs-care-mode-present", "hs-available-time"}


# --- mutations ------------------------------------------------------------------------------------------------
def drop(key: str) -> Mutate:
    return lambda r: r.pop(key)


def drop_ext(url: str) -> Mutate:
    return lambda r: r.__setitem__("extension", [e for e in r["extension"] if e["url"] != url])


def add(key: str, item: Any) -> Mutate:
    return lambda r: r.setdefault(key, []).append(item)


def setv(key: str, value: Any) -> Mutate:
    return lambda r: r.__setitem__(key, value)


def ext_of(r: dict[str, Any], url: str) -> dict[str, Any]:
    return next(e for e in r["extension"] if e["url"] == url)


def age(low: Any, high: Any, code: str = "a") -> Mutate:
    def m(r: dict[str, Any]) -> None:
        rng = ext_of(r, PATIENT_TYPE)["extension"][0]["valueRange"]
        rng["low"] = {"value": low, "code": code}
        rng["high"] = {"value": high, "code": code}

    return m


def hs_cc(system: str, code: str) -> dict[str, Any]:
    return vf.cc(system, code)


def telecom_without(url: str) -> Mutate:
    def m(r: dict[str, Any]) -> None:
        t = vf.telecom()
        t["extension"] = [e for e in t["extension"] if e["url"] != url]
        r.setdefault("telecom", []).append(t)

    return m


def hs_contact_telecom_without(url: str) -> Mutate:
    def m(r: dict[str, Any]) -> None:
        tel = next(e for e in ext_of(r, HS_CONTACT)["extension"] if e["url"] == HS_CONTACT + "-telecom")
        tel["extension"] = [e for e in tel["extension"] if e["url"] != url]

    return m


def org_contact_without_level(r: dict[str, Any]) -> None:
    r["contact"][0].pop("extension")


def commune(code: str) -> Mutate:
    return lambda r: ext_of(r, COMMUNE).__setitem__("valueCodeableConcept", vf.cc(ids.TRE_R13, code))


def double(url: str) -> Mutate:
    return lambda r: r["extension"].append(dict(ext_of(r, url)))


def bad_capacity(r: dict[str, Any]) -> None:
    r["extension"] += [capacity("02", 3, gender="03")]


def closing_without_start(r: dict[str, Any]) -> None:
    r["notAvailable"] = [{"id": "closingReopeningDate", "description": "x", "during": {"end": "2027-01-01"}}]


HS, LOC, ORG, PRA, PR, TASK = (
    "HealthcareService",
    "Location",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Task",
)
OA = f"HealthcareService.specialty.where(coding.system='{R211}')"
CM = f"HealthcareService.characteristic.where(coding.system='{R213}')"
PT = f"HealthcareService.extension('{PATIENT_TYPE}')"

# (rule id, resource type, mutation, expected expression, expected severity)
CASES: list[tuple[str, str, Mutate, str, str]] = [
    ("structure", HS, setv("name", 12), "HealthcareService.name", "error"),
    ("hs-identifier", HS, drop("identifier"), "HealthcareService.identifier", "error"),
    ("hs-type", HS, add("type", hs_cc(ids.TRE_R227, "04")), "HealthcareService.type", "error"),
    ("hs-category", HS, add("category", hs_cc(ids.TRE_R244, "157")), "HealthcareService.category", "error"),
    ("hs-specialty", HS, drop("specialty"), "HealthcareService.specialty", "error"),
    ("hs-operational-activity", HS, add("specialty", hs_cc(R211, "025")), OA, "error"),
    ("hs-characteristic", HS, drop("characteristic"), "HealthcareService.characteristic", "error"),
    ("hs-care-mode-present", HS, lambda r: None, CM, "warning"),
    (
        "hs-care-mode-single",
        HS,
        lambda r: r["characteristic"].extend([hs_cc(R213, "01"), hs_cc(R213, "03")]),
        CM,
        "error",
    ),
    (
        "hs-reception-type",
        HS,
        lambda r: r["characteristic"].extend([hs_cc(vf.ids.nos("TRE_R240-TemporaliteAccueil"), c) for c in "12"]),
        "HealthcareService.characteristic.where(coding.system='" + ids.nos("TRE_R240-TemporaliteAccueil") + "')",
        "error",
    ),
    (
        "hs-annual-opening",
        HS,
        add("characteristic", hs_cc(ids.nos("TRE_R238-OuvertureAnnuelle"), "01")),
        "HealthcareService.characteristic.where(coding.system='" + ids.nos("TRE_R238-OuvertureAnnuelle") + "')",
        "error",
    ),
    ("hs-available-time", HS, lambda r: None, "HealthcareService.availableTime", "warning"),
    ("hs-sensitive-unit", HS, drop_ext(SENSITIVE), f"HealthcareService.extension('{SENSITIVE}')", "error"),
    (
        "hs-sensitive-unit-value",
        HS,
        lambda r: ext_of(r, SENSITIVE).pop("valueBoolean"),
        f"HealthcareService.extension('{SENSITIVE}').valueBoolean",
        "error",
    ),
    ("hs-patient-type", HS, drop_ext(PATIENT_TYPE), PT, "error"),
    ("hs-age-range", HS, lambda r: ext_of(r, PATIENT_TYPE).__setitem__("extension", []), "", "error"),
    (
        "hs-age-range-low",
        HS,
        lambda r: ext_of(r, PATIENT_TYPE)["extension"][0]["valueRange"].pop("low"),
        f"{PT}.extension('ageRange').valueRange.low",
        "error",
    ),
    (
        "hs-age-range-high",
        HS,
        lambda r: ext_of(r, PATIENT_TYPE)["extension"][0]["valueRange"].pop("high"),
        f"{PT}.extension('ageRange').valueRange.high",
        "error",
    ),
    ("hs-age-range-values", HS, age(60, 18), f"{PT}.extension('ageRange').valueRange", "error"),
    (
        "hs-closing-period",
        HS,
        lambda r: r.setdefault("notAvailable", []).extend(
            [{"id": "closingReopeningDate", "description": "a", "during": {"start": "2026-01-01"}}] * 2
        ),
        "HealthcareService.notAvailable.where(id='closingReopeningDate')",
        "error",
    ),
    (
        "hs-closing-start",
        HS,
        closing_without_start,
        "HealthcareService.notAvailable.where(id='closingReopeningDate').during.start",
        "error",
    ),
    ("hs-creation-date", HS, double(CREATION), f"HealthcareService.extension('{CREATION}')", "error"),
    (
        "hs-contact-telecom",
        HS,
        hs_contact_telecom_without(CHANNEL),
        f"HealthcareService.extension('{HS_CONTACT}')[0].extension('{HS_CONTACT}-telecom')[0].extension('{CHANNEL}')",
        "error",
    ),
    ("hs-type-jdv", HS, setv("type", [hs_cc(ids.TRE_R227, "99")]), "HealthcareService.type", "error"),
    ("hs-category-jdv", HS, setv("category", [hs_cc(ids.TRE_R244, "99999")]), "HealthcareService.category", "error"),
    ("hs-operational-activity-jdv", HS, setv("specialty", [hs_cc(R211, "99999")]), OA, "error"),
    ("hs-care-mode-jdv", HS, add("characteristic", hs_cc(R213, "99999")), CM, "error"),
    (
        "hs-reception-modality-jdv",
        HS,
        add("characteristic", hs_cc(ids.nos("TRE_R338-ModaliteAccueil"), "99")),
        "HealthcareService.characteristic.where(coding.system='" + ids.nos("TRE_R338-ModaliteAccueil") + "')",
        "error",
    ),
    (
        "hs-expertise-level-jdv",
        HS,
        setv("characteristic", [hs_cc(ids.nos("TRE_R253-TypeMaternite"), "99")]),
        "HealthcareService.characteristic.where(coding.system='" + ids.nos("TRE_R253-TypeMaternite") + "')",
        "error",
    ),
    (
        "contactpoint-value",
        HS,
        add("telecom", {"system": "email", "extension": vf.telecom()["extension"]}),
        "HealthcareService.telecom[0].value",
        "error",
    ),
    ("contactpoint-channel", LOC, telecom_without(CHANNEL), f"Location.telecom[0].extension('{CHANNEL}')", "error"),
    (
        "contactpoint-confidentiality",
        LOC,
        telecom_without(CONFIDENTIALITY),
        f"Location.telecom[0].extension('{CONFIDENTIALITY}')",
        "error",
    ),
    (
        "hs-telecom-channel-jdv",
        HS,
        add("telecom", vf.telecom(channel="99")),
        f"HealthcareService.telecom.extension('{CHANNEL}').valueCodeableConcept",
        "error",
    ),
    (
        "hs-telecom-confidentiality-jdv",
        HS,
        add("telecom", vf.telecom(level="7")),
        f"HealthcareService.telecom.extension('{CONFIDENTIALITY}').valueCodeableConcept",
        "error",
    ),
    (
        "reference-resolves",
        HS,
        setv("providedBy", {"reference": "Organization/nope"}),
        "HealthcareService.providedBy.reference",
        "error",
    ),
    ("identifier-unique", HS, setv("identifier", [{"value": "06/9597"}]), "HealthcareService.identifier[0]", "error"),
    # Location
    ("loc-commune-cog", LOC, drop_ext(COMMUNE), f"Location.extension('{COMMUNE}')", "error"),
    (
        "loc-commune-cog-value",
        LOC,
        lambda r: ext_of(r, COMMUNE).pop("valueCodeableConcept"),
        f"Location.extension('{COMMUNE}').valueCodeableConcept",
        "error",
    ),
    (
        "loc-commune-cog-known",
        LOC,
        commune("99999"),
        f"Location.extension('{COMMUNE}').valueCodeableConcept.coding",
        "error",
    ),
    ("loc-type", LOC, add("type", hs_cc(ids.TRE_R343, "005")), "Location.type", "error"),
    ("loc-type-jdv", LOC, setv("type", [hs_cc(ids.TRE_R343, "999")]), "Location.type", "error"),
    (
        "loc-operational-status-jdv",
        LOC,
        setv("operationalStatus", {"system": ids.TRE_R203, "code": "9"}),
        "Location.operationalStatus",
        "error",
    ),
    (
        "loc-id-location",
        LOC,
        setv("identifier", [{"type": hs_cc(ids.TRE_R354, "25"), "value": v} for v in ("78/1", "78/2")]),
        "Location.identifier.where(type.coding.code='25')",
        "error",
    ),
    (
        "loc-id-externe-synchro",
        LOC,
        setv("identifier", [{"type": hs_cc(ids.TRE_R354, "26"), "value": v} for v in ("A", "B")]),
        "Location.identifier.where(type.coding.code='26')",
        "error",
    ),
    ("loc-capacity", LOC, bad_capacity, "Location.extension.where(url='ror-location-supported-capacity')[0]", "error"),
    ("loc-creation-date", LOC, double(CREATION), f"Location.extension('{CREATION}')", "error"),
    (
        "loc-telecom-channel-jdv",
        LOC,
        add("telecom", vf.telecom(channel="99")),
        f"Location.telecom.extension('{CHANNEL}').valueCodeableConcept",
        "error",
    ),
    (
        "loc-telecom-confidentiality-jdv",
        LOC,
        add("telecom", vf.telecom(level="7")),
        f"Location.telecom.extension('{CONFIDENTIALITY}').valueCodeableConcept",
        "error",
    ),
    # Organization
    ("org-address", ORG, lambda r: r["address"].append({"city": "X"}), "Organization.address", "error"),
    (
        "org-category",
        ORG,
        add("type", hs_cc(ids.TRE_R66, "355")),
        f"Organization.type.where(coding.system='{ids.TRE_R66}')",
        "error",
    ),
    (
        "org-category-jdv",
        ORG,
        setv("type", [hs_cc(ids.TRE_R66, "999")]),
        f"Organization.type.where(coding.system='{ids.TRE_R66}')",
        "error",
    ),
    (
        "org-contact-confidentiality",
        ORG,
        org_contact_without_level,
        f"Organization.contact.extension('{CONTACT_CONFIDENTIALITY}')",
        "warning",
    ),
    (
        "org-contact-purpose-jdv",
        ORG,
        lambda r: r["contact"][0].__setitem__("purpose", hs_cc(ids.nos("TRE_R287-NatureContact"), "99")),
        "Organization.contact.purpose",
        "error",
    ),
    ("org-creation-date", ORG, double(CREATION), f"Organization.extension('{CREATION}')", "error"),
    (
        "org-telecom-channel-jdv",
        ORG,
        lambda r: r["contact"][0]["telecom"].append(vf.telecom(channel="99")),
        f"Organization.telecom.extension('{CHANNEL}').valueCodeableConcept | "
        f"Organization.contact.telecom.extension('{CHANNEL}').valueCodeableConcept",
        "error",
    ),
    (
        "org-telecom-confidentiality-jdv",
        ORG,
        add("telecom", vf.telecom(level="7")),
        f"Organization.telecom.extension('{CONFIDENTIALITY}').valueCodeableConcept | "
        f"Organization.contact.telecom.extension('{CONFIDENTIALITY}').valueCodeableConcept",
        "error",
    ),
    ("identifier-unique", ORG, setv("partOf", {"reference": "Organization/999999"}), "", "none"),
    # Practitioner
    (
        "pra-idnatps",
        PRA,
        drop("identifier"),
        "Practitioner.identifier.where(system='urn:oid:1.2.250.1.71.4.2.1')",
        "error",
    ),
    (
        "pra-creation-date",
        PRA,
        lambda r: r.setdefault("extension", []).extend([{"url": CREATION, "valueDateTime": "2020-01-01"}] * 2),
        f"Practitioner.extension('{CREATION}')",
        "error",
    ),
    (
        "pra-telecom-channel-jdv",
        PRA,
        add("telecom", vf.telecom(channel="99")),
        f"Practitioner.telecom.extension('{CHANNEL}').valueCodeableConcept",
        "error",
    ),
    (
        "pra-telecom-confidentiality-jdv",
        PRA,
        add("telecom", vf.telecom(level="7")),
        f"Practitioner.telecom.extension('{CONFIDENTIALITY}').valueCodeableConcept",
        "error",
    ),
    # PractitionerRole
    ("pr-practitioner", PR, drop("practitioner"), "PractitionerRole.practitioner", "error"),
    ("pr-healthcareservice", PR, drop("healthcareService"), "PractitionerRole.healthcareService", "error"),
    ("pr-code", PR, drop("code"), "PractitionerRole.code", "error"),
    ("pr-identifier", PR, add("identifier", {"value": "2"}), "PractitionerRole.identifier", "error"),
    ("pr-exercise-mode", PR, drop_ext(EXERCISE_MODE), f"PractitionerRole.extension('{EXERCISE_MODE}')", "error"),
    (
        "pr-code-jdv",
        PR,
        setv("code", [hs_cc(ids.nos("TRE_G15-ProfessionSante"), "9999")]),
        "PractitionerRole.code",
        "error",
    ),
    ("pr-creation-date", PR, double(CREATION), f"PractitionerRole.extension('{CREATION}')", "error"),
    (
        "pr-telecom-channel-jdv",
        PR,
        add("telecom", vf.telecom(channel="99")),
        f"PractitionerRole.telecom.extension('{CHANNEL}').valueCodeableConcept",
        "error",
    ),
    (
        "pr-telecom-confidentiality-jdv",
        PR,
        add("telecom", vf.telecom(level="7")),
        f"PractitionerRole.telecom.extension('{CONFIDENTIALITY}').valueCodeableConcept",
        "error",
    ),
    # Task
    ("task-status", TASK, drop("status"), "Task.status", "error"),
    ("task-intent", TASK, drop("intent"), "Task.intent", "error"),
    ("task-business-status", TASK, drop("businessStatus"), "Task.businessStatus", "error"),
    ("task-code", TASK, drop("code"), "Task.code", "error"),
    ("task-focus", TASK, drop("focus"), "Task.focus", "error"),
    ("task-authored-on", TASK, drop("authoredOn"), "Task.authoredOn", "error"),
    ("task-last-modified", TASK, drop("lastModified"), "Task.lastModified", "error"),
    ("task-reason-code", TASK, drop("reasonCode"), "Task.reasonCode", "error"),
    ("task-identifier", TASK, setv("identifier", [{"value": "1"}, {"value": "2"}]), "Task.identifier", "error"),
    (
        "task-system-requester",
        TASK,
        lambda r: r["input"].pop(),
        "Task.input.where(type.coding.code='systemRequester')",
        "error",
    ),
    (
        "task-business-status-jdv",
        TASK,
        setv("businessStatus", hs_cc(ids.nos("TRE_R352-StatutMetierAnomalie"), "99")),
        "Task.businessStatus",
        "error",
    ),
    ("task-code-jdv", TASK, setv("code", hs_cc(ids.nos("TRE_R350-ThematiqueAnomalie"), "99")), "Task.code", "error"),
    (
        "task-reason-code-jdv",
        TASK,
        setv("reasonCode", hs_cc(ids.nos("TRE_R349-ActionAnomalie"), "XXX")),
        "Task.reasonCode",
        "error",
    ),
]
CASES = [c for c in CASES if c[4] != "none"]


@pytest.mark.parametrize(("rule", "res_type", "mutate", "expression", "severity"), CASES, ids=[c[0] for c in CASES])
def test_constraint(
    validator: Validator, rule: str, res_type: str, mutate: Mutate, expression: str, severity: str
) -> None:
    res = FACTORIES[res_type]()
    before = {f.rule for f in validator.validate(res).findings}
    assert rule not in before or rule in ("hs-care-mode-present", "hs-available-time")
    mutate(res)
    findings = [f for f in validator.validate(res).findings if f.rule == rule]
    assert findings, f"{rule} not reported"
    assert findings[0].severity == severity
    if expression:
        assert findings[0].expression == expression
    if severity == "error":
        with pytest.raises(ValidationFailed) as exc:
            validator.validate(res).raise_for_errors()
        assert exc.value.status == (400 if rule == "structure" else 422)
        assert any(expression in (i.expression or [""])[0] for i in exc.value.issues)


def test_every_rule_has_a_test() -> None:
    tested = {c[0] for c in CASES}
    assert {r.id for r in ALL_RULES} - tested == set()


def test_unresolved_reference_kinds(validator: Validator) -> None:
    res = vf.healthcare_service()
    res["location"] = [{"reference": "Organization/999999"}, {"reference": "https://elsewhere.example/Location/1"}]
    findings = [f for f in validator.validate(res).findings if f.rule == "reference-resolves"]
    assert [(f.severity, f.expression) for f in findings] == [
        ("error", "HealthcareService.location[0].reference"),
        ("warning", "HealthcareService.location[1].reference"),
    ]


def test_idexternesynchro_unique_within_its_establishment(validator: Validator, store: ResourceStore) -> None:
    ident = [{"type": vf.cc(ids.TRE_R354, "26"), "value": "REA1"}]
    store.bulk_upsert(
        [
            {
                **vf.location(),
                "id": "other",
                "identifier": ident,
                "managingOrganization": {"reference": "Organization/1111"},
            }
        ]
    )
    mine = {**vf.location(), "identifier": ident, "managingOrganization": {"reference": "Organization/999999"}}
    assert [f for f in validator.validate(mine).findings if f.rule == "identifier-unique"] == []
    mine["managingOrganization"] = {"reference": "Organization/1111"}
    assert [f.expression for f in validator.validate(mine).findings if f.rule == "identifier-unique"] == [
        "Location.identifier[0]"
    ]
    assert validator.validate(mine, res_id="other").ok  # updating the same resource is not a duplicate


def test_deprecated_code_rejected(validator: Validator) -> None:
    res = vf.location()
    res["extension"].append(capacity("02", 1, gender="03"))  # genre 03 Indifférencié, deprecated 2025-08-28
    errors = [f for f in validator.validate(res).errors if f.rule == "loc-capacity"]
    assert errors and "deprecated" in errors[0].message


def test_siret_shared_by_establishments_is_not_a_duplicate(validator: Validator, store: ResourceStore) -> None:
    """FINESS gives one SIRET to several establishments (found by the national round trip): only FINESS and
    idNatStruct must be unique among Organizations."""
    siret = {"system": ids.SIRENE, "value": "26350001600012"}
    finess = {"system": ids.FINESS, "value": "350000741"}
    store.bulk_upsert([{"resourceType": "Organization", "id": "eg-a", "identifier": [siret, finess]}])
    other = {"resourceType": "Organization", "identifier": [siret, {"system": ids.FINESS, "value": "350000742"}]}
    assert [f for f in validator.validate(other).findings if f.rule == "identifier-unique"] == []
    clash = {"resourceType": "Organization", "identifier": [finess]}
    assert [f.expression for f in validator.validate(clash).findings if f.rule == "identifier-unique"] == [
        "Organization.identifier[0]"
    ]
