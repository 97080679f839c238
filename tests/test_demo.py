"""Demo data: SAE units + generated offers + synthetic availability for a small scope, its constraints,
determinism and idempotency; the built-in seed without reference data; profile-required elements; NOS codes;
the capacity indicator builder's validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ror.directory import ids
from ror.directory.demo import DemoReport, load_demo
from ror.directory.scope import Scope
from ror.directory.seed import load_seed
from ror.directory.units import capacity_indicator, installed_count, is_capacity, read_indicator
from ror.store import ResourceStore
from ror.store.meta import REGION_SYSTEM
from tests.conftest import truncate_store
from tests.test_sae import assert_nos_codes, stored

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
DEP22 = Scope.parse("departement:22")


# --- establishments the FINESS import would have written (minimal EG dicts) ------------------------------------
def eg(finess: str, name: str, category: str, commune: str, lat: float, lon: float) -> list[dict[str, Any]]:
    region = "53"
    org = {
        "resourceType": "Organization",
        "id": ids.eg_id(finess),
        "meta": {"tag": [{"system": REGION_SYSTEM, "code": region}]},
        "identifier": [{"system": ids.FINESS, "value": finess}],
        "name": name,
        "type": [{"coding": [{"system": ids.TRE_R66, "code": category}]}],
    }
    place = {
        "resourceType": "Location",
        "id": ids.eg_address_location_id(finess),
        "meta": {"tag": [{"system": REGION_SYSTEM, "code": region}]},
        "extension": [
            {"url": ids.EXT_COMMUNE_COG, "valueCodeableConcept": {"coding": [{"system": ids.TRE_R13, "code": commune}]}}
        ],
        "address": {"line": [f"ADRESSE DE {name}"], "city": "X", "postalCode": commune[:2] + "000"},
        "position": {"longitude": lon, "latitude": lat},
    }
    return [org, place]


EGS = [
    *eg("220000012", "CH YVES LE FOLL", "355", "22278", 48.4917, -2.7496),  # in the SAE
    *eg("220020424", "EHPAD DES CHAMPS AU DUC", "500", "22278", 48.5218, -2.726),
    *eg("229999990", "CMP DE TEST", "156", "22050", 48.4523, -2.0602),
    *eg("220018006", "CDS INFIRMIER DE BROONS", "124", "22020", 48.3172, -2.2623),
    *eg("220019616", "HAD DU PAYS BRIOCHIN", "127", "22278", 48.4885, -2.7492),
    *eg("350000139", "EHPAD HORS SCOPE", "500", "35238", 48.11, -1.68),  # département 35: not generated
]


def run_demo(store: ResourceStore, reference_dir: Path | None, seed: int = 53, scope: Scope = DEP22) -> DemoReport:
    return load_demo(store, reference_dir, scope=scope, now=NOW, seed=seed)


@pytest.fixture
def demo22(store: ResourceStore, reference_dir: Path) -> DemoReport:
    store.bulk_upsert(EGS)
    return run_demo(store, reference_dir)


def capacities(loc: dict[str, Any]) -> list[dict[str, Any]]:
    return [read_indicator(e) for e in loc.get("extension") or [] if is_capacity(e)]


def snapshot(engine: Engine) -> dict[str, Any]:
    """Business content of every unit resource (without meta and creation date)."""
    out = {}
    for res_type in ("HealthcareService", "Location"):
        for res in stored(engine, res_type):
            body = {k: v for k, v in res.items() if k != "meta"}
            body["extension"] = [e for e in body.get("extension") or [] if "creation-date" not in e["url"]]
            out[res["id"]] = body
    return out


# --- demo with reference data -----------------------------------------------------------------------------------
def test_demo_small_scope_has_sae_units_and_generated_offers(demo22: DemoReport, engine: Engine) -> None:
    assert demo22.sae is not None and demo22.sae.establishments > 20
    assert demo22.generated == {"ehpad": 1, "cmp": 1, "cds": 1, "had": 1}
    ids_ = {loc["id"] for loc in stored(engine, "Location", "loc-")}
    assert {"loc-220020424-ehpad", "loc-229999990-cmp", "loc-220018006-cds", "loc-220019616-had"} <= ids_
    assert "loc-220000012-rea-adu" in ids_ and not any(i.startswith("loc-350000139") for i in ids_)
    ehpad = capacities(next(loc for loc in stored(engine, "Location") if loc["id"] == "loc-220020424-ehpad"))
    assert {c["capacityType"] for c in ehpad} == {"02"}  # places
    cmp = next(loc for loc in stored(engine, "Location") if loc["id"] == "loc-229999990-cmp")
    assert capacities(cmp) == [] and cmp["position"] == {"longitude": -2.0602, "latitude": 48.4523}
    assert demo22.locations_with_availability == sum(1 for loc in stored(engine, "Location") if installed_count(loc))


def test_availability_respects_installed_capacity(demo22: DemoReport, engine: Engine) -> None:
    seen_status: set[str] = set()
    update_ages: list[timedelta] = []
    for loc in stored(engine, "Location", "loc-"):
        installed = installed_count(loc)
        if installed is None:
            continue
        n = installed[1]
        current = [c for c in capacities(loc) if c["temporalityCapacity"] == "01"]
        available = sum(c["nbCapacity"] for c in current if c["capacityStatus"] == "02")
        occupied = sum(c["nbCapacity"] for c in current if c["capacityStatus"] == "03")
        closed = sum(c["nbCapacity"] for c in current if c["capacityStatus"] == "05")
        assert available <= n and occupied + available + closed <= n, loc["id"]
        for c in capacities(loc):
            seen_status.add(c["capacityStatus"])
            if c["capacityStatus"] == "02":
                assert c["genderCapacityAvailable"] in {"01", "02", "04"}
            else:
                assert "genderCapacityAvailable" not in c
            if c["capacityStatus"] == "05":
                assert c["capacityClosingType"] == "01"
            if c["capacityStatus"] == "06":
                assert c["additionalBedType"] == "02"
            if c["capacityStatus"] != "01":
                age = NOW - datetime.fromisoformat(c["capacityUpdateDate"])
                assert timedelta(0) <= age <= timedelta(hours=36)
                update_ages.append(age)
        genders = [c for c in current if c["capacityStatus"] == "02"]
        assert sorted(c["genderCapacityAvailable"] for c in genders) in (["04"], ["01", "02"])
    assert {"01", "02", "03"} <= seen_status
    assert sum(a <= timedelta(hours=4) for a in update_ages) > len(update_ages) / 2


def test_demo_is_deterministic_and_idempotent(
    demo22: DemoReport, store: ResourceStore, engine: Engine, reference_dir: Path
) -> None:
    first = snapshot(engine)
    again = run_demo(store, reference_dir)
    assert (again.written.created, again.written.updated) == (0, 0)
    assert again.written.unchanged == demo22.written.created
    truncate_store(engine)
    store.bulk_upsert(EGS)
    run_demo(store, reference_dir)
    assert snapshot(engine) == first
    other_seed = run_demo(store, reference_dir, seed=7)
    assert other_seed.written.updated > 0 and snapshot(engine) != first


def test_demo_follows_the_profiles_and_the_nos(demo22: DemoReport, engine: Engine, reference_dir: Path) -> None:
    services, locations = stored(engine, "HealthcareService"), stored(engine, "Location", "loc-")
    assert_profiles(services, locations)
    seen = assert_nos_codes(reference_dir, services + locations)
    assert (ids.TRE_R332, "04") in seen and (ids.TRE_R330, "03") in seen


# --- built-in seed (no reference data) --------------------------------------------------------------------------
def test_seed_without_reference_data(store: ResourceStore, engine: Engine) -> None:
    report = run_demo(store, None, scope=Scope.parse("region:53"))
    seed = load_seed()
    assert report.source == "built-in seed" and report.seed_establishments == len(seed.establishments) >= 10
    egs = stored(engine, "Organization", "eg-")
    assert {o["id"] for o in egs} == {ids.eg_id(e.finess) for e in seed.establishments}
    units = sum(len(e.units) for e in seed.establishments)
    assert len(stored(engine, "HealthcareService")) == len(stored(engine, "Location", "loc-")) == units
    with_beds = [loc for loc in stored(engine, "Location", "loc-") if installed_count(loc)]
    assert report.locations_with_availability == len(with_beds) > 20
    assert all(any(c["capacityStatus"] == "02" for c in capacities(loc)) for loc in with_beds)
    again = run_demo(store, None, scope=Scope.parse("region:53"))
    assert (again.written.created, again.written.updated) == (0, 0)


def test_seed_outside_its_departement_loads_nothing(store: ResourceStore, engine: Engine) -> None:
    report = run_demo(store, Path("/nonexistent/reference"), scope=Scope.parse("departement:35"))
    assert report.source == "built-in seed" and report.written.created == 0 and report.notes
    assert stored(engine, "Organization") == []


def test_seed_facts_and_codes(store: ResourceStore, engine: Engine, reference_dir: Path) -> None:
    seed = load_seed()
    for est in seed.establishments:
        assert est.finess.startswith(seed.departement) and est.commune.startswith(seed.departement)
        assert 48.0 < est.latitude < 49.0 and -3.8 < est.longitude < -1.9  # Côtes-d'Armor
    run_demo(store, None, scope=Scope.parse("departement:22"))
    everything = stored(engine, "Organization") + stored(engine, "HealthcareService") + stored(engine, "Location")
    assert_profiles(stored(engine, "HealthcareService"), stored(engine, "Location", "loc-"))
    seen = assert_nos_codes(reference_dir, everything)
    assert (ids.TRE_R66, "500") in seen and (ids.TRE_R13, "22278") in seen


# --- profile checks ---------------------------------------------------------------------------------------------
def _ext(res: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in res.get("extension") or [] if e["url"] == url]


def _codings(elements: list[dict[str, Any]], system: str) -> list[dict[str, Any]]:
    return [c for el in elements for c in el.get("coding") or [] if c.get("system") == system]


def assert_profiles(services: list[dict[str, Any]], locations: list[dict[str, Any]]) -> None:
    """The elements the ROR profiles require (docs/ror-fhir-api.md §6)."""
    assert services and locations
    for hs in services:
        assert hs["meta"]["profile"] == [ids.PROFILE_HEALTHCARESERVICE]
        assert len(hs["identifier"]) == 1 and hs["identifier"][0]["value"]
        assert len(hs["type"]) == 1 and _codings(hs["type"], ids.TRE_R227)
        assert len(_codings(hs["specialty"], ids.TRE_R211)) == 1
        assert len(_codings(hs["characteristic"], ids.TRE_R213)) == 1
        sensitive = _ext(hs, ids.EXT_SENSITIVE_UNIT)
        assert len(sensitive) == 1 and sensitive[0]["valueBoolean"] is False
        (patient,) = _ext(hs, ids.EXT_PATIENT_TYPE)
        (age,) = [e["valueRange"] for e in patient["extension"] if e["url"] == "ageRange"]
        assert age["low"]["code"] == age["high"]["code"] == "a" and age["low"]["value"] < age["high"]["value"]
        assert hs["providedBy"]["reference"].startswith("Organization/eg-")
        assert hs["location"][0]["reference"] == "Location/" + hs["id"].replace("hs-", "loc-", 1)
    for loc in locations:
        assert loc["meta"]["profile"] == [ids.PROFILE_LOCATION]
        assert len(_ext(loc, ids.EXT_COMMUNE_COG)) == 1
        types = {c["code"] for i in loc["identifier"] for c in i["type"]["coding"]}
        assert types == {"25", "26"}
        assert loc["status"] == "active" and loc["operationalStatus"]["code"] == "3"
        assert len(_codings(loc["type"], ids.TRE_R343)) == 1
        for cap in _ext(loc, ids.EXT_CAPACITY):
            assert len(cap["extension"]) >= 7


# --- capacity indicator builder ---------------------------------------------------------------------------------
def test_capacity_indicator_shape() -> None:
    ind = capacity_indicator("01", "02", "01", 3, "01", NOW, gender="04")
    assert ind["url"] == ids.EXT_CAPACITY
    urls = [e["url"] for e in ind["extension"]]
    assert urls == [
        "capacityType",
        "capacityStatus",
        "temporalityCapacity",
        "nbCapacity",
        "capacitySourceType",
        "genderCapacityAvailable",
        "capacityUpdateDate",
        "temporaryAssignement",
    ]
    gender = ind["extension"][5]["valueCodeableConcept"]["coding"][0]
    assert gender == {"system": ids.TRE_R332, "code": "04", "display": "Indéterminé"}
    assert read_indicator(ind)["capacityUpdateDate"] == "2026-11-30T08:00:00+00:00"
    supp = capacity_indicator("01", "06", "01", 2, "01", NOW, additional_bed_type="03", crisis_type="02")
    assert {"additionalBedType", "crisisType"} <= {e["url"] for e in supp["extension"]}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "01", "gender": "01"}, "genderCapacityAvailable"),
        ({"status": "02", "closing_type": "01"}, "capacityClosingType"),
        ({"status": "05", "closing_type": "01", "additional_bed_type": "02"}, "additionalBedType"),
        ({"status": "05"}, "capacityClosingType"),
        ({"status": "06"}, "additionalBedType"),
        ({"status": "02", "crisis_type": "01"}, "crisisType"),
        ({"status": "05", "closing_type": "01", "crisis_type": "01"}, "crisisType"),
        ({"status": "07"}, "capacityStatus"),
        ({"status": "02", "gender": "03"}, "genderCapacityAvailable"),
        ({"status": "01", "nb": -1}, "nbCapacity"),
    ],
)
def test_capacity_indicator_rejects_invalid_combinations(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"nature": "01", "temporality": "01", "nb": 1, "source_type": "01", "update_date": NOW}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        capacity_indicator(**args)
