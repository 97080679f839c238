"""The rule table: one rule per profile constraint (docs/validation.md is generated from it).

* `Cardinality` — for every node selected by `context` (default: the resource), the number of nodes `expression`
  selects must lie within min..max.
* `Binding` — every coding selected by `expression` (CodeableConcept or Coding) must be a current code of the JDV.
* `Check` — a constraint that needs code (ContactPoint extensions, age range, commune, capacity, references,
  identifier uniqueness); `expression` is where it looks, the function lives in `checks.py`.

Severities follow the IG; `warning` where the IG is lax (its own example HealthcareService-1234564 has no careMode
characteristic and seven availableTime elements)."""

from __future__ import annotations

from dataclasses import dataclass

from ror.directory.ids import SD, TRE_R66, TRE_R211, TRE_R213, nos

R238 = nos("TRE_R238-OuvertureAnnuelle")
R240 = nos("TRE_R240-TemporaliteAccueil")
R253 = nos("TRE_R253-TypeMaternite")
R338 = nos("TRE_R338-ModaliteAccueil")
ID_NAT_PS = "urn:oid:1.2.250.1.71.4.2.1"
SENSITIVE = SD + "ror-healthcareservice-sensitive-unit"
PATIENT_TYPE = SD + "ror-healthcareservice-patient-type"
HS_CONTACT = SD + "ror-healthcareservice-contact"
COMMUNE = SD + "ror-commune-cog"
CREATION = SD + "ror-meta-creation-date"
EXERCISE_MODE = SD + "ror-practitionerrole-unit-exercise-mode"
CHANNEL = SD + "ror-telecom-communication-channel"
CONFIDENTIALITY = SD + "ror-telecom-confidentiality-level"
CONTACT_CONFIDENTIALITY = SD + "ror-contact-confidentiality-level"


@dataclass(frozen=True)
class Cardinality:
    id: str
    resource: str
    expression: str
    min: int
    max: int | None
    severity: str = "error"
    context: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Binding:
    id: str
    resource: str
    expression: str
    value_set: str
    severity: str = "error"
    note: str = ""


@dataclass(frozen=True)
class Check:
    id: str
    resource: str  # "*" for every type
    expression: str
    function: str
    severity: str = "error"
    note: str = ""


Rule = Cardinality | Binding | Check


def _hs(expr: str) -> str:
    return "HealthcareService." + expr


