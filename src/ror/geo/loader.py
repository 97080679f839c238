"""Loading of the reference geography into `geo_region`, `geo_departement`, `geo_commune`, from the `geo/` folder:

* `regions.json`, `departements.json`, `communes.json` — INSEE COG 2026 (`@etalab/decoupage-administratif`);
* `laposte_hexasmal_2020.csv` — La Poste postcodes with one GPS point per commune (`coordonnees_gps`, "lat,lon",
  repeated on every postcode line of the commune).

Rules:
* one row per INSEE code: `communes.json` lists 584 communes déléguées under the same code as their commune
  nouvelle (the chef-lieu); the commune actuelle is kept, the déléguée entry is counted in `merged_same_code`;
* postal codes = the COG `codesPostaux` ∪ the La Poste postcodes of the code; a commune déléguée / associée
  without any borrows those of its commune (`chefLieu`), an arrondissement those of its commune if it has none;
* centroid, first rule that gives a point (counts per rule in `GeoLoadReport.centroid_sources`):
  `laposte` its own La Poste point; `parent` the point of its commune (déléguée, associée, arrondissement);
  `parts` the mean of the points of its déléguées / associées / arrondissements / former codes (communes
  nouvelles created after 2020, Paris, Lyon, Marseille); `postcode` the mean of the points of the other
  communes sharing one of its postcodes; `departement` the mean of the points of its département;
  `none` no point at all (collectivités d'outre-mer absent from the La Poste file);
* idempotent: the three tables are emptied and refilled in one transaction; an `import_run` row (kind "geo")
  records the load."""

from __future__ import annotations

import csv
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Connection, Engine, delete, insert

from ror.db.tables import geo_commune, geo_departement, geo_region, import_run
from ror.geo.service import ARRONDISSEMENT, COMMUNE_ACTUELLE

LAPOSTE_FILE = "laposte_hexasmal_2020.csv"
Point = tuple[float, float]


@dataclass
class GeoLoadReport:
    regions: int = 0
    departements: int = 0
    commune_entries: int = 0  # entries of communes.json
    communes: int = 0  # rows written (one per INSEE code)
    merged_same_code: int = 0  # déléguées sharing their commune's code
    laposte_rows: int = 0
    laposte_codes_with_point: int = 0
    centroid_sources: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class _LaPoste:
    points: dict[str, Point] = field(default_factory=dict)
    postal_codes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    rows: int = 0


def load_geography(engine: Engine, directory: Path, *, progress: bool = False) -> GeoLoadReport:
    """(Re)load régions, départements and communes with their centroids from `directory` (the `geo/` folder)."""
    started_at = datetime.now(UTC).replace(tzinfo=None)
    t0 = time.perf_counter()
    report = GeoLoadReport()
    with _progress_bar(progress) as bar:
        task = bar.add_task("geography", total=4)
        regions = _read_json(directory / "regions.json")
        departements = _read_json(directory / "departements.json")
        entries = _read_json(directory / "communes.json")
        bar.advance(task)
        laposte = read_laposte(directory / LAPOSTE_FILE)
        bar.advance(task)
        communes = _one_per_code(entries, report)
        points, sources = _assign_centroids(communes, laposte)
        rows = [_commune_row(c, laposte, points.get(code)) for code, c in communes.items()]
        _fill_missing_postal_codes(rows, communes)
        bar.advance(task)
        with engine.begin() as conn:
            _replace(conn, regions, departements, rows)
            report.regions, report.departements, report.communes = len(regions), len(departements), len(rows)
            report.commune_entries, report.laposte_rows = len(entries), laposte.rows
            report.laposte_codes_with_point = len(laposte.points)
            report.centroid_sources = dict(sorted(Counter(sources.values()).items()))
            report.seconds = round(time.perf_counter() - t0, 2)
            _record_run(conn, directory, started_at, report)
        bar.advance(task)
    return report


# --- reading --------------------------------------------------------------------------------------------------
def _read_json(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path.name}: a JSON array was expected")
    return data


def read_laposte(path: Path) -> _LaPoste:
    """Postcodes and the GPS point of each INSEE code of the La Poste file (first point given wins)."""
    out = _LaPoste()
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            out.rows += 1
            code = (row.get("Code_commune_INSEE") or "").strip()
            if not code:
                continue
            if row.get("Code_postal"):
                out.postal_codes[code].add(row["Code_postal"].strip())
            point = _parse_point(row.get("coordonnees_gps") or "")
            if point is not None and code not in out.points:
                out.points[code] = point
    return out


def _parse_point(text: str) -> Point | None:
    lat, sep, lon = text.partition(",")
    if not sep:
        return None
    try:
        return float(lat), float(lon)
    except ValueError:
        return None


def _one_per_code(entries: list[dict[str, Any]], report: GeoLoadReport) -> dict[str, dict[str, Any]]:
    """INSEE code -> COG entry; a commune actuelle wins over a déléguée that shares its code."""
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        code = entry["code"]
        if code in out:
            report.merged_same_code += 1
            if entry.get("type") != COMMUNE_ACTUELLE:
                continue
        out[code] = entry
    return out


# --- centroids ------------------------------------------------------------------------------------------------
@dataclass
class _CentroidContext:
    laposte: _LaPoste
    parts: dict[str, list[str]]  # commune -> its déléguées, associées, arrondissements, former codes
    by_postcode: dict[str, list[Point]]
    by_departement: dict[str, list[Point]]
    points: dict[str, Point | None] = field(default_factory=dict)  # the result, filled in order


