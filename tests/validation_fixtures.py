"""IG example resources as JSON (the FSH examples of docs/ig-examples converted by hand) and the resources their
references point to, for the validation and write API tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from ror.directory import ids
from ror.validation.rules import CHANNEL, CONFIDENTIALITY, CONTACT_CONFIDENTIALITY, EXERCISE_MODE, ID_NAT_PS

IG_EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "docs" / "ig-examples"
R283 = ids.TRE_R283
R200 = ids.TRE_R200


def cc(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def telecom(value: str = "0299999999", channel: str = "2", level: str = "1") -> dict[str, Any]:
    return {
        "system": "phone",
        "value": value,
        "extension": [
            {"url": CHANNEL, "valueCodeableConcept": cc(R200, channel)},
            {"url": CONFIDENTIALITY, "valueCodeableConcept": cc(R283, level)},
        ],
    }


def ig_json(name: str) -> dict[str, Any]:
    res = json.loads((IG_EXAMPLES / name).read_text(encoding="utf-8"))
    res.pop("text", None)
    return res


def healthcare_service() -> dict[str, Any]:
    return ig_json("HealthcareService-1234564.json")


def location() -> dict[str, Any]:
    return ig_json("Location-ror-location-exemple.json")


def organization_eg() -> dict[str, Any]:
    """ROROrganizationExempleEG.fsh as JSON."""
    return {
        "resourceType": "Organization",
        "meta": {"profile": [ids.PROFILE_ORGANIZATION]},
        "extension": [
            {"url": ids.SD + "ror-meta-creation-date", "valueDateTime": "2023-12-09T14:30:00+01:00"},
            {
                "url": ids.SD + "ror-organization-financial-help-type",
                "valueCodeableConcept": cc(ids.nos("TRE_R241-AideFinanciere"), "02"),
            },
            {"url": ids.SD + "ror-organization-accomodation-family", "valueBoolean": False},
        ],
        "identifier": [
            {"system": ids.ID_NAT_STRUCT, "value": "392131725800020", "type": cc(ids.TRE_G07, "40")},
            {"system": ids.SIRENE, "value": "92131725800020", "type": cc(ids.TRE_G07, "3")},
        ],
        "type": [cc(ids.TRE_R66, "460")],
        "name": "Quiétude BOIS COLOMBES",
        "partOf": {"reference": "Organization/1111"},
        "address": [
            {
                "line": ["45 rue du général Leclerc, 92270 BOIS-COLOMBES"],
                "city": "BOIS-COLOMBES",
                "postalCode": "92270",
            }
        ],
        "contact": [
            {
                "extension": [{"url": CONTACT_CONFIDENTIALITY, "valueCodeableConcept": cc(R283, "1")}],
                "purpose": cc(ids.nos("TRE_R287-NatureContact"), "06"),
                "telecom": [telecom("01.01.01.01.01")],
            }
        ],
    }


def practitioner() -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "identifier": [{"system": ID_NAT_PS, "value": "810001234567"}],
        "name": [{"family": "Tenor", "given": ["Mylène"]}],
    }


def practitioner_role() -> dict[str, Any]:
    """RORPractitionerRoleExemple.fsh as JSON."""
    return {
        "resourceType": "PractitionerRole",
        "extension": [
            {"url": ids.SD + "ror-meta-creation-date", "valueDateTime": "2023-12-09T14:30:00+01:00"},
            {
                "url": ids.SD + "RORPractitionerRoleName",
                "extension": [
                    {"url": "exerciseFirstName", "valueString": "Mylène"},
                    {"url": "exerciseLastName", "valueString": "Tenor"},
                ],
            },
            {"url": EXERCISE_MODE, "valueCodeableConcept": cc(ids.nos("TRE_R23-ModeExercice"), "L")},
        ],
        "identifier": [{"value": "11102379616"}],
        "practitioner": {"reference": "Practitioner/2524"},
        "healthcareService": [{"reference": "HealthcareService/9597"}],
        "code": [cc(ids.nos("TRE_G15-ProfessionSante"), "60")],
    }


def task() -> dict[str, Any]:
    """RORTaskExemple.fsh as JSON."""
    inputs = "https://interop.esante.gouv.fr/ig/fhir/ror/CodeSystem/input-task-ror-codesystem"
    return {
        "resourceType": "Task",
        "meta": {"profile": [ids.SD + "ror-task"]},
        "focus": {"type": "Organization", "identifier": {"value": "1910800002"}},
        "status": "in-progress",
        "businessStatus": cc(ids.nos("TRE_R352-StatutMetierAnomalie"), "02"),
        "intent": "order",
        "reasonCode": cc(ids.nos("TRE_R349-ActionAnomalie"), "COR"),
        "code": cc(ids.nos("TRE_R350-ThematiqueAnomalie"), "06"),
        "input": [
            {
                "type": cc(inputs, "pathElementError"),
                "valueExpression": {
                    "language": "text/fhirpath",
                    "expression": f"Organization.type.coding.where(system='{ids.TRE_R66}')",
                },
            },
            {"type": cc(inputs, "systemRequester"), "valueString": "IHM"},
        ],
        "authoredOn": "2024-01-03",
        "lastModified": "2024-01-04",
        "description": "Ici la catégorie d'établissement n'est pas la bonne",
    }


def referenced() -> list[dict[str, Any]]:
    """The resources the IG examples point to (ids as in the examples)."""
    hs = healthcare_service()
    hs["id"] = "9597"
    hs["identifier"] = [{"value": "06/9597"}]
    return [
        {"resourceType": "Organization", "id": "999999", "name": "EG de l'exemple"},
        {"resourceType": "Organization", "id": "1111", "name": "EJ de l'exemple"},
        {**location(), "id": "888888"},
        {**practitioner(), "id": "2524", "identifier": [{"system": ID_NAT_PS, "value": "810000002524"}]},
        hs,
    ]


def clone(res: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(res)
