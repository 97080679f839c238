"""Structural checks (a malformed resource → 400): a supported resourceType, known top-level elements with the
right JSON shape (array / object / primitive), every extension an object with a `url`."""

from __future__ import annotations

from typing import Any

from ror.validation.model import Finding

L, OBJ, S, B = "array", "object", "string", "boolean"
_COMMON: dict[str, str] = {
    "resourceType": S,
    "id": S,
    "meta": OBJ,
    "text": OBJ,
    "extension": L,
    "modifierExtension": L,
    "identifier": L,
}
SHAPES: dict[str, dict[str, str]] = {
    "Organization": {
        "active": B,
        "type": L,
        "name": S,
        "alias": L,
        "telecom": L,
        "address": L,
        "partOf": OBJ,
        "contact": L,
        "endpoint": L,
    },
    "HealthcareService": {
        "active": B,
        "providedBy": OBJ,
        "category": L,
        "type": L,
        "specialty": L,
        "location": L,
        "name": S,
        "comment": S,
        "extraDetails": S,
        "photo": OBJ,
        "telecom": L,
        "coverageArea": L,
        "serviceProvisionCode": L,
        "eligibility": L,
        "program": L,
        "characteristic": L,
        "communication": L,
        "referralMethod": L,
        "appointmentRequired": B,
        "availableTime": L,
        "notAvailable": L,
        "availabilityExceptions": S,
        "endpoint": L,
    },
    "Location": {
        "status": S,
        "operationalStatus": OBJ,
        "name": S,
        "alias": L,
        "description": S,
        "mode": S,
        "type": L,
        "telecom": L,
        "address": OBJ,
        "physicalType": OBJ,
        "position": OBJ,
        "managingOrganization": OBJ,
        "partOf": OBJ,
        "hoursOfOperation": L,
        "availabilityExceptions": S,
        "endpoint": L,
    },
    "Practitioner": {
        "active": B,
        "name": L,
        "telecom": L,
        "address": L,
        "gender": S,
        "birthDate": S,
        "photo": L,
        "qualification": L,
        "communication": L,
    },
    "PractitionerRole": {
        "active": B,
        "period": OBJ,
        "practitioner": OBJ,
        "organization": OBJ,
        "code": L,
        "specialty": L,
        "location": L,
        "healthcareService": L,
        "telecom": L,
        "availableTime": L,
        "notAvailable": L,
        "availabilityExceptions": S,
        "endpoint": L,
    },
    "Task": {
        "instantiatesCanonical": S,
        "instantiatesUri": S,
        "basedOn": L,
        "groupIdentifier": OBJ,
        "partOf": L,
        "status": S,
        "statusReason": OBJ,
        "businessStatus": OBJ,
        "intent": S,
        "priority": S,
        "code": OBJ,
        "description": S,
        "focus": OBJ,
        "for": OBJ,
        "encounter": OBJ,
        "executionPeriod": OBJ,
        "authoredOn": S,
        "lastModified": S,
        "requester": OBJ,
        "performerType": L,
        "owner": OBJ,
        "location": OBJ,
        "reasonCode": OBJ,
        "reasonReference": OBJ,
        "insurance": L,
        "note": L,
        "relevantHistory": L,
        "restriction": OBJ,
        "input": L,
        "output": L,
    },
}
_PY = {L: list, OBJ: dict, S: str, B: bool}


def _finding(expression: str, message: str) -> Finding:
    return Finding("structure", "error", "structure", expression, message, structural=True)


def _extensions(node: Any, path: str, out: list[Finding]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("extension", "modifierExtension"):
                if not isinstance(value, list):
                    out.append(_finding(f"{path}.{key}", f"{path}.{key} must be an array"))
                    continue
                for i, ext in enumerate(value):
                    if not isinstance(ext, dict) or not isinstance(ext.get("url"), str) or not ext.get("url"):
                        out.append(_finding(f"{path}.{key}[{i}]", f"{path}.{key}[{i}] must be an object with a url"))
                    else:
                        _extensions(ext, f"{path}.{key}[{i}]", out)
            elif key != "text":
                _extensions(value, f"{path}.{key}", out)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _extensions(item, f"{path}[{i}]", out)


def check_structure(res: Any) -> list[Finding]:
    if not isinstance(res, dict):
        return [_finding("Resource", "the body must be a JSON object (a FHIR resource)")]
    rt = res.get("resourceType")
    if not isinstance(rt, str) or rt not in SHAPES:
        return [_finding("resourceType", f"resourceType {rt!r} is not written here ({', '.join(SHAPES)})")]
    shapes = {**_COMMON, **SHAPES[rt]}
    if rt == "Location":
        shapes["identifier"] = L
    out: list[Finding] = []
    for key, value in res.items():
        base = key[1:] if key.startswith("_") else key
        if base not in shapes:
            out.append(_finding(f"{rt}.{key}", f"{rt}.{key} is not an element of {rt}"))
            continue
        if key.startswith("_"):
            continue
        expected = shapes[base]
        if not isinstance(value, _PY[expected]) or (expected == S and not value.strip()):
            out.append(_finding(f"{rt}.{key}", f"{rt}.{key} must be a non-empty {expected}"))
    _extensions(res, rt, out)
    return out
