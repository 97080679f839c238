"""FINESS importer: the national flat file (heavy, once per module), the etalab format (real sample lines and a
synthetic cs1100507 file with geolocation), scope filtering, malformed lines."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from pyproj import Transformer
from sqlalchemy import Engine, func, select

from ror.db import migrate
from ror.db.engine import is_sqlite, make_engine
from ror.db.tables import import_run, resource
from ror.directory import ids
from ror.directory.finess import FinessReport, crs_of, departement_of_finess, import_finess
from ror.directory.scope import Scope
from ror.errors import InvalidRequest
from ror.geo import Geography
from ror.geo.loader import load_geography
from ror.store import ResourceStore
from ror.store.meta import REGION_SYSTEM
from tests.conftest import truncate_store

NATIONAL = "finess/finess_et_20210108_flat_from_fhir.csv.gz"
SAMPLE = "finess/sample-lines/etalab-cs1100502-stock-20260512-0339.sample15.latin1.csv"
# (lat min, lat max, lon min, lon max) of the overseas territories
BBOX = {
    "972": (14.38, 14.89, -61.24, -60.80),  # Martinique
    "973": (2.10, 5.80, -54.61, -51.60),  # Guyane
    "974": (-21.40, -20.86, 55.21, 55.84),  # La Réunion
}


# --- fixtures -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def geography(engine: Engine, reference_dir: Path) -> Geography:
    load_geography(engine, reference_dir / "geo")
    return Geography(engine)


@pytest.fixture
def importer_store(store: ResourceStore, geography: Geography) -> ResourceStore:
    return ResourceStore(store.engine, store.registry, region_of=geography.region_of_commune)


def _resource(engine: Engine, res_type: str, res_id: str) -> dict[str, Any] | None:
    with engine.connect() as c:
        content = c.execute(
            select(resource.c.content).where(resource.c.res_type == res_type, resource.c.res_id == res_id)
        ).scalar()
    return None if content is None else orjson.loads(content)


def _count(engine: Engine, res_type: str, prefix: str = "") -> int:
    with engine.connect() as c:
        q = select(func.count()).select_from(resource).where(resource.c.res_type == res_type)
        if prefix:
            q = q.where(resource.c.res_id.like(prefix + "%"))
        return int(c.execute(q).scalar_one())


def _region(res: dict[str, Any]) -> str | None:
    return next((t["code"] for t in res["meta"].get("tag", []) if t["system"] == REGION_SYSTEM), None)


def _commune_cog(location: dict[str, Any]) -> str:
    ext = next(e for e in location["extension"] if e["url"] == ids.EXT_COMMUNE_COG)
    return ext["valueCodeableConcept"]["coding"][0]["code"]


@dataclass
class NationalRun:
    first: FinessReport
    second: FinessReport
    eg: int
    ej: int
    locations: int
    samples: dict[str, dict[str, Any] | None]  # resource key -> content
    runs: list[Any]


# the national import takes minutes (store-bound, see bench/bench_finess_import.py): above the default 600 s
# timeout on a loaded 2-core machine, so the tests that may trigger it get more room
HEAVY = pytest.mark.timeout(1800)
OVERSEAS = {"970200028": "972", "970300026": "973", "970400024": "974"}  # CH Lorrain, CH Cayenne, CHU Félix Guyon


@pytest.fixture(scope="module")
def national_engine(engine: Engine, reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The database of the national import. On SQLite a database of its own: emptying 237,750 resources and
    3.5 M index rows afterwards (the `store` fixture) would cost more than the import; on PostgreSQL the test
    database, truncated before and after."""
    if not is_sqlite(engine):
        truncate_store(engine)
        yield engine
        truncate_store(engine)
        return
    own = make_engine(f"sqlite:///{tmp_path_factory.mktemp('national') / 'national.db'}")
    migrate.upgrade(own)
    load_geography(own, reference_dir / "geo")
    yield own
    own.dispose()


