"""Import of the DREES SAE (Statistique annuelle des établissements de santé) installed beds as ROR units.

Source: the raw SAE "bases statistiques" tables of one year (`capacity/sae-<year>/<TABLE>_<year>r.csv`: cp1252,
`;`, header line, no quoting, FINESS kept as text; docs/data-sources.md §2.2, §5). Tables read:

* ID (one row per establishment): region `reg`, département `dep` (9A…9F = 971…976), commune `COMINSEE`, address;
* REA (FI × UNI), LIT: REAADU → rea-adu, REAENF → rea-ped, USIC → si-usic, SIUNV → si-unv, AUTSI → si-aut,
  SURVADU → sc-adu, SURVENF → sc-ped; SITOT (= USIC + SIUNV + AUTSI) → si, only when no detailed row has a value;
* MCO (FI): LIT_MED → med, LIT_CHI → chi, LIT_OBS → obs (LIT_MCO, their total, is not read);
* PERINAT (FI): LIT_REA → neonat-rea, LIT_SIN → neonat-si, LIT_NEO_HSI → neonat (LIT_OBS repeats MCO: not read);
* URGENCES2 (FI × URG), LIT_UHCD: GEN → uhcd, PED → uhcd-ped;
* PSY (FI × DIS): CAP_HTP (full-time beds) of DIS=TOT only → psy;  SSR (FI × GDE): LIT of GDE=SSR_TOT only → smr;
* USLD (FI): LIT → usld.

Rules: an empty cell is *unknown* (no unit, no indicator, never 0); 0 is an explicit zero (no unit: an empty unit is
not created); a positive number creates one unit — HealthcareService `hs-<FI>-<key>` + Location `loc-<FI>-<key>` —
whose Location carries one indicator: nature 01 Lit, status 01 Installé, temporality 01 Courant, source 01 Saisie
manuelle (the SAE is the establishment's own declaration), date 31/12 of the SAE year, temporaryAssignement 01.
The MCO table's médecine / chirurgie totals are the SAE discipline totals: by SAE definition they overlap the
critical-care and UHCD beds described in detail by REA / URGENCES2, so unit types must not be summed together.

Units are created for every FI in scope, whether or not the FINESS import wrote its EG; the unit Location copies
address and position from the stored EG (`eg-<FI>-adr`) when there is one, else the SAE address and, when the
derived per-establishment file is present, its FINESS coordinates. Re-import is idempotent (content hash); it
replaces only the installed-current indicator and keeps the other indicators a Location carries (availability fed
since). Units that disappear from a later SAE are left untouched."""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text
from sqlalchemy import insert

from ror.db.tables import import_run
from ror.directory import ids
from ror.directory.scope import Scope
from ror.directory.units import (
    NATURE_BED,
    STATUS_INSTALLED,
    TEMPORALITY_CURRENT,
    UNIT_TYPES,
    Site,
    capacity_indicator,
    existing_contents,
    healthcare_service,
    is_capacity,
    is_installed_current,
    load_sites,
    unit_location,
)
from ror.store import ResourceStore, UpsertCounts

LocationHook = Callable[[dict[str, Any]], None]  # adds indicators to a unit Location before it is written

SAE_ENCODING = "cp1252"
INSTALLED_SOURCE = "01"  # TRE_R335 Saisie manuelle: the SAE is filled in by the establishment
OVERSEAS_DEPARTEMENTS = {"9A": "971", "9B": "972", "9C": "973", "9D": "974", "9E": "975", "9F": "976"}
BATCH_ESTABLISHMENTS = 250
AUTHOR = "import:sae"


@dataclass(frozen=True)
class BedColumn:
    """Where one unit type's installed beds are in the SAE: a column of a table, optionally of filtered rows."""

    table: str
    column: str
    unit: str
    where: tuple[str, str] | None = None  # (column, value) that selects the rows


