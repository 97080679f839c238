"""Open data: the public (profile 0) view as CSV with its dictionary — columns, filtering, determinism, dates — and
the public download page."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from ror.export.opendata import COLUMNS, FILES, dated_sets, write_opendata
from ror.export.runner import query_parser
from ror.server import create_app
from ror.services import Services
from ror.store import ResourceStore
from tests.search_fixtures import org
from tests.test_export import populate

DAY = date(2026, 11, 30)


@pytest.fixture
def data(store: ResourceStore) -> ResourceStore:
    populate(store)  # access-matrix data: telecom levels, capacity, a sensitive unit; regions 53 and 52
    store.bulk_upsert([org("oi-1", "Pôle médecine", part_of="eg-1")])  # an internal organisation (not published)
    return store


def run(engine: Engine, directory: Path, day: date = DAY) -> dict[str, list[dict[str, str]]]:
    write_opendata(engine, query_parser(Services(engine)), directory, day)
    return {name: read_csv(directory / f"{name}.csv") for name in COLUMNS}


def read_csv(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r\n" not in raw  # UTF-8 without BOM, LF endings
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))


def test_columns_match_the_dictionary(data: ResourceStore, engine: Engine, tmp_path: Path) -> None:
    run(engine, tmp_path)
    dictionary = read_csv(tmp_path / "dictionnaire.csv")
    for name in COLUMNS:
        with (tmp_path / f"{name}.csv").open(encoding="utf-8") as f:
            header = next(csv.reader(f))
        described = [d["colonne"] for d in dictionary if d["fichier"] == f"{name}.csv"]
        assert header == described and len(header) == len(set(header))
    assert all(d["description"] and d["type"] and d["source_fhir"] for d in dictionary)
    assert {p.name for p in tmp_path.iterdir()} == set(FILES)


def test_public_view_only(data: ResourceStore, engine: Engine, tmp_path: Path) -> None:
    files = run(engine, tmp_path)
    structures = {r["id"]: r for r in files["structures"]}
    assert set(structures) == {"eg-1", "eg-52"}  # the internal organisation oi-1 is not a structure
    assert structures["eg-1"]["telephones"] == "0101010101"  # level 1 only (levels 2 and 3 withheld)
    assert structures["eg-1"]["finess"] == "350000001" and structures["eg-1"]["region"] == "53"
    offers = {r["id"]: r for r in files["offres"]}
    assert set(offers) == {"hs-mco", "hs-ms", "hs-52"}  # the sensitive unit is hidden
    assert offers["hs-mco"]["activites"] == "127" and offers["hs-mco"]["lieux"] == "loc-mco"
    assert offers["hs-mco"]["age_min"] == "18" and offers["hs-mco"]["structure"] == "eg-1"
    places = {r["id"]: r for r in files["lieux"]}
    assert set(places) == {"loc-mco", "loc-ms", "loc-52"}  # the sensitive unit's place is hidden
    assert places["loc-mco"]["telephones"] == "0404040404" and places["loc-mco"]["code_commune"] == "35238"
    text = b"".join((tmp_path / f"{n}.csv").read_bytes() for n in COLUMNS)
    for secret in (b"0202020202", b"0303030303", b"0505050505", b"hs-secret", b"loc-secret", b"Secret"):
        assert secret not in text
    meta = orjson.loads((tmp_path / "metadata.json").read_bytes())
    assert meta["date_extraction"] == "2026-11-30"
    assert {k: v["lignes"] for k, v in meta["fichiers"].items() if k != "dictionnaire.csv"} == {
        "structures.csv": 2,
        "offres.csv": 3,
        "lieux.csv": 3,
    }
    for name, info in meta["fichiers"].items():
        assert info["sha256"] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()


def test_same_data_same_bytes(data: ResourceStore, engine: Engine, tmp_path: Path) -> None:
    run(engine, tmp_path / "a")
    run(engine, tmp_path / "b")
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    rows = read_csv(tmp_path / "a" / "lieux.csv")
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    # a change in the data changes the files (and only through the data)
    loc = data.read("Location", "loc-ms").resource()
    loc["name"] = "EHPAD Les Tilleuls"
    data.update("Location", "loc-ms", loc)
    run(engine, tmp_path / "c")
    assert (tmp_path / "c" / "lieux.csv").read_bytes() != (tmp_path / "a" / "lieux.csv").read_bytes()
    assert (tmp_path / "c" / "structures.csv").read_bytes() == (tmp_path / "a" / "structures.csv").read_bytes()


def test_cli_writes_the_files(data: ResourceStore, engine: Engine, tmp_path: Path, monkeypatch) -> None:
    from ror import cli

    monkeypatch.setattr("ror.cli_export.get_engine", lambda: engine)
    result = CliRunner().invoke(cli.app, ["export", "opendata", str(tmp_path / "out"), "--date", "2026-11-30"])
    assert result.exit_code == 0, result.output
    assert "structures 2, offres 3, lieux 3" in result.output
    assert orjson.loads((tmp_path / "out" / "metadata.json").read_bytes())["date_extraction"] == "2026-11-30"


@pytest.fixture
def web(data: ResourceStore, engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(engine)
    app.state.export_dir = tmp_path
    with TestClient(app) as c:
        yield c


def test_download_page_lists_and_serves_the_files(web: TestClient, engine: Engine, tmp_path: Path) -> None:
    old = tmp_path / "opendata" / "2001-01-15"
    write_opendata(engine, query_parser(Services(engine)), old, date(2001, 1, 15))
    r = web.get("/donnees-ouvertes")  # anonymous: no account needed
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    html = r.text
    assert "<h1>Données ouvertes</h1>" in html
    days = dated_sets(tmp_path / "opendata")
    assert len(days) == 2 and days[1] == "2001-01-15"  # today's extraction was written on the first visit
    today = days[0]
    for name in FILES:
        assert f'href="/donnees-ouvertes/{today}/{name}"' in html
    assert 'href="/donnees-ouvertes/2001-01-15/offres.csv"' in html  # previous extraction still listed
    f = web.get(f"/donnees-ouvertes/{today}/offres.csv")
    assert f.status_code == 200 and f.headers["content-type"].startswith("text/csv")
    assert f'filename="ror-offres-{today}.csv"' in f.headers["content-disposition"]
    assert {row["id"] for row in csv.DictReader(io.StringIO(f.text))} == {"hs-mco", "hs-ms", "hs-52"}
    assert f.content == (tmp_path / "opendata" / today / "offres.csv").read_bytes()
    assert web.get(f"/donnees-ouvertes/{today}/secret.txt").status_code == 404
    assert web.get("/donnees-ouvertes/..%2F..%2Fetc/offres.csv").status_code == 404
    assert web.get("/donnees-ouvertes/2020-01-01/offres.csv").status_code == 404