CARDINALITIES: tuple[Cardinality, ...] = (
    # HealthcareService (RORHealthcareService)
    Cardinality("hs-identifier", "HealthcareService", _hs("identifier"), 1, 1),
    Cardinality("hs-type", "HealthcareService", _hs("type"), 1, 1),
    Cardinality("hs-category", "HealthcareService", _hs("category"), 0, 1),
    Cardinality("hs-specialty", "HealthcareService", _hs("specialty"), 1, None),
    Cardinality(
        "hs-operational-activity", "HealthcareService", _hs(f"specialty.where(coding.system='{TRE_R211}')"), 1, 1
    ),
    Cardinality("hs-characteristic", "HealthcareService", _hs("characteristic"), 1, None),
    Cardinality(
        "hs-care-mode-present",
        "HealthcareService",
        _hs(f"characteristic.where(coding.system='{TRE_R213}')"),
        1,
        None,
        "warning",
        note="careMode 1..1 in the profile, absent from the IG's own example: reported, not rejected",
    ),
    Cardinality(
        "hs-care-mode-single", "HealthcareService", _hs(f"characteristic.where(coding.system='{TRE_R213}')"), 0, 1
    ),
    Cardinality("hs-reception-type", "HealthcareService", _hs(f"characteristic.where(coding.system='{R240}')"), 0, 1),
    Cardinality("hs-annual-opening", "HealthcareService", _hs(f"characteristic.where(coding.system='{R238}')"), 0, 1),
    Cardinality(
        "hs-available-time",
        "HealthcareService",
        _hs("availableTime"),
        0,
        1,
        "warning",
        note="0..1 in the profile, seven in the IG's own example: reported, not rejected",
    ),
    Cardinality("hs-sensitive-unit", "HealthcareService", _hs(f"extension('{SENSITIVE}')"), 1, 1),
    Cardinality(
        "hs-sensitive-unit-value", "HealthcareService", "valueBoolean", 1, 1, context=_hs(f"extension('{SENSITIVE}')")
    ),
    Cardinality("hs-patient-type", "HealthcareService", _hs(f"extension('{PATIENT_TYPE}')"), 1, 1),
    Cardinality(
        "hs-age-range", "HealthcareService", "extension('ageRange')", 1, 1, context=_hs(f"extension('{PATIENT_TYPE}')")
    ),
    Cardinality(
        "hs-age-range-low",
        "HealthcareService",
        "low",
        1,
        1,
        context=_hs(f"extension('{PATIENT_TYPE}').extension('ageRange').valueRange"),
    ),
    Cardinality(
        "hs-age-range-high",
        "HealthcareService",
        "high",
        1,
        1,
        context=_hs(f"extension('{PATIENT_TYPE}').extension('ageRange').valueRange"),
    ),
    Cardinality("hs-closing-period", "HealthcareService", _hs("notAvailable.where(id='closingReopeningDate')"), 0, 1),
    Cardinality(
        "hs-closing-start",
        "HealthcareService",
        "during.start",
        1,
        1,
        context=_hs("notAvailable.where(id='closingReopeningDate')"),
    ),
    # Location (RORLocation)
    Cardinality("loc-commune-cog", "Location", f"Location.extension('{COMMUNE}')", 1, 1),
    Cardinality(
        "loc-commune-cog-value", "Location", "valueCodeableConcept", 1, 1, context=f"Location.extension('{COMMUNE}')"
    ),
    Cardinality("loc-type", "Location", "Location.type", 0, 1),
    Cardinality("loc-id-location", "Location", "Location.identifier.where(type.coding.code='25')", 0, 1),
    Cardinality("loc-id-externe-synchro", "Location", "Location.identifier.where(type.coding.code='26')", 0, 1),
    # Organization (ROROrganization)
    Cardinality("org-address", "Organization", "Organization.address", 0, 1),
    Cardinality("org-category", "Organization", f"Organization.type.where(coding.system='{TRE_R66}')", 0, 1),
    Cardinality(
        "org-contact-confidentiality",
        "Organization",
        f"extension('{CONTACT_CONFIDENTIALITY}')",
        1,
        1,
        "warning",
        context="Organization.contact",
    ),
    # Practitioner / PractitionerRole
    Cardinality("pra-idnatps", "Practitioner", f"Practitioner.identifier.where(system='{ID_NAT_PS}')", 1, 1),
    Cardinality("pr-practitioner", "PractitionerRole", "PractitionerRole.practitioner", 1, 1),
    Cardinality("pr-healthcareservice", "PractitionerRole", "PractitionerRole.healthcareService", 1, 1),
    Cardinality("pr-code", "PractitionerRole", "PractitionerRole.code", 1, 1),
    Cardinality("pr-identifier", "PractitionerRole", "PractitionerRole.identifier", 0, 1),
    Cardinality("pr-exercise-mode", "PractitionerRole", f"PractitionerRole.extension('{EXERCISE_MODE}')", 1, 1),
    # Task (RORTask)
    Cardinality("task-status", "Task", "Task.status", 1, 1),
    Cardinality("task-intent", "Task", "Task.intent", 1, 1),
    Cardinality("task-business-status", "Task", "Task.businessStatus", 1, 1),
    Cardinality("task-code", "Task", "Task.code", 1, 1),
    Cardinality("task-focus", "Task", "Task.focus", 1, 1),
    Cardinality("task-authored-on", "Task", "Task.authoredOn", 1, 1),
    Cardinality("task-last-modified", "Task", "Task.lastModified", 1, 1),
    Cardinality("task-reason-code", "Task", "Task.reasonCode", 1, 1),
    Cardinality("task-identifier", "Task", "Task.identifier", 0, 1),
    Cardinality("task-system-requester", "Task", "Task.input.where(type.coding.code='systemRequester')", 1, 1),
    # every profiled type: the creation date is set by the server, never twice
    *(
        Cardinality(f"{p}-creation-date", rt, f"{rt}.extension('{CREATION}')", 0, 1)
        for p, rt in (
            ("org", "Organization"),
            ("hs", "HealthcareService"),
            ("loc", "Location"),
            ("pra", "Practitioner"),
            ("pr", "PractitionerRole"),
        )
    ),
)

_TELECOM_OWNERS = {
    "Organization": ("Organization.telecom", "Organization.contact.telecom"),
    "HealthcareService": ("HealthcareService.telecom",),
    "Location": ("Location.telecom",),
    "Practitioner": ("Practitioner.telecom",),
    "PractitionerRole": ("PractitionerRole.telecom",),
}


def _telecom_ext(rt: str, url: str) -> str:
    return " | ".join(f"{p}.extension('{url}').valueCodeableConcept" for p in _TELECOM_OWNERS[rt])


