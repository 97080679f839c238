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


# --- the same matrix through every FHIR read path -------------------------------------------------------------
def _by_id(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["resource"]["id"]: e["resource"] for e in bundle.get("entry", [])}


@pytest.mark.parametrize("profile", list(Profile))
def test_access_matrix_over_http(store: ResourceStore, profile: Profile) -> None:
    """Read, search, _include, _revinclude and _history over HTTP show exactly what the policy allows: the caller's
    profile is the server's anonymous profile here (tokens are tested in test_auth.py)."""
    from fastapi.testclient import TestClient

    from ror.server import create_app

    seed(store)
    # a second version of loc-mco, so that _history has two versions to filter
    mco = store.read("Location", "loc-mco").resource()
    mco["name"] = "MCO Rennes (v2)"
    store.update("Location", "loc-mco", mco)
    eg_phones, mco_caps, ms_caps, secret_visible, mco_phones = EXPECTED[profile]
    with TestClient(create_app(store.engine, anonymous_profile=profile)) as client:

        def get(url: str) -> Any:
            r = client.get(url)
            assert r.status_code == 200, (url, r.status_code, r.text[:300])
            return r.json()

        # read
        assert phones(get("/fhir/Organization/eg-1")) == eg_phones
        mco_read = get("/fhir/Location/loc-mco")
        assert (statuses(mco_read), phones(mco_read)) == (mco_caps, mco_phones)
        assert statuses(get("/fhir/Location/loc-ms")) == ms_caps
        for path in ("/fhir/HealthcareService/hs-secret", "/fhir/Location/loc-secret"):
            assert (client.get(path).status_code == 200) == secret_visible, path
        # search
        found = _by_id(get("/fhir/Location?_id=loc-mco,loc-ms,loc-secret"))
        assert (statuses(found["loc-mco"]), phones(found["loc-mco"])) == (mco_caps, mco_phones)
        assert statuses(found["loc-ms"]) == ms_caps
        assert ("loc-secret" in found) == secret_visible
        # _include: the offers' places and establishment
        inc = _by_id(
            get(
                "/fhir/HealthcareService?_id=hs-mco,hs-secret"
                "&_include=HealthcareService:location&_include=HealthcareService:organization"
            )
        )
        assert phones(inc["eg-1"]) == eg_phones
        assert (statuses(inc["loc-mco"]), phones(inc["loc-mco"])) == (mco_caps, mco_phones)
        assert ("hs-secret" in inc, "loc-secret" in inc) == (secret_visible, secret_visible)
        # _revinclude: the offers of the places
        rev = _by_id(get("/fhir/Location?_id=loc-mco,loc-secret&_revinclude=HealthcareService:location"))
        assert "hs-mco" in rev
        assert ("hs-secret" in rev, "loc-secret" in rev) == (secret_visible, secret_visible)
        # _history: every version filtered the same way
        versions = [e["resource"] for e in get("/fhir/Location/loc-mco/_history").get("entry", [])]
        assert len(versions) == 2
        assert all((statuses(v), phones(v)) == (mco_caps, mco_phones) for v in versions)
        secret_history = client.get("/fhir/Location/loc-secret/_history")
        assert (secret_history.status_code == 200) == secret_visible