@pytest.fixture(scope="module")
def national(national_engine: Engine, reference_dir: Path, geography: Geography) -> NationalRun:
    """The whole national file imported, then imported again (the heavy part of this module, done once).
    `geography` makes sure the geography is loaded in the test database (PostgreSQL case)."""
    engine = national_engine
    geo = Geography(engine)
    store = ResourceStore(engine, region_of=geo.region_of_commune)
    first = import_finess(store, reference_dir / NATIONAL, geography=geo)
    second = import_finess(store, reference_dir / NATIONAL, geography=geo)
    keys = [("Organization", "eg-010000024"), ("Location", "eg-010000024-adr"), ("Organization", "ej-010780054")]
    keys += [("Location", ids.eg_address_location_id(et)) for et in OVERSEAS]
    with engine.connect() as c:
        runs = c.execute(select(import_run).where(import_run.c.kind == "finess").order_by(import_run.c.pk)).all()
    return NationalRun(
        first=first,
        second=second,
        eg=_count(engine, "Organization", "eg-"),
        ej=_count(engine, "Organization", "ej-"),
        locations=_count(engine, "Location"),
        samples={rid: _resource(engine, rt, rid) for rt, rid in keys},
        runs=list(runs),
    )


# --- the national flat file -----------------------------------------------------------------------------------
@pytest.mark.national
@HEAVY
def test_national_import_counts_and_idempotency(national: NationalRun) -> None:
    first, second = national.first, national.second
    assert (first.format, first.rows_read, first.extraction_date) == ("flat", 95_333, "2021-01-08")
    assert (national.eg, national.ej, national.locations) == (95_333, 47_084, 95_333)
    assert (first.eg.created, first.ej.created, first.locations.created) == (95_333, 47_084, 95_333)
    assert first.errors == []
    assert sum(first.commune_match.values()) == 95_333
    assert first.commune_match["postcode+name"] > 85_000
    assert "unknown" not in first.commune_match
    # re-run: nothing created, nothing updated
    assert (second.eg.created, second.ej.created, second.locations.created) == (0, 0, 0)
    assert (second.eg.updated, second.ej.updated, second.locations.updated) == (0, 0, 0)
    assert (second.eg.unchanged, second.ej.unchanged, second.locations.unchanged) == (95_333, 47_084, 95_333)
    assert [r.created for r in national.runs] == [237_750, 0]
    assert all(r.finished is not None and r.errors == 0 for r in national.runs)


@pytest.mark.national
@HEAVY
def test_national_eg_organization(national: NationalRun) -> None:
    eg = national.samples["eg-010000024"]
    assert eg is not None
    assert eg["meta"]["profile"] == [ids.PROFILE_ORGANIZATION]
    assert _region(eg) == "84"
    assert eg["name"] == "CH DE FLEYRIAT"
    assert eg["active"] is True
    assert eg["partOf"] == {"reference": "Organization/ej-010780054"}
    idents = {(i["system"], i["value"], i["type"]["coding"][0]["code"]) for i in eg["identifier"]}
    assert idents == {
        (ids.ID_NAT_STRUCT, "1010000024", "40"),
        (ids.FINESS, "010000024", "1"),
        (ids.SIRENE, "26010004500012", "3"),
    }
    codings = {(t["coding"][0]["system"], t["coding"][0]["code"]) for t in eg["type"]}
    assert codings == {(ids.TRE_R66, "355"), (ids.TRE_R65, "1102"), (ids.TRE_R73, "1")}
    phone = eg["telecom"][0]
    assert (phone["system"], phone["value"]) == ("phone", "0474454647")
    channel = {e["url"]: e["valueCodeableConcept"]["coding"][0]["code"] for e in phone["extension"]}
    assert channel == {ids.EXT_TELECOM_CHANNEL: "2", ids.EXT_TELECOM_CONFIDENTIALITY: "1"}
    address = eg["address"][0]
    assert (address["line"], address["postalCode"], address["city"]) == (["900 RTE DE PARIS"], "01440", "VIRIAT")
    assert address["extension"][0]["valueCoding"]["code"] == "01451"
    period = next(e for e in eg["extension"] if e["url"] == ids.EXT_ORG_PERIOD)
    assert period["valuePeriod"] == {"start": "1979-02-13"}


