"""A small, hand-written graph of ROR resources used by the search tests (EJ → EG → OI, offers, places)."""

from __future__ import annotations

from typing import Any

from ror.directory import ids
from ror.store import ResourceStore

R211 = ids.TRE_R211
R213 = ids.TRE_R213
R66 = ids.TRE_R66


def capacity(
    status: str,
    nb: int,
    *,
    gender: str | None = None,
    temporality: str = "01",
    updated: str = "2026-11-30T08:00:00+01:00",
    assignment: str = "01",
) -> dict[str, Any]:
    def cc(sub: str, system: str, code: str) -> dict[str, Any]:
        return {"url": sub, "valueCodeableConcept": {"coding": [{"system": system, "code": code}]}}

    ext = [
        cc("capacityType", ids.TRE_R329, "01"),
        cc("capacityStatus", ids.TRE_R330, status),
        cc("temporalityCapacity", ids.TRE_R331, temporality),
        {"url": "nbCapacity", "valueInteger": nb},
        cc("capacitySourceType", ids.TRE_R335, "01"),
        {"url": "capacityUpdateDate", "valueDateTime": updated},
        cc("temporaryAssignement", ids.TRE_R337, assignment),
    ]
    if gender:
        ext.append(cc("genderCapacityAvailable", ids.TRE_R332, gender))
    return {"url": ids.EXT_CAPACITY, "extension": ext}


def org(
    rid: str, name: str, *, part_of: str | None = None, category: str | None = None, finess: str | None = None
) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Organization", "id": rid, "name": name}
    if finess:
        res["identifier"] = [{"system": ids.FINESS, "value": finess}]
    if part_of:
        res["partOf"] = {"reference": f"Organization/{part_of}"}
    if category:
        res["type"] = [{"coding": [{"system": R66, "code": category}]}]
    return res


def location(
    rid: str,
    name: str,
    lat: float,
    lon: float,
    commune: str,
    postal: str,
    capacities: list[dict[str, Any]] | None = None,
    org_id: str | None = None,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Location",
        "id": rid,
        "name": name,
        "status": "active",
        "identifier": [{"type": {"coding": [{"system": ids.TRE_R354, "code": "26"}]}, "value": f"EXT-{rid}"}],
        "address": {"postalCode": postal, "city": name.split()[-1]},
        "position": {"latitude": lat, "longitude": lon},
        "extension": [
            {
                "url": ids.EXT_COMMUNE_COG,
                "valueCodeableConcept": {"coding": [{"system": ids.TRE_R13, "code": commune}]},
            },
            *(capacities or []),
        ],
    }
    if org_id:
        res["managingOrganization"] = {"reference": f"Organization/{org_id}"}
    return res


def service(
    rid: str, name: str, activity: str, care_mode: str, org_id: str, loc_id: str, age: tuple[int, int] = (18, 120)
) -> dict[str, Any]:
    return {
        "resourceType": "HealthcareService",
        "id": rid,
        "name": name,
        "identifier": [{"value": f"53/{rid}"}],
        "providedBy": {"reference": f"Organization/{org_id}"},
        "location": [{"reference": f"Location/{loc_id}"}],
        "specialty": [{"coding": [{"system": R211, "code": activity}]}],
        "characteristic": [{"coding": [{"system": R213, "code": care_mode}]}],
        "extension": [
            {
                "url": ids.EXT_PATIENT_TYPE,
                "extension": [
                    {
                        "url": "ageRange",
                        "valueRange": {
                            "low": {"value": age[0], "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"},
                            "high": {"value": age[1], "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"},
                        },
                    }
                ],
            }
        ],
    }


def populate(store: ResourceStore) -> None:
    store.bulk_upsert(
        [
            org("ej-1", "CHU DE RENNES (EJ)", finess="350005179"),
            org("eg-1", "CHU Pontchaillou", part_of="ej-1", category="101", finess="350000741"),
            org("oi-1", "Pôle réanimation", part_of="eg-1"),
            org("ej-2", "CH BRETAGNE SUD (EJ)", finess="560023210"),
            org("eg-2", "CH de Lorient", part_of="ej-2", category="355", finess="560000135"),
            location(
                "loc-rea-rennes",
                "Réanimation Rennes",
                48.1215,
                -1.6957,
                "35238",
                "35033",
                [capacity("01", 20), capacity("02", 3, gender="01"), capacity("02", 0, gender="02")],
                org_id="eg-1",
            ),
            location(
                "loc-rea-lorient",
                "Réanimation Lorient",
                47.7525,
                -3.3675,
                "56121",
                "56100",
                [capacity("01", 12), capacity("02", 0, gender="01"), capacity("02", 2, gender="02")],
                org_id="eg-2",
            ),
            location(
                "loc-ped-rennes",
                "Pédiatrie Rennes",
                48.1005,
                -1.6610,
                "35238",
                "35203",
                [capacity("01", 10)],
                org_id="eg-1",
            ),
            service("hs-rea-rennes", "Réanimation médicale", "126", "28", "oi-1", "loc-rea-rennes"),
            service("hs-rea-lorient", "Réanimation polyvalente", "127", "28", "eg-2", "loc-rea-lorient"),
            service("hs-ped-rennes", "Pédiatrie générale", "233", "28", "eg-1", "loc-ped-rennes", age=(0, 18)),
        ]
    )
