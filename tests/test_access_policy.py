"""Access matrix: for each profile, what of the seeded data is visible (core filter + contexts)."""

from __future__ import annotations

from typing import Any

import pytest

from ror.access.context import contexts
from ror.access.policy import Context, Profile, filter_resource
from ror.directory import ids
from ror.store import ResourceStore
from tests.search_fixtures import capacity, location, org, service


def telecom(value: str, level: int) -> dict[str, Any]:
    def cc(url: str, system: str, code: str) -> dict[str, Any]:
        return {"url": url, "valueCodeableConcept": {"coding": [{"system": system, "code": code}]}}

    return {
        "system": "phone",
        "value": value,
        "extension": [
            cc(ids.EXT_TELECOM_CHANNEL, ids.TRE_R200, "2"),
            cc(ids.EXT_TELECOM_CONFIDENTIALITY, ids.TRE_R283, str(level)),
        ],
    }


def champ(hs: dict[str, Any], code: str) -> dict[str, Any]:
    hs["type"] = [{"coding": [{"system": ids.TRE_R227, "code": code}]}]
    return hs


def sensitive(hs: dict[str, Any]) -> dict[str, Any]:
    hs["extension"].append({"url": ids.EXT_SENSITIVE_UNIT, "valueBoolean": True})
    return hs


CAPS = [capacity("01", 20), capacity("02", 3, gender="01"), capacity("03", 15), capacity("06", 2)]


def seed(store: ResourceStore) -> None:
    eg = org("eg-1", "CH", finess="350000001")
    eg["telecom"] = [telecom("0101010101", 1), telecom("0202020202", 2), telecom("0303030303", 3)]
    loc_mco = location("loc-mco", "MCO Rennes", 48.1, -1.6, "35238", "35000", CAPS, org_id="eg-1")
    loc_mco["telecom"] = [telecom("0404040404", 1), telecom("0505050505", 3)]
    store.bulk_upsert(
        [
            eg,
            loc_mco,
            location("loc-ms", "EHPAD", 48.1, -1.6, "35238", "35000", CAPS, org_id="eg-1"),
            location("loc-secret", "Secret", 48.1, -1.6, "35238", "35000", CAPS, org_id="eg-1"),
            champ(service("hs-mco", "Réa", "127", "28", "eg-1", "loc-mco"), "01"),
            champ(service("hs-ms", "EHPAD", "999", "46", "eg-1", "loc-ms"), "04"),
            sensitive(champ(service("hs-secret", "Secret", "001", "28", "eg-1", "loc-secret"), "01")),
        ]
    )


def visible_view(store: ResourceStore, res_type: str, res_id: str, profile: Profile) -> dict[str, Any] | None:
    stored = store.read(res_type, res_id)
    pk = store.pk_of(res_type, res_id)
    with store.read_conn() as c:
        ctx = contexts(c, [(pk, res_type, res_id)])[pk]
    return filter_resource(stored.resource(), profile, ctx)


def phones(res: dict[str, Any] | None) -> list[str]:
    return sorted(t["value"] for t in (res or {}).get("telecom", []))


def statuses(res: dict[str, Any] | None) -> list[str]:
    out = []
    for e in (res or {}).get("extension", []):
        if e["url"] == ids.EXT_CAPACITY:
            out += [
                s["valueCodeableConcept"]["coding"][0]["code"] for s in e["extension"] if s["url"] == "capacityStatus"
            ]
    return sorted(out)


EXPECTED = {
    # profile: (EG phones, loc-mco capacity statuses, loc-ms statuses, secret visible, loc-mco phones)
    Profile.OPEN_DATA: (["0101010101"], [], [], False, ["0404040404"]),
    Profile.ALL: (
        ["0101010101", "0202020202", "0303030303"],
        ["01", "02", "03", "06"],
        ["01", "02", "03", "06"],
        True,
        ["0404040404", "0505050505"],
    ),
    Profile.PROFESSIONAL: (["0101010101", "0202020202"], ["01", "02", "03"], ["01", "02", "03"], False, ["0404040404"]),
    Profile.MEDICO_SOCIAL: (["0101010101", "0202020202"], [], ["01", "02", "03"], False, ["0404040404"]),
    Profile.NO_CONTACTS: (["0101010101"], ["01", "02", "03", "06"], ["01", "02", "03", "06"], True, ["0404040404"]),
    Profile.INSTALLED_ONLY: (["0101010101", "0202020202"], ["01"], ["01"], False, ["0404040404"]),
}


@pytest.mark.parametrize("profile", list(Profile))
def test_access_matrix(store: ResourceStore, profile: Profile) -> None:
    seed(store)
    eg_phones, mco_caps, ms_caps, secret_visible, mco_phones = EXPECTED[profile]
    assert phones(visible_view(store, "Organization", "eg-1", profile)) == eg_phones
    assert statuses(visible_view(store, "Location", "loc-mco", profile)) == mco_caps
    assert phones(visible_view(store, "Location", "loc-mco", profile)) == mco_phones
    assert statuses(visible_view(store, "Location", "loc-ms", profile)) == ms_caps
    assert (visible_view(store, "HealthcareService", "hs-secret", profile) is not None) == secret_visible
    assert (visible_view(store, "Location", "loc-secret", profile) is not None) == secret_visible


def test_missing_level_counts_as_most_restricted() -> None:
    res = {"resourceType": "Organization", "telecom": [{"system": "phone", "value": "x"}]}
    assert "telecom" not in (filter_resource(res, Profile.PROFESSIONAL, Context()) or {})
    assert filter_resource(res, Profile.ALL, Context())["telecom"] == res["telecom"]  # type: ignore[index]