@pytest.mark.national
@HEAVY
def test_national_ej_and_location(national: NationalRun) -> None:
    ej = national.samples["ej-010780054"]
    assert ej is not None
    assert "name" not in ej  # the ET files carry no EJ name: left absent rather than invented
    assert {i["value"] for i in ej["identifier"]} == {"1010780054", "010780054"}
    assert _region(ej) == "84"
    loc = national.samples["eg-010000024-adr"]
    assert loc is not None
    assert loc["meta"]["profile"] == [ids.PROFILE_LOCATION]
    assert _commune_cog(loc) == "01451"
    assert loc["status"] == "active"
    assert loc["operationalStatus"] == {"system": ids.TRE_R203, "code": "3", "display": "Opérationnel"}
    assert loc["type"][0]["coding"][0]["code"] == "005"
    assert loc["managingOrganization"] == {"reference": "Organization/eg-010000024"}
    assert loc["position"] == {"longitude": 5.208596, "latitude": 46.222745}


@pytest.mark.national
@HEAVY
@pytest.mark.parametrize(("finess", "territory"), sorted(OVERSEAS.items()))
def test_national_overseas_positions_land_in_their_territory(
    national: NationalRun, finess: str, territory: str
) -> None:
    loc = national.samples[ids.eg_address_location_id(finess)]
    assert loc is not None
    lat_min, lat_max, lon_min, lon_max = BBOX[territory]
    assert lat_min <= loc["position"]["latitude"] <= lat_max
    assert lon_min <= loc["position"]["longitude"] <= lon_max
    assert _region(loc) == {"972": "02", "973": "03", "974": "04"}[territory]
    assert _commune_cog(loc).startswith(territory)


# --- scope ----------------------------------------------------------------------------------------------------
def test_scope_region_bretagne(importer_store: ResourceStore, geography: Geography, reference_dir: Path) -> None:
    report = import_finess(
        importer_store, reference_dir / NATIONAL, scope=Scope.parse("region:53"), geography=geography
    )
    assert report.eg.created == 5_024
    assert report.skipped_out_of_scope == 95_333 - 5_024
    assert report.locations.created == 5_024
    engine = importer_store.engine
    assert _count(engine, "Organization", "eg-") == 5_024
    with engine.connect() as c:
        regions = c.execute(select(resource.c.region).distinct()).scalars().all()
    assert regions == ["53"]


# --- etalab format --------------------------------------------------------------------------------------------
def test_etalab_sample_lines(importer_store: ResourceStore, geography: Geography, reference_dir: Path) -> None:
    report = import_finess(importer_store, reference_dir / SAMPLE, geography=geography)
    assert (report.format, report.extraction_date, report.rows_read) == ("etalab", "2026-05-12", 14)
    assert report.errors == []
    assert (report.eg.created, report.locations.created, report.ej.created) == (14, 14, 13)
    assert report.commune_match == {"etalab-code": 11, "etalab-renumbered": 3}
    engine = importer_store.engine
    expected = {
        "010000024": ("01451", "84"),
        "970102018": ("97701", "01"),  # Saint-Barthélemy: former code 97123, FINESS département 9A (Guadeloupe)
        "970100400": ("97801", "01"),  # Saint-Martin
        "970210126": ("97207", "02"),
        "970300026": ("97302", "03"),
        "970400024": ("97411", "04"),
        "980501506": ("97606", "06"),
        "980600027": ("98613", "986"),
    }
    for et, (commune, region) in expected.items():
        loc = _resource(engine, "Location", ids.eg_address_location_id(et))
        assert loc is not None, et
        assert (_commune_cog(loc), _region(loc)) == (commune, region), et
        assert "position" not in loc  # cs1100502 has no geolocation
    mavouna = _resource(engine, "Organization", "eg-980501506")
    assert mavouna is not None
    assert mavouna["name"] == 'LIEU DE VIE "MAVOUNA MEMA 1"'
    ubipharm = _resource(engine, "Location", "eg-980502199-adr")
    assert ubipharm is not None
    assert ubipharm["address"]["line"] == ["ZI VALLÉE 3 BP 208"]  # cp1252 decoded