BINDINGS: tuple[Binding, ...] = (
    Binding("hs-type-jdv", "HealthcareService", _hs("type"), "JDV_J20-ChampActivite-ROR"),
    Binding("hs-category-jdv", "HealthcareService", _hs("category"), "JDV_J238-TypeOffre-ROR"),
    Binding(
        "hs-operational-activity-jdv",
        "HealthcareService",
        _hs(f"specialty.where(coding.system='{TRE_R211}')"),
        "JDV_J17-ActiviteOperationnelle-ROR",
    ),
    Binding(
        "hs-care-mode-jdv",
        "HealthcareService",
        _hs(f"characteristic.where(coding.system='{TRE_R213}')"),
        "JDV_J19-ModePriseEnCharge-ROR",
    ),
    Binding(
        "hs-reception-modality-jdv",
        "HealthcareService",
        _hs(f"characteristic.where(coding.system='{R338}')"),
        "JDV_J226-ModaliteAccueil-ROR",
    ),
    Binding(
        "hs-expertise-level-jdv",
        "HealthcareService",
        _hs(f"characteristic.where(coding.system='{R253}')"),
        "JDV_J227-NiveauExpertise-ROR",
    ),
    Binding("loc-type-jdv", "Location", "Location.type", "JDV_J198-FonctionLieu-ROR"),
    Binding("loc-operational-status-jdv", "Location", "Location.operationalStatus", "JDV_J224-StatutLieu-ROR"),
    Binding(
        "org-category-jdv",
        "Organization",
        f"Organization.type.where(coding.system='{TRE_R66}')",
        "JDV_J55-CategorieEG-ROR",
    ),
    Binding("org-contact-purpose-jdv", "Organization", "Organization.contact.purpose", "JDV_J221-NatureContact-ROR"),
    Binding("pr-code-jdv", "PractitionerRole", "PractitionerRole.code", "JDV_J229-ProfessionSante-ROR"),
    Binding("task-business-status-jdv", "Task", "Task.businessStatus", "JDV_J244-StatutMetierAnomalie-ROR"),
    Binding("task-code-jdv", "Task", "Task.code", "JDV_J241-ThematiqueAnomalie-ROR"),
    Binding("task-reason-code-jdv", "Task", "Task.reasonCode", "JDV_J242-ActionAnomalie-ROR"),
    *(
        Binding(f"{p}-telecom-channel-jdv", rt, _telecom_ext(rt, CHANNEL), "JDV_J225-CanalCommunication-ROR")
        for p, rt in (
            ("org", "Organization"),
            ("hs", "HealthcareService"),
            ("loc", "Location"),
            ("pra", "Practitioner"),
            ("pr", "PractitionerRole"),
        )
    ),
    *(
        Binding(
            f"{p}-telecom-confidentiality-jdv",
            rt,
            _telecom_ext(rt, CONFIDENTIALITY),
            "JDV_J222-NiveauConfidentialite-ROR",
        )
        for p, rt in (
            ("org", "Organization"),
            ("hs", "HealthcareService"),
            ("loc", "Location"),
            ("pra", "Practitioner"),
            ("pr", "PractitionerRole"),
        )
    ),
)

CHECKS: tuple[Check, ...] = (
    Check("contactpoint-value", "*", "telecom.value", "contact_point_value"),
    Check("contactpoint-channel", "*", f"telecom.extension('{CHANNEL}')", "contact_point_channel"),
    Check(
        "contactpoint-confidentiality", "*", f"telecom.extension('{CONFIDENTIALITY}')", "contact_point_confidentiality"
    ),
    Check(
        "hs-contact-telecom",
        "HealthcareService",
        f"HealthcareService.extension('{HS_CONTACT}')",
        "healthcareservice_contact",
        note="contact telecom: telecomAddress, channel and confidentiality 1..1; contact confidentiality 1..1",
    ),
    Check(
        "hs-age-range-values",
        "HealthcareService",
        f"HealthcareService.extension('{PATIENT_TYPE}').extension('ageRange').valueRange",
        "age_range",
        note="low and high in years (UCUM `a`), 0 ≤ low ≤ high",
    ),
    Check(
        "loc-commune-cog-known",
        "Location",
        f"Location.extension('{COMMUNE}').valueCodeableConcept.coding",
        "commune_known",
        note="an INSEE COG commune known to the geography (warning when the geography is not loaded)",
    ),
    Check("loc-capacity", "Location", "Location.extension.where(url='ror-location-supported-capacity')", "capacity"),
    Check("reference-resolves", "*", "<reference elements>", "references"),
    Check("identifier-unique", "*", "<identifier>", "identifiers_unique"),
)

ALL_RULES: tuple[Rule, ...] = (*CARDINALITIES, *BINDINGS, *CHECKS)
