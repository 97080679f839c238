"""Open data: the public view (access profile 0) of the répertoire as CSV files with their data dictionary.

  structures.csv   EJ and EG Organizations (entités juridiques, établissements géographiques)
  offres.csv       HealthcareService (offres opérationnelles)
  lieux.csv        Location (lieux de réalisation de l'offre, adresses des établissements)
  dictionnaire.csv one line per column of the three files: file, column, type, description, FHIR source
  README.md        what the files are, licence, how they are produced
  metadata.json    extraction date, date of the most recent change in the data, row counts, SHA-256 of each file

Reproducible: rows in identifier order, values taken from the resources only (no clock), so the same data gives
byte-identical CSV files; `metadata.json` carries the extraction date (a day) and the last change in the data.
Each resource is read in keyset batches and filtered exactly as the FHIR API filters it for profile 0 (sensitive
units hidden, telecoms of level 1 only, no capacity)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, func, select

from ror.access.policy import Profile
from ror.db.tables import resource
from ror.export.columns import COLUMNS, DESCRIPTIONS, FILE_TYPES, kind
from ror.export.request import ExportRequest
from ror.export.stream import iter_rows, type_condition, visible_resources
from ror.search.engine import SearchEngine
from ror.search.normalise import fhir_instant
from ror.search.query import QueryParser

PROFILE = Profile.OPEN_DATA
FORMAT_VERSION = "1"


def _csv_line(values: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().encode("utf-8")


@dataclass
class OpenDataResult:
    directory: Path
    counts: dict[str, int]
    last_change: datetime | None
    extraction_date: date


def public_rows(engine: Engine, parser: QueryParser, res_type: str) -> Iterator[dict[str, Any]]:
    """Every resource of `res_type` as profile 0 sees it, in identifier order, read in keyset batches."""
    search = SearchEngine(engine)
    with engine.connect() as conn, conn.begin():
        outer = resource.alias("r")
        request = ExportRequest(types=(res_type,))
        where = type_condition(outer, res_type, request, parser, search, PROFILE, key="res_id")
        for rows in iter_rows(conn, where, outer, key="res_id"):
            yield from visible_resources(conn, rows, PROFILE)


def dictionary_rows() -> list[list[str]]:
    rows = [["fichier", "colonne", "type", "description", "source_fhir"]]
    for name, cols in COLUMNS.items():
        rows += [[f"{name}.csv", c.name, c.type, c.description, c.source] for c in cols]
    return rows


def _readme(result: OpenDataResult) -> str:
    lines = [
        "# ROR — données ouvertes",
        "",
        "Vue publique (profil d'accès 0) du Répertoire de l'Offre et des Ressources en santé : structures, offres",
        "et lieux. Les unités sensibles, les contacts non publics et les capacités en lits n'y figurent pas.",
        "",
        f"* Date d'extraction : {result.extraction_date.isoformat()}",
        f"* Dernière modification des données : {fhir_instant(result.last_change) if result.last_change else '—'}",
        "* Format : CSV UTF-8, séparateur virgule, guillemets doubles si nécessaire, fin de ligne LF ; les listes",
        "  sont séparées par `|`. Lignes triées par identifiant : mêmes données, mêmes fichiers (octet pour octet).",
        "* Licence : Licence Ouverte / Open Licence 2.0 (Etalab).",
        "",
        "| fichier | contenu | lignes |",
        "|---|---|---|",
    ]
    for name in COLUMNS:
        lines.append(f"| {name}.csv | {DESCRIPTIONS[name]} | {result.counts[name]} |")
    lines += ["", "Colonnes : `dictionnaire.csv` (fichier, colonne, type, description, élément FHIR source).", ""]
    return "\n".join(lines)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def last_change(engine: Engine) -> datetime | None:
    with engine.connect() as c:
        return c.execute(
            select(func.max(resource.c.last_updated)).where(resource.c.res_type.in_(list(FILE_TYPES.values())))
        ).scalar()


def write_opendata(engine: Engine, parser: QueryParser, directory: Path, extraction_date: date) -> OpenDataResult:
    """Write the open-data files into `directory` (created; written in a temporary folder then moved in place, so
    a reader never sees half a file set)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".opendata-", dir=directory.parent))
    counts: dict[str, int] = {}
    try:
        for name, cols in COLUMNS.items():
            n = 0
            with (tmp / f"{name}.csv").open("wb") as f:
                f.write(_csv_line([c.name for c in cols]))
                for res in public_rows(engine, parser, FILE_TYPES[name]):
                    if name == "structures" and kind(res) == "OI":
                        continue
                    f.write(_csv_line([c.get(res) for c in cols]))
                    n += 1
            counts[name] = n
        with (tmp / "dictionnaire.csv").open("wb") as f:
            for row in dictionary_rows():
                f.write(_csv_line(row))
        result = OpenDataResult(directory, counts, last_change(engine), extraction_date)
        (tmp / "README.md").write_text(_readme(result), encoding="utf-8")
        meta = {
            "titre": "ROR — données ouvertes (profil d'accès 0)",
            "format": FORMAT_VERSION,
            "date_extraction": extraction_date.isoformat(),
            "derniere_modification": fhir_instant(result.last_change) if result.last_change else None,
            "fichiers": {
                f"{name}.csv": {
                    "description": DESCRIPTIONS[name],
                    "lignes": counts.get(name, len(dictionary_rows()) - 1),
                    "sha256": _sha256(tmp / f"{name}.csv"),
                }
                for name in [*COLUMNS, "dictionnaire"]
            },
        }
        (tmp / "metadata.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        for p in tmp.iterdir():
            os.chmod(p, 0o644)
        os.chmod(tmp, 0o755)
        if directory.exists():
            for p in tmp.iterdir():
                os.replace(p, directory / p.name)
        else:
            os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


FILES = ("structures.csv", "offres.csv", "lieux.csv", "dictionnaire.csv", "README.md", "metadata.json")
_DATED = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_generating = threading.Lock()


def dated_sets(root: Path) -> list[str]:
    """The complete extractions under `root` (folders named YYYY-MM-DD holding a metadata.json), newest first."""
    if not root.is_dir():
        return []
    found = [p.name for p in root.iterdir() if _DATED.match(p.name) and (p / "metadata.json").is_file()]
    return sorted(found, reverse=True)


def ensure_today(engine: Engine, parser: QueryParser, root: Path, today: date) -> Path:
    """The extraction of `today` under `root`, written first when it does not exist yet (one writer at a time)."""
    target = root / today.isoformat()
    if (target / "metadata.json").is_file():
        return target
    with _generating:
        if not (target / "metadata.json").is_file():
            write_opendata(engine, parser, target, today)
    return target