def _to_xy(epsg: int, lat: float, lon: float) -> tuple[float, float]:
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    return round(x, 1), round(y, 1)


def _structureet(
    et: str, ej: str, name: str, commune: str, dep: str, ligne: str, extra: dict[int, str] | None = None
) -> list[str]:
    """A 32-field structureet line (docs/data-sources.md §3); `extra` sets fields by index."""
    fields = ["structureet", et, ej, name] + [""] * 28
    fields[12], fields[13], fields[15] = commune, dep, ligne
    fields[18], fields[19], fields[20], fields[21] = "355", "Centre Hospitalier (C.H.)", "1102", "Centres Hospitaliers"
    fields[28], fields[30] = "1979-02-13", "2020-02-04"
    for index, value in (extra or {}).items():
        fields[index] = value
    return fields


def _line(fields: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=";", quotechar='"', lineterminator="\n").writerow(fields)
    return out.getvalue()


RENNES = (48.1215, -1.6960)
FORT_DE_FRANCE = (14.6205, -61.0615)
SAINT_PAUL = (-21.0096, 55.2707)


def _synthetic_cs1100507() -> bytes:
    """A cs1100507 extract: cp1252 lines, one UTF-8 line, a quoted name, a malformed structureet line (5) and a
    malformed geolocalisation line (10); geolocation in Lambert-93, RGAF09 UTM 20N and (no CRS named) Réunion."""
    x1, y1 = _to_xy(2154, *RENNES)
    x2, y2 = _to_xy(5490, *FORT_DE_FRANCE)
    x3, y3 = _to_xy(2975, *SAINT_PAUL)
    chu_fields = {7: "2", 8: "R", 9: "HENRI LE GUILLOUX", 16: "0299284321", 18: "101", 20: "1101", 22: "26350579400014"}
    chu_fields |= {19: "Centre Hospitalier Régional (C.H.R.)", 26: "1", 27: "Etablissement public de santé"}
    chu = _structureet("350000741", "350005179", "CHU PONTCHAILLOU", "238", "35", "35033 RENNES CEDEX 9", chu_fields)
    martinique = _structureet("970200093", "970211199", "CHU DE MARTINIQUE", "209", "9B", "97261 FORT DE FRANCE CEDEX")
    reunion = _structureet("970400999", "970400998", 'LIEU DE VIE "LES TAMARINS"', "415", "9D", "97460 ST PAUL")
    morlaix = _structureet("290000017", "290000009", "HÔPITAL DE MORLAIX", "151", "29", "29672 MORLAIX CEDEX")
    cp1252 = [
        "finess;etalab;98;2021-01-08\n",
        _line(chu),
        _line(martinique),
        _line(reunion),
        "structureet;350000999;350005179;TRONQUEE\n",
    ]
    geolocations = [
        f"geolocalisation;350000741;{x1};{y1};1,ATLASANTE,100,IGN,BD_ADRESSE,V2.1,LAMBERT_93;2020-12-01\n",
        f"geolocalisation;970200093;{x2};{y2};2,ATLASANTE,96,BAN,EPSG:5490 RGAF09/UTM Zone 20N (Antilles);2020-12-01\n",
        f"geolocalisation;970400999;{x3};{y3};;2020-12-01\n",
        "geolocalisation;350000999;abc;def;;2020-12-01\n",
    ]
    body = "".join(cp1252).encode("cp1252") + _line(morlaix).encode("utf-8")
    return body + "".join(geolocations).encode("cp1252")


