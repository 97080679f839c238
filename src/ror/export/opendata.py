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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, func, select

from ror.access.policy import Profile
from ror.db.tables import resource
from ror.directory import ids
from ror.export.request import ExportRequest
from ror.export.stream import iter_rows, type_condition, visible_resources
from ror.search.engine import SearchEngine
from ror.search.normalise import fhir_instant
from ror.search.query import QueryParser
from ror.store.meta import commune_code, region_tag

PROFILE = Profile.OPEN_DATA
FORMAT_VERSION = "1"
Getter = Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # texte | code | nombre | date | booléen | liste
    description: str
    source: str  # FHIR element the value comes from
    get: Getter


# --- value helpers ----------------------------------------------------------------------------------------------
def _codings(concepts: Any, system: str | None = None) -> list[dict[str, Any]]:
    if isinstance(concepts, dict):
        concepts = [concepts]
    out = []
    for cc in concepts or []:
        for c in cc.get("coding") or []:
            if system is None or c.get("system") == system:
                out.append(c)
    return out


def _codes(key: str, system: str | None = None) -> Getter:
    return lambda r: "|".join(str(c.get("code", "")) for c in _codings(r.get(key), system))


def _labels(key: str, system: str | None = None) -> Getter:
    return lambda r: "|".join(str(c.get("display", "")) for c in _codings(r.get(key), system))


def _identifier(system: str) -> Getter:
    return lambda r: next((str(i.get("value", "")) for i in r.get("identifier") or [] if i.get("system") == system), "")


def _ref_id(key: str) -> Getter:
    def get(r: dict[str, Any]) -> str:
        refs = r.get(key)
        refs = refs if isinstance(refs, list) else [refs] if refs else []
        return "|".join(str(x.get("reference", "")).rsplit("/", 1)[-1] for x in refs)

    return get


def _address(r: dict[str, Any]) -> dict[str, Any]:
    a = r.get("address")
    if isinstance(a, list):
        a = a[0] if a else None
    return a or {}


def _line(r: dict[str, Any]) -> str:
    return " ".join(str(x) for x in _address(r).get("line") or [])


def _phones(r: dict[str, Any]) -> str:
    return "|".join(str(t.get("value", "")) for t in r.get("telecom") or [] if t.get("system") == "phone")


def _emails(r: dict[str, Any]) -> str:
    return "|".join(str(t.get("value", "")) for t in r.get("telecom") or [] if t.get("system") == "email")


def _bool(key: str) -> Getter:
    return lambda r: "" if r.get(key) is None else ("oui" if r.get(key) else "non")


def _age(bound: str) -> Getter:
    def get(r: dict[str, Any]) -> str:
        for e in r.get("extension") or []:
            if e.get("url") == ids.EXT_PATIENT_TYPE:
                for sub in e.get("extension") or []:
                    if sub.get("url") == "ageRange":
                        v = ((sub.get("valueRange") or {}).get(bound) or {}).get("value")
                        return "" if v is None else str(v)
        return ""

    return get


def _position(axis: str) -> Getter:
    return lambda r: "" if (r.get("position") or {}).get(axis) is None else str(r["position"][axis])


def _sensitive(r: dict[str, Any]) -> str:
    return next(
        (
            "oui" if e.get("valueBoolean") else "non"
            for e in r.get("extension") or []
            if e.get("url") == ids.EXT_SENSITIVE_UNIT
        ),
        "",
    )


def _kind(r: dict[str, Any]) -> str:
    """EJ (no parent), EG (a FINESS category, attached to its EJ), else OI (internal organisation, not exported)."""
    if _codings(r.get("type"), ids.TRE_R66):
        return "EG"
    if not r.get("partOf"):
        return "EJ"
    return "OI"


ID = Column("id", "texte", "identifiant logique de la ressource dans ce répertoire", "id", lambda r: str(r["id"]))
UPDATED = Column(
    "date_maj",
    "date",
    "dernière mise à jour (instant UTC)",
    "meta.lastUpdated",
    lambda r: str(r["meta"].get("lastUpdated", "")),
)
REGION = Column("region", "code", "région (code INSEE, TRE_R30)", "meta.tag (TRE_R30)", lambda r: region_tag(r) or "")
COMMUNE = Column(
    "code_commune",
    "code",
    "commune (code INSEE COG)",
    "extension ror-commune-cog / address insee-code",
    lambda r: commune_code(r) or "",
)
POSTAL = Column(
    "code_postal", "code", "code postal", "address.postalCode", lambda r: str(_address(r).get("postalCode", ""))
)
CITY = Column(
    "ville", "texte", "ville (libellé de l'adresse)", "address.city", lambda r: str(_address(r).get("city", ""))
)
LINE = Column("adresse", "texte", "voie (lignes d'adresse jointes par un espace)", "address.line", _line)

