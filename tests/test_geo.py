"""Reference geography: loading (COG 2026 + La Poste centroids) and the cached lookups."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from ror.db.tables import geo_commune, geo_departement, geo_region, import_run
from ror.geo import Geography, departement_from_commune_code, normalise_place_name
from ror.geo.loader import GeoLoadReport, load_geography


@pytest.fixture(scope="module")
def loaded(engine: Engine, reference_dir: Path) -> GeoLoadReport:
    return load_geography(engine, reference_dir / "geo")


@pytest.fixture(scope="module")
def geo(engine: Engine, loaded: GeoLoadReport) -> Geography:
    return Geography(engine)


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_counts(engine: Engine, loaded: GeoLoadReport) -> None:
    assert (loaded.regions, loaded.departements, loaded.commune_entries) == (26, 109, 37_590)
    # one row per INSEE code: 584 communes déléguées share the code of their commune nouvelle
    assert loaded.communes == 37_590 - loaded.merged_same_code == 37_006
    assert _count(engine, geo_region) == 26
    assert _count(engine, geo_departement) == 109
    assert _count(engine, geo_commune) == 37_006
    assert loaded.laposte_rows == 39_192


def test_centroid_rules_are_counted(loaded: GeoLoadReport) -> None:
    sources = loaded.centroid_sources
    assert sum(sources.values()) == loaded.communes
    assert sources["laposte"] > 34_900
    assert sources["parent"] > 1_500  # communes déléguées / associées merged before 2020
    assert sources.get("none", 0) < 120  # only collectivités d'outre-mer without any La Poste point


@pytest.mark.parametrize(
    ("code", "name", "departement", "region"),
    [
        ("45234", "Orléans", "45", "24"),
        ("35238", "Rennes", "35", "53"),
        ("97209", "Fort-de-France", "972", "02"),
        ("2A004", "Ajaccio", "2A", "94"),
        ("2B033", "Bastia", "2B", "94"),
        ("97411", "Saint-Denis", "974", "04"),
        ("97606", "Chirongui", "976", "06"),
    ],
)
def test_known_communes(geo: Geography, code: str, name: str, departement: str, region: str) -> None:
    commune = geo.commune(code)
    assert commune is not None
    assert (commune.name, commune.departement, commune.region) == (name, departement, region)
    assert geo.region_of_commune(code) == region
    assert geo.departement_of_commune(code) == departement


@pytest.mark.parametrize(
    ("code", "lat", "lon"),
    [
        ("35238", 48.11, -1.68),  # Rennes
        ("45234", 47.88, 1.92),  # Orléans
        ("97209", 14.64, -61.07),  # Fort-de-France
        ("2A004", 41.93, 8.70),  # Ajaccio
        ("75056", 48.86, 2.34),  # Paris: mean of its arrondissements (no La Poste point of its own)
        ("69123", 45.76, 4.84),  # Lyon
    ],
)
def test_centroids_near_reality(geo: Geography, code: str, lat: float, lon: float) -> None:
    point = geo.centroid(code)
    assert point is not None
    assert point[0] == pytest.approx(lat, abs=0.05)
    assert point[1] == pytest.approx(lon, abs=0.05)


def test_commune_deleguee_borrows_its_parent_point(geo: Geography) -> None:
    saint_bois = geo.commune("01340")  # déléguée of Arboys en Bugey (01015) since 2016
    parent = geo.commune("01015")
    assert saint_bois is not None and parent is not None
    assert saint_bois.type == "commune-deleguee"
    assert saint_bois.centroid == parent.centroid
    assert saint_bois.postal_codes == ("01300",)


def test_region_of_commune_overseas_and_unknown_codes(geo: Geography) -> None:
    assert geo.region_of_commune("97105") == "01"  # Basse-Terre
    assert geo.region_of_commune("97302") == "03"  # Cayenne
    assert geo.region_of_commune("97701") == "977"  # Saint-Barthélemy (COM)
    assert geo.region_of_commune("98613") == "986"  # Uvea, Wallis-et-Futuna
    # a code the COG does not know still gets its département's region
    assert geo.region_of_commune("97199") == "01"
    assert geo.region_of_commune("35999") == "53"
    assert geo.region_of_commune("00000") is None


def test_departement_from_commune_code_without_database() -> None:
    assert departement_from_commune_code("97209") == "972"
    assert departement_from_commune_code("98613") == "986"
    assert departement_from_commune_code("2A004") == "2A"
    assert departement_from_commune_code("2B033") == "2B"
    assert departement_from_commune_code("35238") == "35"
    assert departement_from_commune_code("01001") == "01"


def test_listings(geo: Geography) -> None:
    assert len(geo.regions()) == 26
    assert [d.code for d in geo.departements(region="53")] == ["22", "29", "35", "56"]
    assert len(geo.departements()) == 109
    rennes = [c.code for c in geo.communes_by_postal_code("35000")]
    assert "35238" in rennes
    marseille = {c.code for c in geo.communes_by_postal_code("13005")}
    assert {"13055", "13205"} <= marseille  # the commune and its arrondissement


def test_normalise_place_name() -> None:
    assert normalise_place_name("Saint-Étienne-du-Rouvray") == "SAINT ETIENNE DU ROUVRAY"
    assert normalise_place_name("ST ETIENNE DU ROUVRAY CEDEX 2") == "SAINT ETIENNE DU ROUVRAY"
    assert normalise_place_name("Vandœuvre-lès-Nancy") == "VANDOEUVRE LES NANCY"
    assert normalise_place_name("L'Haÿ-les-Roses") == "L HAY LES ROSES"
    assert normalise_place_name("PARIS 13") == "PARIS"
    assert normalise_place_name("STE CLOTILDE") == "SAINTE CLOTILDE"


@pytest.mark.parametrize(
    ("postal_code", "city", "departement", "point", "code", "method"),
    [
        ("35000", "RENNES", "35", None, "35238", "postcode+name"),
        ("35033", "RENNES CEDEX 9", "35", None, "35238", "departement+name"),
        ("54500", "VANDOEUVRE LES NANCY", "54", None, "54547", "postcode+name"),
        ("71500", "LOUHANS", "71", None, "71263", "postcode+prefix"),  # now Louhans-Châteaurenaud
        ("74164", "ST JULIEN EN GENEVOIS CEDE", "74", None, "74243", "departement+name"),  # cut in "CEDEX"
        ("53200", "CHATEAU GONTIER SUR MAYENN", "53", None, "53062", "postcode+prefix"),  # cut at 26 characters
        ("82403", "VALENCE D AGEN CEDEX", "82", None, "82186", "departement+prefix"),  # now "Valence"
        ("64130", "MAULEON SOULE", "64", (43.2245, -0.8870), "64371", "postcode+nearest"),
        ("97492", "STE CLOTILDE CEDEX", "974", (-20.90, 55.47), "97411", "departement+nearest"),
    ],
)
def test_locate(
    geo: Geography,
    postal_code: str,
    city: str,
    departement: str,
    point: tuple[float, float] | None,
    code: str,
    method: str,
) -> None:
    lat, lon = point or (None, None)
    found = geo.locate(postal_code, city, departement=departement, lat=lat, lon=lon)
    assert found is not None
    assert (found.commune.code, found.method) == (code, method)


def test_locate_gives_up_without_name_or_point(geo: Geography) -> None:
    assert geo.locate("99999", "NOWHERE", departement="35") is None


def test_reload_is_idempotent(engine: Engine, reference_dir: Path, geo: Geography) -> None:
    again = load_geography(engine, reference_dir / "geo")
    assert (again.regions, again.departements, again.communes) == (26, 109, 37_006)
    assert _count(engine, geo_commune) == 37_006
    geo.reload()
    assert geo.region_of_commune("35238") == "53"
    with engine.connect() as c:
        kinds = c.execute(select(import_run.c.kind).where(import_run.c.kind == "geo")).scalars().all()
    assert kinds  # every load is recorded