@pytest.fixture
def cs1100507(tmp_path: Path) -> Path:
    path = tmp_path / "etalab-cs1100507-stock-20210108-0427.csv"
    path.write_bytes(_synthetic_cs1100507())
    return path


@pytest.mark.parametrize("parallel", [False, True], ids=["one-process", "two-processes"])
def test_etalab_cs1100507_with_geolocation(
    importer_store: ResourceStore, geography: Geography, cs1100507: Path, parallel: bool
) -> None:
    """Both ways of importing (`parallel`: two processes, each writing every other line) give the same
    resources and the same report."""
    report = import_finess(importer_store, cs1100507, geography=geography, batch_size=2, parallel=parallel)
    assert report.processes == (2 if parallel else 1)
    assert (report.format, report.extraction_date, report.rows_read, report.geolocations) == (
        "etalab",
        "2021-01-08",
        5,
        3,
    )
    assert (report.eg.created, report.ej.created, report.locations.created) == (4, 4, 4)
    assert [line for line, _ in report.errors] == [5, 10]  # in file order (the geolocations are read first)
    assert "expected 32 fields, got 4" in report.errors[0][1]
    assert "coordxet is not a number" in report.errors[1][1]
    engine = importer_store.engine
    for et, (lat, lon), region in (
        ("350000741", RENNES, "53"),
        ("970200093", FORT_DE_FRANCE, "02"),
        ("970400999", SAINT_PAUL, "04"),
    ):
        loc = _resource(engine, "Location", ids.eg_address_location_id(et))
        assert loc is not None
        assert loc["position"]["latitude"] == pytest.approx(lat, abs=2e-6)
        assert loc["position"]["longitude"] == pytest.approx(lon, abs=2e-6)
        assert _region(loc) == region
    chu = _resource(engine, "Organization", "eg-350000741")
    assert chu is not None
    assert chu["type"][0]["coding"][0]["display"] == "Centre Hospitalier Régional (C.H.R.)"
    assert chu["address"][0]["line"] == ["2 R HENRI LE GUILLOUX"]
    assert chu["address"][0]["extension"][0]["valueCoding"]["code"] == "35238"
    quoted = _resource(engine, "Organization", "eg-970400999")
    assert quoted is not None and quoted["name"] == 'LIEU DE VIE "LES TAMARINS"'
    morlaix = _resource(engine, "Organization", "eg-290000017")
    assert morlaix is not None and morlaix["name"] == "HÔPITAL DE MORLAIX"  # the UTF-8 line
    morlaix_loc = _resource(engine, "Location", "eg-290000017-adr")
    assert morlaix_loc is not None and "position" not in morlaix_loc


def test_etalab_reimport_of_gzip_copy_changes_nothing(
    importer_store: ResourceStore, geography: Geography, cs1100507: Path, tmp_path: Path
) -> None:
    import_finess(importer_store, cs1100507, geography=geography)
    packed = tmp_path / "copy.csv"  # gzip detected from the content, not the name
    packed.write_bytes(gzip.compress(cs1100507.read_bytes()))
    again = import_finess(importer_store, packed, geography=geography)
    assert (again.eg.created, again.eg.updated, again.eg.unchanged) == (0, 0, 4)
    assert (again.locations.created, again.locations.updated, again.ej.created) == (0, 0, 0)


# --- flat format edge cases -----------------------------------------------------------------------------------
FLAT_HEADER = (
    "nofinesset;nofinessej;rs;adresse_ligne1;adresse_ligne2;code_postal;ville;telephone;categetab;libcategetab;"
    "categagretab;libcategagretab;siret;codeape;codesph;libsph;dateouv;datemaj;coordxet;coordyet;crs;latitude;"
    "longitude\n"
)


