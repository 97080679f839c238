"""CapabilityStatement built from what is actually mounted and declared (registry), never hand-written."""

from __future__ import annotations

from typing import Any

from ror import __version__
from ror.fhir.common import RESOURCE_TYPES
from ror.search.registry import SPECIAL_PARAMS, Registry

IG_CANONICAL = "https://interop.esante.gouv.fr/ig/fhir/ror"
PROFILES = {
    "Organization": "ror-organization",
    "HealthcareService": "ror-healthcareservice",
    "Location": "ror-location",
    "Practitioner": "ror-practitioner",
    "PractitionerRole": "ror-practitionerrole",
    "Task": "ror-task",
}


def capability_statement(
    registry: Registry,
    *,
    base: str,
    interactions: tuple[str, ...],
    search_includes: dict[str, list[str]] | None = None,
    search_revincludes: dict[str, list[str]] | None = None,
    search_params: bool = True,
    operations: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    resources = []
    for rt in RESOURCE_TYPES:
        entry: dict[str, Any] = {
            "type": rt,
            "profile": f"{IG_CANONICAL}/StructureDefinition/{PROFILES[rt]}",
            "interaction": [{"code": i} for i in interactions],
            "versioning": "versioned",
            "readHistory": True,
            "updateCreate": True,
            "conditionalRead": "not-supported",
        }
        if search_params and "search-type" in interactions:
            params = [{"name": name, "type": t} for name, t in SPECIAL_PARAMS.items()]
            for p in sorted(registry.for_type(rt).values(), key=lambda p: p.code):
                params.append({"name": p.code, "definition": p.url, "type": p.type})
            entry["searchParam"] = params
            if search_includes and rt in search_includes:
                entry["searchInclude"] = search_includes[rt]
            if search_revincludes and rt in search_revincludes:
                entry["searchRevInclude"] = search_revincludes[rt]
        resources.append(entry)
    rest: dict[str, Any] = {"mode": "server", "resource": resources}
    if operations:
        rest["operation"] = operations
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-30",
        "kind": "instance",
        "software": {"name": "ror (open-source ROR)", "version": __version__},
        "implementation": {"description": "Open-source ROR FHIR server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "instantiates": [f"{IG_CANONICAL}/CapabilityStatement/ror-serveur"],
        "implementationGuide": [IG_CANONICAL],
        "rest": [rest],
    }
