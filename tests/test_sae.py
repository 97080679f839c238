"""SAE import: national totals read back from the stored Locations, SITOT counted once, empty vs 0, scope,
idempotency, and every NOS code emitted checked against the NOS files."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from ror.db.tables import resource
from ror.directory import ids
from ror.directory.sae import import_sae, insee_commune, insee_departement
from ror.directory.scope import Scope
from ror.directory.units import (
    LABELS,
    STATUS_AVAILABLE,
    UNIT_TYPES,
    capacity_indicator,
    installed_count,
    is_capacity,
    read_indicator,
)
from ror.store import ResourceStore
from tests.conftest import truncate_store

NOS_PREFIX = "https://mos.esante.gouv.fr/NOS/"

# docs/data-sources.md §2.2 — installed beds, SAE 2023
EXPECTED_BEDS = {
    "rea-adu": 5224,
    "rea-ped": 351,
    "si-usic": 2753,
    "si-unv": 967,
    "si-aut": 2194,
    "sc-adu": 6993,
    "sc-ped": 942,
    "neonat-rea": 760,
    "neonat-si": 1211,
    "neonat": 2813,
    "med": 118728,
    "chi": 52863,
    "obs": 15836,
    "psy": 51266,
    "smr": 101367,
    "usld": 29249,
}


# --- helpers shared with test_demo ------------------------------------------------------------------------------
def stored(engine: Engine, res_type: str, id_prefix: str = "") -> list[dict[str, Any]]:
    q = select(resource.c.content).where(resource.c.res_type == res_type, resource.c.deleted.is_(False))
    if id_prefix:
        q = q.where(resource.c.res_id.like(f"{id_prefix}%"))
    with engine.connect() as c:
        return [orjson.loads(content) for (content,) in c.execute(q)]


def unit_key(location_id: str) -> str:
    return location_id.split("-", 2)[2]


def installed_by_type(engine: Engine) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Beds and establishments per unit type, read back from the installed indicators of the stored Locations."""
    beds: dict[str, int] = defaultdict(int)
    establishments: dict[str, set[str]] = defaultdict(set)
    for loc in stored(engine, "Location", "loc-"):
        installed = installed_count(loc)
        if installed is not None:
            key = unit_key(loc["id"])
            beds[key] += installed[1]
            establishments[key].add(loc["id"].split("-")[1])
    return dict(beds), dict(establishments)


def _walk_codings(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("system"), str) and "code" in node:
            yield node
        for v in node.values():
            yield from _walk_codings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_codings(v)


_FSH_CODE = re.compile(r'#([0-9A-Za-z]+) "([^"]*)"')