BED_COLUMNS: tuple[BedColumn, ...] = (
    BedColumn("REA", "LIT", "rea-adu", ("UNI", "REAADU")),
    BedColumn("REA", "LIT", "rea-ped", ("UNI", "REAENF")),
    BedColumn("REA", "LIT", "si-usic", ("UNI", "USIC")),
    BedColumn("REA", "LIT", "si-unv", ("UNI", "SIUNV")),
    BedColumn("REA", "LIT", "si-aut", ("UNI", "AUTSI")),
    BedColumn("REA", "LIT", "si", ("UNI", "SITOT")),
    BedColumn("REA", "LIT", "sc-adu", ("UNI", "SURVADU")),
    BedColumn("REA", "LIT", "sc-ped", ("UNI", "SURVENF")),
    BedColumn("MCO", "LIT_MED", "med"),
    BedColumn("MCO", "LIT_CHI", "chi"),
    BedColumn("MCO", "LIT_OBS", "obs"),
    BedColumn("PERINAT", "LIT_REA", "neonat-rea"),
    BedColumn("PERINAT", "LIT_SIN", "neonat-si"),
    BedColumn("PERINAT", "LIT_NEO_HSI", "neonat"),
    BedColumn("URGENCES2", "LIT_UHCD", "uhcd", ("URG", "GEN")),
    BedColumn("URGENCES2", "LIT_UHCD", "uhcd-ped", ("URG", "PED")),
    BedColumn("PSY", "CAP_HTP", "psy", ("DIS", "TOT")),
    BedColumn("SSR", "LIT", "smr", ("GDE", "SSR_TOT")),
    BedColumn("USLD", "LIT", "usld"),
)
SI_DETAIL = ("si-usic", "si-unv", "si-aut")
SI_TOTAL = "si"
BED_TABLES = tuple(dict.fromkeys(b.table for b in BED_COLUMNS))


@dataclass(frozen=True)
class SaeEstablishment:
    finess: str
    region: str | None
    departement: str | None
    commune: str | None
    commune_name: str | None
    address: dict[str, Any] | None
    position: dict[str, float] | None = None

    def site(self) -> Site:
        return Site(self.finess, self.region, self.commune, self.commune_name, self.address, self.position)


@dataclass
class SaeReport:
    year: int
    scope: str
    establishments: int = 0  # in scope, with at least one unit
    units: int = 0
    beds: dict[str, int] = field(default_factory=dict)  # installed beds per unit type
    units_by_type: dict[str, int] = field(default_factory=dict)
    empty_cells: int = 0  # unknown values (no unit)
    zero_cells: int = 0  # explicit zeros (no unit)
    invalid_cells: int = 0  # not a number (treated as unknown)
    missing_tables: list[str] = field(default_factory=list)
    written: UpsertCounts = field(default_factory=UpsertCounts)
    seconds: float = 0.0
    finess: list[str] = field(default_factory=list, repr=False)  # establishments with units

    def __rich__(self) -> Text:
        return Text(str(self))

    def __str__(self) -> str:
        per_type = ", ".join(f"{k} {self.beds[k]} ({self.units_by_type[k]})" for k in sorted(self.beds))
        missing = f"; tables missing: {', '.join(self.missing_tables)}" if self.missing_tables else ""
        return (
            f"SAE {self.year} [{self.scope}]: {self.establishments} establishments, {self.units} units — "
            f"resources created {self.written.created}, updated {self.written.updated}, unchanged "
            f"{self.written.unchanged} in {self.seconds:.1f} s\n  beds (units) per type: {per_type}\n"
            f"  cells: {self.empty_cells} empty (unknown), {self.zero_cells} zero, {self.invalid_cells} invalid"
            f"{missing}"
        )


# --- reading ----------------------------------------------------------------------------------------------------
def sae_directory(directory: Path, year: int) -> Path:
    """`capacity/` → `capacity/sae-<year>/`; a folder that holds the tables themselves is accepted too."""
    sub = directory / f"sae-{year}"
    if sub.is_dir():
        return sub
    if directory.is_dir():
        return directory
    raise FileNotFoundError(f"SAE directory not found: {directory}")


def table_path(folder: Path, table: str, year: int) -> Path | None:
    matches = sorted(folder.glob(f"{table}_{year}*.csv"))
    return matches[0] if matches else None


def read_table(path: Path) -> Iterator[dict[str, str]]:
    """Rows of one SAE table, column names upper-cased (ID uses lower case), values as text."""
    with path.open(encoding=SAE_ENCODING, newline="") as f:
        reader = csv.reader(f, delimiter=";", quoting=csv.QUOTE_NONE)
        header = [h.strip().upper() for h in next(reader, [])]
        for values in reader:
            if values:
                yield dict(zip(header, (v.strip() for v in values), strict=False))


def insee_departement(sae_dep: str) -> str:
    return OVERSEAS_DEPARTEMENTS.get(sae_dep, sae_dep)


def insee_commune(sae_code: str) -> str:
    """SAE writes overseas communes with the FINESS département (`9D415`); INSEE says `97415`."""
    if len(sae_code) == 5 and sae_code[:2] in OVERSEAS_DEPARTEMENTS:
        return "97" + sae_code[2:]
    return sae_code