@pytest.mark.parametrize("parallel", [False, True], ids=["one-process", "two-processes"])
def test_flat_malformed_lines_and_unknown_commune(
    importer_store: ResourceStore, geography: Geography, tmp_path: Path, parallel: bool
) -> None:
    path = tmp_path / "flat.csv"
    path.write_text(
        FLAT_HEADER
        + '350000741;350005179;"CHU ""PONTCHAILLOU""";2 R HENRI LE GUILLOUX;;35033;RENNES CEDEX 9;0299284321;101;'
        "CHR;1101;CHR;26350579400014;8610Z;1;EPS;1901-01-01;2020-01-01;;;EPSG:2154;48.1215;-1.6960\n"
        "350000758;350005179;TROP COURTE;35000\n"
        "3500007XX;350005179;MAUVAIS NUMERO;;;35000;RENNES;;;;;;;;;;;;;;;;\n"
        "350000766;350005179;NULLE PART;;;99999;COMMUNE INCONNUE;;;;;;;;;;;;;;;;\n"
        "350000774;350005179;LAT KO;;;35000;RENNES;;;;;;;;;;;;;;;abc;-1.69\n",
        encoding="utf-8",
    )
    report = import_finess(importer_store, path, geography=geography, parallel=parallel)
    assert report.processes == (2 if parallel else 1)
    assert report.rows_read == 5
    assert (report.eg.created, report.locations.created, report.ej.created) == (2, 1, 1)
    lines = {line: message for line, message in report.errors}
    assert set(lines) == {3, 4, 5, 6}
    assert "expected 23 fields" in lines[3]
    assert "invalid FINESS ET number" in lines[4]
    assert "commune of 350000766 unknown" in lines[5]
    assert "latitude is not a number" in lines[6]
    engine = importer_store.engine
    assert _resource(engine, "Organization", "eg-350000766") is not None  # the Organization is still imported
    assert _resource(engine, "Location", "eg-350000766-adr") is None
    chu = _resource(engine, "Organization", "eg-350000741")
    assert chu is not None and chu["name"] == 'CHU "PONTCHAILLOU"'
    with engine.connect() as c:
        run = c.execute(select(import_run).where(import_run.c.kind == "finess")).one()
    assert (run.created, run.errors) == (4, 4)


