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
    extra_interactions: dict[str, tuple[str, ...]] | None = None,
    resource_operations: dict[str, list[dict[str, str]]] | None = None,
    extra_resources: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    resources = []
    for rt in RESOURCE_TYPES:
        entry: dict[str, Any] = {
            "type": rt,
            "profile": f"{IG_CANONICAL}/StructureDefinition/{PROFILES[rt]}",
            "interaction": [{"code": i} for i in (*interactions, *(extra_interactions or {}).get(rt, ()))],
            "versioning": "versioned",
            "readHistory": True,
            "updateCreate": True,
            "conditionalRead": "not-supported",
            "conditionalCreate": "create" in interactions,
            "conditionalUpdate": "update" in interactions,
            "conditionalDelete": "not-supported",
        }
        if search_params and "search-type" in interactions:
            params = [{"name": name, "type": t} for name, t in SPECIAL_PARAMS.items()]
            for p in sorted(registry.for_type(rt).values(), key=lambda p: p.code):
                item = {"name": p.code, "definition": p.url, "type": p.type}
                if p.group:
                    item["documentation"] = "criteria of this group AND-ed in one search match the same element"
                params.append(item)
            if rt == "Location":
                params += [
                    {
                        "name": "near",
                        "type": "special",
                        "definition": "http://hl7.org/fhir/SearchParameter/Location-near",
                    },
                    {
                        "name": "near-insee-code",
                        "type": "special",
                        "definition": f"{IG_CANONICAL}/SearchParameter/ror-sp-location-near-insee-code",
                    },
                ]
            entry["searchParam"] = params
            if search_includes and rt in search_includes:
                entry["searchInclude"] = search_includes[rt]
            if search_revincludes and rt in search_revincludes:
                entry["searchRevInclude"] = search_revincludes[rt]
        if resource_operations and rt in resource_operations:
            entry["operation"] = resource_operations[rt]
        resources.append(entry)
    resources += extra_resources or []  # served outside the IG (Subscription, Flag, MeasureReport)
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": (
            "Capacity search semantics: criteria on capacity parameters (capacity-type, capacity-status, "
            "temporality-capacity, gender-capacity-available, capacity-closing-type, additional-bed-type, crisis-type, "
            "temporary-assignement, nb-capacity, capacity-update-date) that are AND-ed in one search — repeated "
            "parameters, chained location.* parameters, or 'and' in _filter — must match the same indicator "
            "(one ror-location-supported-capacity occurrence). The same holds for equipment and price parameters. "
            "Unknown or malformed parameters are rejected (400). Paging: follow Bundle.link next/previous (keyset "
            "cursor). _sort=near orders by distance when a near or near-insee-code criterion is given."
        ),
        "resource": resources,
    }
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