def _address(row: dict[str, str]) -> dict[str, Any] | None:
    line = " ".join(p for p in (row.get("NUMVOI"), row.get("TYPVOI"), row.get("NOMVOI")) if p)
    address: dict[str, Any] = {}
    lines = [p for p in (line, row.get("BP")) if p]
    if lines:
        address["line"] = lines
    city = row.get("LIBCOM") or row.get("NOMCOM")
    if city:
        address["city"] = city
    if row.get("CPO"):
        address["postalCode"] = row["CPO"]
    if address:
        address["country"] = "FRA"
    return address or None


def read_establishments(folder: Path, year: int, scope: Scope) -> dict[str, SaeEstablishment]:
    path = table_path(folder, "ID", year)
    if path is None:
        raise FileNotFoundError(f"SAE table ID_{year} not found in {folder}")
    out: dict[str, SaeEstablishment] = {}
    for row in read_table(path):
        fi = row.get("FI", "")
        dep = insee_departement(row.get("DEP", "")) or None
        region = row.get("REG") or None
        if not fi or not scope.accepts(region, dep):
            continue
        out[fi] = SaeEstablishment(
            finess=fi,
            region=region,
            departement=dep,
            commune=insee_commune(row.get("COMINSEE", "")) or None,
            commune_name=row.get("NOMCOM") or None,
            address=_address(row),
        )
    return out


def read_positions(directory: Path, year: int) -> dict[str, dict[str, float]]:
    """FINESS coordinates of the SAE establishments from the derived per-establishment file, when it is there."""
    path = directory / "derived" / f"sae{year}_capacites_par_etablissement.csv"
    if not path.is_file():
        return {}
    out: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            lat = next((v for k, v in row.items() if k.startswith("latitude") and v), None)
            lon = next((v for k, v in row.items() if k.startswith("longitude") and v), None)
            if lat and lon:
                out[row["fi"]] = {"longitude": float(lon), "latitude": float(lat)}
    return out


@dataclass
class _Cells:
    """Bed counts read so far: FI -> unit key -> beds (None = declared but unknown)."""

    values: dict[str, dict[str, int | None]] = field(default_factory=lambda: defaultdict(dict))
    empty: int = 0
    zero: int = 0
    invalid: int = 0

    def add(self, fi: str, unit: str, text: str) -> None:
        value = self._parse(text)
        known = self.values[fi].get(unit)
        if value is None:
            self.values[fi].setdefault(unit, None)
        else:
            self.values[fi][unit] = value + (known or 0)

    def _parse(self, text: str) -> int | None:
        if text == "":
            self.empty += 1
            return None
        try:
            value = int(float(text.replace(",", ".")))
        except ValueError:
            self.invalid += 1
            return None
        if value == 0:
            self.zero += 1
        return max(value, 0)


def read_beds(folder: Path, year: int, finess: set[str], report: SaeReport) -> dict[str, dict[str, int]]:
    """Installed beds > 0 per FI and unit type (SITOT resolved), for the FIs asked."""
    cells = _Cells()
    for table in BED_TABLES:
        path = table_path(folder, table, year)
        if path is None:
            report.missing_tables.append(table)
            continue
        columns = [b for b in BED_COLUMNS if b.table == table]
        for row in read_table(path):
            fi = row.get("FI", "")
            if fi in finess:
                for b in columns:
                    if b.where is None or row.get(b.where[0]) == b.where[1]:
                        cells.add(fi, b.unit, row.get(b.column, ""))
    report.empty_cells, report.zero_cells, report.invalid_cells = cells.empty, cells.zero, cells.invalid
    return {fi: _positive(resolve_si_total(units)) for fi, units in cells.values.items()}


def resolve_si_total(units: dict[str, int | None]) -> dict[str, int | None]:
    """SITOT = USIC + SIUNV + AUTSI: count the SI beds once — the detailed rows when one of them has a value,
    else the total as one generic SI unit."""
    out = dict(units)
    total = out.pop(SI_TOTAL, None)
    if total and not any(out.get(k) is not None for k in SI_DETAIL):
        out[SI_TOTAL] = total
    return out


def _positive(units: dict[str, int | None]) -> dict[str, int]:
    return {k: v for k, v in units.items() if v}


# --- building ---------------------------------------------------------------------------------------------------
def installed_indicator(beds: int, year: int, nature: str = NATURE_BED) -> dict[str, Any]:
    date = datetime(year, 12, 31, tzinfo=UTC)
    return capacity_indicator(nature, STATUS_INSTALLED, TEMPORALITY_CURRENT, beds, INSTALLED_SOURCE, date)