def _stored_state(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as c:
        rows = c.execute(
            select(
                resource.c.res_type,
                resource.c.res_id,
                resource.c.version_id,
                resource.c.region,
                resource.c.content_hash,
            )
        ).all()
    return sorted(tuple(r) for r in rows)


def test_two_processes_share_the_decisions_about_every_line(
    importer_store: ResourceStore, geography: Geography, tmp_path: Path
) -> None:
    """Each process of a partitioned import writes every other line, but an EJ is written once, by the owner of
    its first establishment and with that one's region, and a duplicate line is reported once, by its owner,
    whoever owns the first one: the same resources, versions and report as one process."""
    rennes = "2 R HENRI LE GUILLOUX;;35033;RENNES;;;;;;;;;;;;;;;48.1215;-1.6960"
    nantes = "1 PL ALEXIS RICORDEAU;;44000;NANTES;;;;;;;;;;;;;;;47.2120;-1.5540"
    path = tmp_path / "flat.csv"
    path.write_text(
        FLAT_HEADER
        + f"350000741;350005179;CHU RENNES;{rennes}\n"  # line 2: the EJ's first establishment, Bretagne
        + f"440000057;350005179;ANNEXE NANTES;{nantes}\n"  # line 3: same EJ, Pays de la Loire
        + f"440000057;350005179;DOUBLON;{nantes}\n"  # line 4: duplicate of line 3 (other owner)
        + f"440000065;440000049;CHU NANTES;{nantes}\n"  # line 5: a new EJ
        + f"350000758;440000049;ANTENNE RENNES;{rennes}\n"  # line 6: its second establishment
        + "350000766;350005179;COURTE\n"  # line 7: malformed
        + "350000774;350005179;NULLE PART;;;99999;COMMUNE INCONNUE;;;;;;;;;;;;;;;;\n",  # line 8: no commune
        encoding="utf-8",
    )
    engine = importer_store.engine
    reports, states = [], []
    for parallel in (False, True):
        truncate_store(engine)
        report = import_finess(importer_store, path, geography=geography, parallel=parallel, batch_size=1)
        assert report.processes == (2 if parallel else 1)
        reports.append(report)
        states.append(_stored_state(engine))
    one, two = reports
    assert states[0] == states[1]
    by_id = {r[1]: r for r in states[0]}
    assert by_id["ej-350005179"][2:4] == (1, "53")  # its first establishment's region, not line 3's
    assert by_id["ej-440000049"][2:4] == (1, "52")
    for report in reports:
        assert (report.eg.created, report.ej.created, report.locations.created) == (5, 2, 4)
        assert (report.rows_read, report.skipped_out_of_scope) == (7, 0)
    assert two.errors == one.errors
    assert [line for line, _ in one.errors] == [4, 7, 8]
    assert "already read on line 3" in one.errors[0][1]
    assert two.commune_match == one.commune_match
    if is_sqlite(engine):  # the content is given to SQLite as UTF-8 bytes (`Batch.insert(utf8=…)`): stored as text
        with engine.connect() as c:
            kinds = c.exec_driver_sql("SELECT DISTINCT typeof(content) FROM resource").scalars().all()
        assert kinds == ["text"]


def test_worker_process_errors_reach_the_caller(
    importer_store: ResourceStore, geography: Geography, tmp_path: Path
) -> None:
    """A file the processes cannot read fails the import with its error, and nothing of it is written."""
    path = tmp_path / "flat.csv"
    path.write_text(FLAT_HEADER.replace("ville;", "") + "350000741;350005179;X\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="flat FINESS file without columns ville"):
        import_finess(importer_store, path, geography=geography, parallel=True)
    assert _count(importer_store.engine, "Organization") == 0


def test_unknown_format_and_missing_file(importer_store: ResourceStore, geography: Geography, tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a;b;c\n1;2;3\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="unknown FINESS format"):
        import_finess(importer_store, path, geography=geography)
    with pytest.raises(InvalidRequest, match="not found"):
        import_finess(importer_store, tmp_path / "missing.csv", geography=geography)


# --- helpers --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("finess", "departement"),
    [("010000024", "01"), ("2A0000154", "2A"), ("970200028", "972"), ("980501506", "976"), ("980600027", "986")],
)
def test_departement_of_finess(finess: str, departement: str) -> None:
    assert departement_of_finess(finess) == departement


@pytest.mark.parametrize(
    ("source", "departement", "epsg"),
    [
        ("1,ATLASANTE,96,BAN,EPSG:2154 RGF93 / Lambert-93 (Métropole)", "01", 2154),
        ("2,ATLASANTE,100,BDADRESSE,EPSG:4471 RGM04/UTM zone 38S (Mayotte)", "976", 4471),
        ("2,ATLASANTE,90,BAN,WGS84/UTM zone 21N (St-Pierre-et-Miquelon)", "975", 32621),
        ("1,ATLASANTE,100,IGN,BD_ADRESSE,V2.1,LAMBERT_93", "35", 2154),
        ("", "971", 5490),
        ("", "973", 2972),
        ("", "974", 2975),
        ("", "2A", 2154),
    ],
)
def test_crs_of(source: str, departement: str, epsg: int) -> None:
    assert crs_of(source, departement) == epsg


def test_synthetic_file_really_mixes_encodings() -> None:
    lines = _synthetic_cs1100507().split(b"\n")
    with pytest.raises(UnicodeDecodeError):
        lines[1].decode("utf-8")  # cp1252 "é"
    assert "HÔPITAL" in lines[5].decode("utf-8")
    assert sum(1 for line in lines if line.startswith(b"geolocalisation")) == 4