def _fsh_labels(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("* $TRE") or line.startswith("* #"):
            m = _FSH_CODE.search(line)
            if m and "^" not in line.split(m.group(0))[0]:
                out.setdefault(m.group(1), m.group(2))
    return out


def _json_labels(path: Path) -> dict[str, str]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    concepts = doc.get("concept") or [c for inc in doc.get("compose", {}).get("include", []) for c in inc["concept"]]
    return {c["code"]: c["display"] for c in concepts}


# Where the official code list of each system emitted is (fsh-2026 = current ROR value sets, else smt-2023 TRE).
NOS_SOURCES = {
    ids.TRE_R211: "fsh-2026/JDV_J17_ActiviteOperationnelle_ROR.fsh",
    ids.TRE_R213: "fsh-2026/JDV_J19_ModePriseEnCharge_ROR.fsh",
    ids.TRE_R343: "fsh-2026/JDV_J198_FonctionLieu_ROR.fsh",
    ids.TRE_R244: "fsh-2026/JDV_J238_TypeOffre_ROR.fsh",
    ids.TRE_R66: "fsh-2026/JDV_J55_CategorieEG_ROR.fsh",
    ids.TRE_R329: "fsh-2026/TRE_R329_NatureCapacite.fsh",
    ids.TRE_R330: "fsh-2026/TRE_R330_TypeStatutCapacite.fsh",
    ids.TRE_R332: "fsh-2026/TRE_R332_GenreCapacite.fsh",
    ids.TRE_R227: "smt-2023/TRE_R227_ChampActivite.json",
    ids.TRE_R203: "smt-2023/TRE_R203_StatutLieu.json",
    ids.TRE_R354: "smt-2023/TRE_R354_TypeIdentifiantRessourceOperationnelle.json",
    ids.TRE_R355: "smt-2023/TRE_R355_TypeIdentifiantOffre.json",
    ids.TRE_R331: "smt-2023/TRE_R331_TemporaliteCapacite.json",
    ids.TRE_R333: "smt-2023/TRE_R333_TypeFermetureCapacite.json",
    ids.TRE_R334: "smt-2023/TRE_R334_TypeLitSupplementaire.json",
    ids.TRE_R335: "smt-2023/TRE_R335_TypeSourceCapacite.json",
    ids.TRE_R336: "smt-2023/TRE_R336_TypeCrise.json",
    ids.TRE_R337: "smt-2023/TRE_R337_AffectationTemporaire.json",
    ids.nos("TRE_R240-TemporaliteAccueil"): "smt-2023/TRE_R240_TemporaliteAccueil.json",
    ids.TRE_G07: "smt-2023/TRE_G07_TypeIdentifiantStructure.json",
    ids.TRE_R30: "smt-2023/TRE_R30_RegionOM.json",
}


@cache
def official_labels(reference_dir: Path, system: str) -> dict[str, str]:
    path = reference_dir / "nos" / NOS_SOURCES[system]
    return _fsh_labels(path) if path.suffix == ".fsh" else _json_labels(path)


@cache
def commune_codes(reference_dir: Path) -> frozenset[str]:
    return frozenset(c["code"] for c in json.loads((reference_dir / "geo" / "communes.json").read_text()))


def assert_nos_codes(reference_dir: Path, resources: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Every NOS coding exists in its official file, with the official label; returns the (system, code) seen."""
    seen: set[tuple[str, str]] = set()
    wrong: list[str] = []
    for res in resources:
        for c in _walk_codings(res):
            system, code = c["system"], c["code"]
            if not system.startswith(NOS_PREFIX):
                continue
            seen.add((system, code))
            if system == ids.TRE_R13:
                if code not in commune_codes(reference_dir):
                    wrong.append(f"{res['id']}: commune {code}")
                continue
            assert system in NOS_SOURCES, f"no NOS file known for {system}"
            labels = official_labels(reference_dir, system)
            if code not in labels:
                wrong.append(f"{res['id']}: {system.rsplit('/', 1)[1]}#{code} does not exist")
            elif "display" in c and c["display"] != labels[code]:
                wrong.append(f"{res['id']}: {system.rsplit('/', 1)[1]}#{code} {c['display']!r} != {labels[code]!r}")
    assert sorted(set(wrong)) == []
    return seen


# --- national import (once) -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def national(engine: Engine, reference_dir: Path) -> dict[str, Any]:
    truncate_store(engine)
    report = import_sae(ResourceStore(engine), reference_dir / "capacity", scope=Scope("national"))
    beds, establishments = installed_by_type(engine)
    generic_si = sum(1 for loc in stored(engine, "Location", "loc-") if unit_key(loc["id"]) == "si")
    return {"report": report, "beds": beds, "establishments": establishments, "generic_si": generic_si}


def test_national_totals_match_the_published_sae_figures(national: dict[str, Any]) -> None:
    beds = national["beds"]
    for key, expected in EXPECTED_BEDS.items():
        assert beds.get(key) == expected, key
    assert len(national["establishments"]["rea-adu"]) == 317
    assert beds["uhcd"] + beds["uhcd-ped"] == 4776
    assert beds["med"] + beds["chi"] + beds["obs"] == 187427
    assert national["report"].beds == beds  # the report says what was stored


def test_sitot_is_counted_once_nationally(national: dict[str, Any]) -> None:
    beds = national["beds"]
    assert beds["si-usic"] + beds["si-unv"] + beds["si-aut"] == 5914  # = the SITOT total
    assert "si" not in beds and national["generic_si"] == 0  # 2023: every SITOT has its detail rows


# --- small SAE folders written by the tests ---------------------------------------------------------------------
ID_HEADER = "bor;an;fi;rs;fi_ej;reg;dep;COMINSEE;NOMCOM;NUMVOI;TYPVOI;NOMVOI;BP;CPO;LIBCOM"
ID_ROWS = [
    "ID;2023;220000012;CH D’ARMOR ÉTÉ;220000020;53;22;22278;SAINT BRIEUC;10;R;MARCEL PROUST;;22000;ST BRIEUC",
    "ID;2023;290000017;CH DE TEST;290000009;53;29;29019;BREST;2;AV;FOCH;;29200;BREST",
    "ID;2023;350000022;CLINIQUE TEST;350000014;53;35;35238;RENNES;;;;;35000;RENNES",
    "ID;2023;970408748;CH OUEST REUNION;970408755;04;9D;9D415;SAINT PAUL;;;;;97460;ST PAUL",
]
REA_HEADER = "BOR;AN;FI;RS;FI_EJ;UNI;LIT;LIT_PROXI"
REA_ROWS = [
    "REA;2023;220000012;X;220000020;SITOT;10;",
    "REA;2023;220000012;X;220000020;USIC;6;",
    "REA;2023;220000012;X;220000020;SIUNV;4;",
    "REA;2023;220000012;X;220000020;AUTSI;;",
    "REA;2023;290000017;X;290000009;SITOT;7;",
    "REA;2023;350000022;X;350000014;REAADU;;",
    "REA;2023;350000022;X;350000014;SURVADU;0;",
    "REA;2023;350000022;X;350000014;REAENF;3;",
]
MCO_HEADER = "BOR;AN;FI;RS;FI_EJ;LIT_MED;LIT_CHI;LIT_OBS;LIT_MCO"
MCO_ROWS = ["MCO;2023;970408748;X;970408755;;12;0;12"]


def write_sae(folder: Path) -> Path:
    sae = folder / "sae-2023"
    sae.mkdir(parents=True)
    for name, header, rows in (
        ("ID_2023r.csv", ID_HEADER, ID_ROWS),
        ("REA_2023r.csv", REA_HEADER, REA_ROWS),
        ("MCO_2023r.csv", MCO_HEADER, MCO_ROWS),
    ):
        (sae / name).write_bytes(("\n".join([header, *rows]) + "\n").encode("cp1252"))
    return folder


def unit_beds(engine: Engine) -> dict[str, int]:
    out = {}
    for loc in stored(engine, "Location", "loc-"):
        installed = installed_count(loc)
        assert installed is not None
        out[loc["id"]] = installed[1]
    return out


def test_sitot_detail_rows_win_and_a_lone_sitot_makes_one_generic_unit(
    store: ResourceStore, engine: Engine, tmp_path: Path
) -> None:
    report = import_sae(store, write_sae(tmp_path))
    beds = unit_beds(engine)
    assert beds["loc-220000012-si-usic"] == 6 and beds["loc-220000012-si-unv"] == 4
    assert "loc-220000012-si" not in beds and "loc-220000012-si-aut" not in beds  # AUTSI empty: unknown
    assert beds["loc-290000017-si"] == 7  # SITOT without detail rows
    assert report.beds["si-usic"] + report.beds["si-unv"] + report.beds["si"] == 17
    assert report.missing_tables == ["PERINAT", "URGENCES2", "PSY", "SSR", "USLD"]


def test_empty_is_unknown_and_zero_creates_no_unit(store: ResourceStore, engine: Engine, tmp_path: Path) -> None:
    report = import_sae(store, write_sae(tmp_path))
    beds = unit_beds(engine)
    assert {k for k in beds if k.startswith("loc-350000022")} == {"loc-350000022-rea-ped"}  # '' and 0: no unit
    assert {k for k in beds if k.startswith("loc-970408748")} == {"loc-970408748-chi"}
    assert (report.empty_cells, report.zero_cells) == (3, 2)
    services = {s["id"] for s in stored(engine, "HealthcareService")}
    assert services == {b.replace("loc-", "hs-", 1) for b in beds}
    assert report.establishments == 4 and report.units == len(beds) == 5


def test_establishment_details_from_the_id_table(store: ResourceStore, engine: Engine, tmp_path: Path) -> None:
    import_sae(store, write_sae(tmp_path))
    loc = store.read("Location", "loc-970408748-chi").resource()
    assert loc["meta"]["tag"][0]["code"] == "04"
    cog = next(e for e in loc["extension"] if e["url"] == ids.EXT_COMMUNE_COG)
    assert cog["valueCodeableConcept"]["coding"][0]["code"] == "97415"  # SAE writes 9D415
    brieuc = store.read("HealthcareService", "hs-220000012-si-usic").resource()
    assert brieuc["providedBy"] == {"reference": "Organization/eg-220000012"}
    assert store.read("Location", "loc-220000012-si-usic").resource()["address"]["line"] == ["10 R MARCEL PROUST"]
    assert (insee_departement("9A"), insee_departement("2B"), insee_commune("9A101")) == ("971", "2B", "97101")


def test_scope_departement_keeps_its_establishments_only(store: ResourceStore, engine: Engine, tmp_path: Path) -> None:
    report = import_sae(store, write_sae(tmp_path), scope=Scope.parse("departement:974"))
    assert report.establishments == 1
    assert {loc["id"] for loc in stored(engine, "Location")} == {"loc-970408748-chi"}


def test_stored_establishment_address_and_position_are_copied(
    store: ResourceStore, engine: Engine, tmp_path: Path
) -> None:
    address = {"line": ["10 RUE MARCEL PROUST"], "postalCode": "22000", "city": "SAINT-BRIEUC"}
    position = {"longitude": -2.7496, "latitude": 48.4917}
    store.bulk_upsert(
        [
            {"resourceType": "Organization", "id": "eg-220000012", "name": "CH YVES LE FOLL"},
            {"resourceType": "Location", "id": "eg-220000012-adr", "address": address, "position": position},
        ]
    )
    import_sae(store, write_sae(tmp_path))
    loc = store.read("Location", "loc-220000012-si-usic").resource()
    assert (loc["address"], loc["position"]) == (address, position)


def test_reimport_keeps_the_other_indicators_of_a_place(store: ResourceStore, engine: Engine, tmp_path: Path) -> None:
    folder = write_sae(tmp_path)
    import_sae(store, folder)
    loc = store.read("Location", "loc-220000012-si-usic").resource()
    available = capacity_indicator("01", STATUS_AVAILABLE, "01", 2, "02", "2026-11-30T08:00:00+00:00", gender="04")
    loc["extension"].append(available)
    store.update("Location", loc["id"], loc)
    report = import_sae(store, folder)
    assert (report.written.created, report.written.updated) == (0, 0)
    after = store.read("Location", "loc-220000012-si-usic").resource()
    statuses = [read_indicator(e)["capacityStatus"] for e in after["extension"] if is_capacity(e)]
    assert statuses == ["01", "02"]


# --- Bretagne, from the real files ------------------------------------------------------------------------------
def test_bretagne_scope_idempotency_and_nos_codes(store: ResourceStore, engine: Engine, reference_dir: Path) -> None:
    report = import_sae(store, reference_dir / "capacity", scope=Scope.parse("region:53"))
    locations, services = stored(engine, "Location"), stored(engine, "HealthcareService")
    finess = {loc["id"].split("-")[1] for loc in locations}
    assert report.establishments == len(finess) > 100
    assert {f[:2] for f in finess} == {"22", "29", "35", "56"}
    for res in locations + services:
        assert res["meta"]["tag"] == [{"system": ids.TRE_R30, "code": "53"}]
    again = import_sae(store, reference_dir / "capacity", scope=Scope.parse("region:53"))
    assert (again.written.created, again.written.updated) == (0, 0)
    assert again.written.unchanged == len(locations) + len(services)
    assert {r["meta"]["versionId"] for r in stored(engine, "Location") + stored(engine, "HealthcareService")} == {"1"}
    seen = assert_nos_codes(reference_dir, locations + services)
    assert (ids.TRE_R211, "127") in seen and (ids.TRE_R213, "28") in seen


def test_every_code_the_builders_may_emit_is_official(reference_dir: Path) -> None:
    """units.LABELS is the whole set of NOS codes the builders can emit (any other code raises KeyError)."""
    codings = [{"system": s, "code": c, "display": label} for s, codes in LABELS.items() for c, label in codes.items()]
    seen = assert_nos_codes(reference_dir, [{"id": "units.LABELS", "coding": codings}])
    assert len(seen) == len(codings)
    for unit in UNIT_TYPES.values():
        assert unit.activity in LABELS[ids.TRE_R211] and unit.care_mode in LABELS[ids.TRE_R213]
        assert unit.field in LABELS[ids.TRE_R227] and unit.place_function in LABELS[ids.TRE_R343]
        assert unit.category is None or unit.category in LABELS[ids.TRE_R244]