def _assign_centroids(
    communes: dict[str, dict[str, Any]], laposte: _LaPoste
) -> tuple[dict[str, Point | None], dict[str, str]]:
    """The centroid of every commune (see the module docstring) and the name of the rule that gave it."""
    ctx = _CentroidContext(
        laposte, _parts(communes), _points_by_postcode(laposte), _points_by_departement(communes, laposte)
    )
    sources: dict[str, str] = {}
    # communes actuelles first, so that déléguées and arrondissements can borrow their parent's point
    for entry in sorted(communes.values(), key=lambda e: _parent(e) is not None):
        point, sources[entry["code"]] = _centroid(entry, ctx)
        ctx.points[entry["code"]] = point
    return ctx.points, sources


def _centroid(entry: dict[str, Any], ctx: _CentroidContext) -> tuple[Point | None, str]:
    code = entry["code"]
    own = ctx.laposte.points.get(code)
    if own is not None:
        return own, "laposte"
    parent = _parent(entry)
    if parent and ctx.points.get(parent) is not None:
        return ctx.points[parent], "parent"
    candidates: list[tuple[str, Point | None]] = [
        ("parts", _mean(ctx.laposte.points.get(p) for p in ctx.parts.get(code, ()))),
        ("postcode", _mean(p for cp in entry.get("codesPostaux") or () for p in ctx.by_postcode.get(cp, ()))),
        ("departement", _mean(ctx.by_departement.get(entry.get("departement") or "", ()))),
    ]
    for name, point in candidates:
        if point is not None:
            return point, name
    return None, "none"


def _parts(communes: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for code, entry in communes.items():
        parent = _parent(entry)
        if parent:
            out[parent].append(code)
        out[code].extend(entry.get("anciensCodes") or [])
    return out


def _parent(entry: dict[str, Any]) -> str | None:
    """The commune an arrondissement, a commune déléguée or associée belongs to."""
    if entry.get("type") == ARRONDISSEMENT:
        return entry.get("commune")
    if entry.get("type") != COMMUNE_ACTUELLE and entry.get("chefLieu") != entry["code"]:
        return entry.get("chefLieu")
    return None


def _points_by_postcode(laposte: _LaPoste) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = defaultdict(list)
    for code, point in laposte.points.items():
        for cp in laposte.postal_codes.get(code, ()):
            out[cp].append(point)
    return out


def _points_by_departement(communes: dict[str, dict[str, Any]], laposte: _LaPoste) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = defaultdict(list)
    for code, entry in communes.items():
        point = laposte.points.get(code)
        if point is not None and entry.get("type") == COMMUNE_ACTUELLE:
            out[entry.get("departement") or ""].append(point)
    return out


def _mean(points: Iterable[Point | None]) -> Point | None:
    found = [p for p in points if p is not None]
    if not found:
        return None
    return (
        round(sum(p[0] for p in found) / len(found), 7),
        round(sum(p[1] for p in found) / len(found), 7),
    )


# --- rows -----------------------------------------------------------------------------------------------------
def _commune_row(entry: dict[str, Any], laposte: _LaPoste, point: Point | None) -> dict[str, Any]:
    postcodes = set(entry.get("codesPostaux") or []) | laposte.postal_codes.get(entry["code"], set())
    return {
        "code": entry["code"],
        "name": entry["nom"],
        "type": entry.get("type") or COMMUNE_ACTUELLE,
        "departement": entry.get("departement"),
        "region": entry.get("region"),
        "population": entry.get("population"),
        "postal_codes": " ".join(sorted(postcodes)),
        "lat": point[0] if point else None,
        "lon": point[1] if point else None,
    }


def _fill_missing_postal_codes(rows: list[dict[str, Any]], communes: dict[str, dict[str, Any]]) -> None:
    by_code = {r["code"]: r for r in rows}
    for row in rows:
        parent = _parent(communes[row["code"]])
        if not row["postal_codes"] and parent in by_code:
            row["postal_codes"] = by_code[parent]["postal_codes"]


# --- writing --------------------------------------------------------------------------------------------------
def _replace(
    conn: Connection, regions: list[dict[str, Any]], departements: list[dict[str, Any]], rows: list[dict[str, Any]]
) -> None:
    for table in (geo_commune, geo_departement, geo_region):
        conn.execute(delete(table))
    conn.execute(insert(geo_region), [{"code": r["code"], "name": r["nom"]} for r in regions])
    conn.execute(
        insert(geo_departement),
        [{"code": d["code"], "name": d["nom"], "region": d.get("region")} for d in departements],
    )
    for start in range(0, len(rows), 5000):
        conn.execute(insert(geo_commune), rows[start : start + 5000])


def _record_run(conn: Connection, directory: Path, started: datetime, report: GeoLoadReport) -> None:
    conn.execute(
        insert(import_run).values(
            kind="geo",
            source=str(directory)[:500],
            started=started,
            finished=datetime.now(UTC).replace(tzinfo=None),
            created=report.communes,
            updated=0,
            unchanged=0,
            errors=0,
            report=json.dumps(report.__dict__, ensure_ascii=False),
        )
    )


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
    )