def unit_resources(
    site: Site,
    beds: dict[str, int],
    year: int,
    existing: dict[str, dict[str, Any]],
    add_indicators: LocationHook | None = None,
) -> list[dict[str, Any]]:
    """HealthcareService + Location of every unit of one establishment."""
    out: list[dict[str, Any]] = []
    for key in sorted(beds):
        unit = UNIT_TYPES[key]
        location = unit_location(site, unit, [installed_indicator(beds[key], year)])
        _keep_other_indicators(location, existing.get(location["id"]))
        if add_indicators is not None:
            add_indicators(location)
        out += [healthcare_service(site, unit), location]
    return out


def _keep_other_indicators(location: dict[str, Any], previous: dict[str, Any] | None) -> None:
    if previous is None:
        return
    kept = [e for e in previous.get("extension") or [] if is_capacity(e) and not is_installed_current(e)]
    location["extension"] = location["extension"] + kept


def _site(est: SaeEstablishment, stored: Site | None) -> Site:
    """The stored EG's address and position win (FINESS import); region and commune stay the SAE's."""
    if stored is None:
        return est.site()
    return Site(
        finess=est.finess,
        region=est.region or stored.region,
        commune=stored.commune or est.commune,
        commune_name=stored.commune_name or est.commune_name,
        address=stored.address or est.address,
        position=stored.position or est.position,
    )


# --- entry point ------------------------------------------------------------------------------------------------
def import_sae(
    store: ResourceStore,
    directory: Path,
    *,
    scope: Scope | None = None,
    year: int = 2023,
    progress: bool = False,
    now: datetime | None = None,
    add_indicators: LocationHook | None = None,
) -> SaeReport:
    """Create or update one unit per establishment × bed type with installed beds (see the module docstring).
    `directory` is the `capacity/` folder; `add_indicators` lets a caller (the demo) complete each unit Location in
    the same write."""
    started = time.perf_counter()
    scope = scope or Scope("national")
    report = SaeReport(year=year, scope=str(scope))
    folder = sae_directory(directory, year)
    establishments = read_establishments(folder, year, scope)
    beds = read_beds(folder, year, set(establishments), report)
    positions = read_positions(directory, year)
    finess = sorted(fi for fi in establishments if beds.get(fi))
    with _progress_bar(progress) as bar:
        task = bar.add_task(f"SAE {year} units", total=len(finess))
        for batch in _chunks(finess, BATCH_ESTABLISHMENTS):
            _write_batch(store, batch, establishments, beds, positions, year, report, add_indicators)
            bar.advance(task, len(batch))
    report.establishments, report.finess = len(finess), finess
    report.seconds = round(time.perf_counter() - started, 2)
    record_run(store, "sae", str(directory), now, report.written, str(report))
    return report


def _write_batch(
    store: ResourceStore,
    batch: Sequence[str],
    establishments: dict[str, SaeEstablishment],
    beds: dict[str, dict[str, int]],
    positions: dict[str, dict[str, float]],
    year: int,
    report: SaeReport,
    add_indicators: LocationHook | None,
) -> None:
    stored = load_sites(store, batch)
    location_ids = [ids.unit_location_id(fi, key) for fi in batch for key in beds[fi]]
    existing = existing_contents(store, "Location", location_ids)
    resources: list[dict[str, Any]] = []
    for fi in batch:
        est = establishments[fi]
        if est.position is None and fi in positions:
            est = replace(est, position=positions[fi])
        resources += unit_resources(_site(est, stored.get(fi)), beds[fi], year, existing, add_indicators)
        for key, n in beds[fi].items():
            report.beds[key] = report.beds.get(key, 0) + n
            report.units_by_type[key] = report.units_by_type.get(key, 0) + 1
            report.units += 1
    report.written.add(store.bulk_upsert(resources, author=AUTHOR, method="IMPORT"))


def record_run(
    store: ResourceStore, kind: str, source: str, started: datetime | None, counts: UpsertCounts, text: str
) -> None:
    """One row of import bookkeeping (`import_run`)."""
    finished = datetime.now(UTC).replace(tzinfo=None)
    start = started.astimezone(UTC).replace(tzinfo=None) if started and started.tzinfo else started
    with store.write_tx() as c:
        c.execute(
            insert(import_run).values(
                kind=kind,
                source=source[:500],
                started=start or finished,
                finished=finished,
                created=counts.created,
                updated=counts.updated,
                unchanged=counts.unchanged,
                errors=0,
                report=orjson.dumps({"summary": text}).decode(),
            )
        )


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not enabled,
    )