COLUMNS: dict[str, list[Column]] = {
    "structures": [
        Column(
            "type_structure",
            "code",
            "EJ (entité juridique) ou EG (établissement géographique)",
            "type (TRE_R66), partOf",
            _kind,
        ),
        ID,
        Column("finess", "code", "numéro FINESS", "identifier (http://finess.esante.gouv.fr)", _identifier(ids.FINESS)),
        Column(
            "id_nat_struct",
            "code",
            "identifiant national de structure",
            "identifier (urn:oid:1.2.250.1.71.4.2.2)",
            _identifier(ids.ID_NAT_STRUCT),
        ),
        Column("nom", "texte", "raison sociale", "name", lambda r: str(r.get("name", ""))),
        Column(
            "categorie_code",
            "code",
            "catégorie d'établissement (TRE_R66), EG seulement",
            "type (TRE_R66)",
            _codes("type", ids.TRE_R66),
        ),
        Column(
            "categorie_libelle", "texte", "libellé de la catégorie", "type.coding.display", _labels("type", ids.TRE_R66)
        ),
        Column("rattachement", "texte", "id de l'entité juridique de rattachement (EG)", "partOf", _ref_id("partOf")),
        LINE,
        POSTAL,
        CITY,
        COMMUNE,
        REGION,
        Column(
            "telephones",
            "liste",
            "téléphones publics (niveau de confidentialité 1), séparés par |",
            "telecom (phone)",
            _phones,
        ),
        Column("courriels", "liste", "adresses électroniques publiques, séparées par |", "telecom (email)", _emails),
        Column("actif", "booléen", "oui / non", "active", _bool("active")),
        UPDATED,
    ],
    "offres": [
        ID,
        Column(
            "identifiant_offre",
            "texte",
            "identifiant fonctionnel de l'offre",
            "identifier.value",
            lambda r: "|".join(str(i.get("value", "")) for i in r.get("identifier") or []),
        ),
        Column("nom", "texte", "nom de l'offre", "name", lambda r: str(r.get("name", ""))),
        Column("structure", "texte", "id de la structure qui porte l'offre", "providedBy", _ref_id("providedBy")),
        Column(
            "champ_activite", "code", "champ d'activité (TRE_R227)", "type (TRE_R227)", _codes("type", ids.TRE_R227)
        ),
        Column(
            "champ_activite_libelle",
            "texte",
            "libellé du champ d'activité",
            "type.coding.display",
            _labels("type", ids.TRE_R227),
        ),
        Column(
            "activites",
            "liste",
            "activités opérationnelles (TRE_R211), séparées par |",
            "specialty (TRE_R211)",
            _codes("specialty", ids.TRE_R211),
        ),
        Column(
            "activites_libelles",
            "liste",
            "libellés des activités",
            "specialty.coding.display",
            _labels("specialty", ids.TRE_R211),
        ),
        Column(
            "modes_prise_en_charge",
            "liste",
            "modes de prise en charge (TRE_R213)",
            "characteristic (TRE_R213)",
            _codes("characteristic", ids.TRE_R213),
        ),
        Column(
            "categorie_organisation",
            "code",
            "catégorie d'organisation (TRE_R244)",
            "category (TRE_R244)",
            _codes("category", ids.TRE_R244),
        ),
        Column(
            "age_min", "nombre", "âge minimal des patients (années)", "extension patient-type.ageRange.low", _age("low")
        ),
        Column(
            "age_max",
            "nombre",
            "âge maximal des patients (années)",
            "extension patient-type.ageRange.high",
            _age("high"),
        ),
        Column(
            "unite_sensible",
            "booléen",
            "toujours non ici : les unités sensibles ne sont pas publiées",
            "extension sensitive-unit",
            _sensitive,
        ),
        Column("lieux", "liste", "id des lieux de réalisation, séparés par |", "location", _ref_id("location")),
        REGION,
        Column("actif", "booléen", "oui / non", "active", _bool("active")),
        UPDATED,
    ],
    "lieux": [
        ID,
        Column("nom", "texte", "nom du lieu", "name", lambda r: str(r.get("name", ""))),
        Column("statut", "code", "active, suspended, inactive", "status", lambda r: str(r.get("status", ""))),
        Column("fonction", "code", "fonction du lieu (TRE_R343)", "type (TRE_R343)", _codes("type", ids.TRE_R343)),
        Column(
            "structure",
            "texte",
            "id de la structure gestionnaire",
            "managingOrganization",
            _ref_id("managingOrganization"),
        ),
        LINE,
        POSTAL,
        CITY,
        COMMUNE,
        REGION,
        Column("latitude", "nombre", "latitude WGS84", "position.latitude", _position("latitude")),
        Column("longitude", "nombre", "longitude WGS84", "position.longitude", _position("longitude")),
        Column("telephones", "liste", "téléphones publics (niveau 1), séparés par |", "telecom (phone)", _phones),
        UPDATED,
    ],
}
FILE_TYPES = {"structures": "Organization", "offres": "HealthcareService", "lieux": "Location"}
DESCRIPTIONS = {
    "structures": "Structures : entités juridiques (EJ) et établissements géographiques (EG)",
    "offres": "Offres opérationnelles (unités, services)",
    "lieux": "Lieux de réalisation de l'offre et adresses des établissements",
    "dictionnaire": "Dictionnaire des données : une ligne par colonne des fichiers",
}


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
        where = type_condition(outer, res_type, ExportRequest(types=(res_type,)), parser, search, PROFILE)
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
                    if name == "structures" and _kind(res) == "OI":
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
