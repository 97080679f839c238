"""National-scale dataset (issue 9): from the real FINESS + SAE files, a deterministic directory with many offers
and places per establishment, rich capacity indicators and N days of capacity history, loaded into a fresh
SQLite or PostgreSQL database through the store's bulk path.

    .venv/bin/python bench/dataset.py --size region --database sqlite:////tmp/ror-dataset-region.db
    .venv/bin/python bench/dataset.py --size national --database postgresql://postgres@127.0.0.1:5432/ror_dataset

Sizes: `region` = région 53 (Bretagne, a quick run), `national` = all of France. Steps, all inside one
`store.bulk_load()` (search-index and version indexes built once at the end):

1. NOS + geography (skipped when present), then the FINESS import of the scope (EJ/EG Organizations + addresses).
2. Hospitals (SAE 2023 installed beds): each SAE unit type is split into wards (`WARD_BEDS`: a réanimation of
   30 beds becomes 3 units of ~10), each one offer + one place with its installed beds; plus one consultation
   offer (no capacity) per discipline the hospital has (`CONSULTATIONS`).
3. Other establishments, by FINESS category (`UNITS_BY_CATEGORY`): EHPAD places split into living units of
   `LIVING_UNIT` places plus temporary accommodation, MAS / FAM / foyers / résidences autonomie likewise,
   HAD, CMP, centres de santé, MSP, dialysis as in the demo. Only unit types whose NOS codes the directory's
   builders know (`directory/units.py`) are used, so every code is valid; categories without a coherent offer
   there (pharmacies, laboratories, home-help services…) get none.
4. Capacity indicators of every place with capacity (`RichSimulator`: the demo's simulated availability, plus
   reserved, closed réactivable / non réactivable, supplementary mobilisable with / without staff and forecasts
   at 24 h, 48 h and 7 days — only the combinations docs/capacity.md allows).
5. History: `capacity_event` is rewritten in bulk from the projection (`capacity`) — for the current available
   and occupied indicators a chain of changes over `--days` days (several a day in critical care, one a day
   elsewhere) ending exactly at the projected value and date; one creation event for the others. Events before
   the stored version carry `version_id` 0 (history from before the first version this database holds).

Deterministic for a given (`--seed`, `--now`): same resources, same indicators, same history (apart from the
reception time of the load itself). `--now` defaults to the current hour. Prints rows/s per step, the counts,
the database size and the peak RSS; writes bench/results/dataset-<size>.json."""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Connection, Engine, delete, func, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import peak_rss_mb, write_result
from ror.capacity import projection
from ror.capacity.model import KEY_FIELDS, Indicator, indicators_of
from ror.config import get_settings
from ror.db import migrate
from ror.db.database import analyze
from ror.db.engine import is_sqlite, make_engine
from ror.db.tables import capacity, capacity_event, code_system, geo_commune, resource
from ror.directory import ids
from ror.directory.demo import (
    OFFERS_BY_CATEGORY,
    AvailabilitySimulator,
    departement_of,
    eg_pages,
    generated_places,
    unit_pair,
)
from ror.directory.finess import import_finess
from ror.directory.sae import SaeEstablishment, SaeReport, read_beds, read_establishments, read_positions, sae_directory
from ror.directory.scope import Scope
from ror.directory.units import (
    ADULT,
    ALL_AGES,
    NATURE_PLACE,
    UNIT_TYPES,
    Site,
    UnitType,
    capacity_indicator,
    existing_contents,
    installed_count,
    load_sites,
    site_from_resources,
)
from ror.geo.service import Geography
from ror.store import ResourceStore, UpsertCounts

SIZES = {"departement": "departement:22", "region": "region:53", "national": "national"}  # 22: the tests' size
DEFAULT_SEED = 2026
AUTHOR = "dataset"
SAE_YEAR = 2023
BATCH = 2000  # resources per bulk_upsert (one transaction)
EVENT_BATCH = 20_000  # capacity_event rows per insert
PK_RANGE = 20_000  # resource pks read per history step
CRITICAL = ("rea", "si", "sc", "neonat", "uhcd")  # unit keys whose availability changes several times a day

# Hospitals: beds per ward (min, max) by SAE unit type prefix; a unit type of n beds becomes round(n / size) wards.
WARD_BEDS: dict[str, tuple[int, int]] = {
    "rea": (8, 12),
    "si": (6, 10),
    "sc": (6, 10),
    "neonat": (6, 12),
    "uhcd": (6, 12),
    "smr": (12, 20),
    "usld": (14, 22),
}
DEFAULT_WARD = (8, 14)
LIVING_UNIT = (6, 10)  # places per living unit of an accommodation establishment

# One consultation offer (no capacity) per discipline of a hospital; NOS codes known to directory/units.py.
CONSULTATIONS: dict[str, UnitType] = {
    "med": UnitType("cs-med", "Consultations de médecine", "083", "32", "01", "005", ALL_AGES, None),
    "chi": UnitType("cs-chi", "Consultations de chirurgie", "033", "32", "01", "005", ALL_AGES, None),
    "obs": UnitType("cs-obs", "Consultations d'obstétrique", "100", "32", "01", "005", (12, 55), None),
    "psy": UnitType("cs-psy", "Consultations de psychiatrie adulte", "229", "32", "03", "005", ADULT, None),
}
OLD, AVQ, STAY, MEDICO_SOCIAL, LODGING = (60, 120), "293", "46", "04", "003"
EXTRA_TYPES: dict[str, UnitType] = {
    t.key: t
    for t in (
        UnitType(
            "ehpad-tmp",
            "Hébergement temporaire EHPAD",
            AVQ,
            STAY,
            MEDICO_SOCIAL,
            LODGING,
            OLD,
            NATURE_PLACE,
            "21",
            "01",
        ),
        UnitType(
            "hpa",
            "Hébergement permanent personnes âgées autonomes",
            AVQ,
            STAY,
            MEDICO_SOCIAL,
            LODGING,
            OLD,
            NATURE_PLACE,
            None,
            "02",
        ),
        UnitType(
            "foyer",
            "Hébergement permanent foyer pour adultes handicapés",
            AVQ,
            STAY,
            MEDICO_SOCIAL,
            LODGING,
            ADULT,
            NATURE_PLACE,
            None,
            "02",
        ),
    )
}
EXTRA_PLACES: dict[str, tuple[int, int]] = {"ehpad-tmp": (2, 8), "hpa": (30, 90), "foyer": (20, 50)}
# FINESS category (TRE_R66) -> unit types; the demo's (OFFERS_BY_CATEGORY) completed.
UNITS_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    **OFFERS_BY_CATEGORY,
    "500": ("ehpad", "ehpad-tmp"),  # EHPAD
    "202": ("hpa",),  # résidence autonomie
    "502": ("hpa",),  # EHPA
    "382": ("foyer",),  # foyer de vie
    "252": ("foyer",),  # foyer d'hébergement
    "449": ("foyer",),  # établissement d'accueil non médicalisé
}
SPLIT = {"ehpad", "mas", "fam", "hpa", "foyer"}  # place counts split into living units


def unit_type(key: str) -> UnitType:
    return EXTRA_TYPES.get(key) or UNIT_TYPES[key]


# --- capacity indicators -----------------------------------------------------------------------------------------
Extra = tuple[str, str, dict[str, str], int]  # status, temporality, sub-codes, number


def extra_indicators(rng: random.Random, installed: int, current: list[Indicator]) -> list[Extra]:
    """Reserved, closed, supplementary and forecasts around the simulated current state (valid combinations)."""
    now_ = [i for i in current if i.temporality == "01"]
    available = sum(i.nb for i in now_ if i.status == "02")
    closed = sum(i.nb for i in now_ if i.status == "05")
    open_beds = max(0, installed - closed)
    out: list[Extra] = [
        ("04", "01", {}, rng.randint(0, min(2, available))),
        ("05", "01", {"closing_type": "01"}, 0),
        ("05", "01", {"closing_type": "02"}, rng.randint(1, 2) if installed >= 10 and rng.random() < 0.03 else 0),
        ("06", "01", {"additional_bed_type": "02"}, 0),
        ("06", "01", {"additional_bed_type": "03"}, rng.randint(0, max(1, installed // 10))),
        ("04", "03", {}, rng.randint(0, 2)),
        ("05", "05", {"closing_type": "01"}, closed + (1 if rng.random() < 0.1 else 0)),
    ]
    for temporality in ("03", "04", "05"):  # 24 h, 48 h, 7 days
        forecast = min(open_beds, max(0, available + rng.randint(-2, 3)))
        out.append(("02", temporality, {"gender": "04"}, forecast))
        out.append(("03", temporality, {}, open_beds - forecast))
    return out


def _key(status: str, temporality: str, codes: dict[str, str]) -> tuple[str, ...]:
    return (
        status,
        temporality,
        codes.get("gender", ""),
        codes.get("closing_type", ""),
        codes.get("additional_bed_type", ""),
    )


class RichSimulator(AvailabilitySimulator):
    """The demo's simulated availability (occupied, available by gender, some closed / supplementary / 24 h
    forecast) completed by `extra_indicators` where the demo did not already give that indicator."""

    def __call__(self, location: dict[str, Any]) -> None:
        super().__call__(location)
        installed = installed_count(location)
        if installed is None or installed[1] <= 0:
            return
        nature, n = installed
        current = indicators_of(location)
        generated = [i for i in current if i.status != "01"]
        if not generated:
            return
        have = {
            (i.status, i.temporality, i.gender or "", i.closing_type or "", i.additional_bed_type or "")
            for i in current
        }
        rng = random.Random(f"{self.seed}:rich:{location['id']}")
        ref = generated[0]
        added = [
            capacity_indicator(nature, status, temporality, nb, ref.source_type, ref.update_date, **codes)
            for status, temporality, codes, nb in extra_indicators(rng, n, current)
            if _key(status, temporality, codes) not in have
        ]
        location["extension"] = location["extension"] + added
        self.indicators += len(added)


# --- units of one establishment ----------------------------------------------------------------------------------
def split(total: int, size: tuple[int, int], rng: random.Random) -> list[int]:
    """`total` beds or places in round(total / s) parts of near-equal size, s drawn in `size`."""
    parts = max(1, round(total / rng.randint(*size)))
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def variant(unit: UnitType, index: int, count: int) -> UnitType:
    """Part `index` (1-based) of a unit split in `count`: its own key, id and name."""
    if count == 1:
        return unit
    return replace(unit, key=f"{unit.key}-{index}", name=f"{unit.name} {index}")


def split_units(
    site: Site, unit: UnitType, total: int, size: tuple[int, int], seed: int, simulator: RichSimulator, year: int
) -> list[dict[str, Any]]:
    rng = random.Random(f"{seed}:split:{site.finess}:{unit.key}")
    sizes = split(total, size, rng)
    out: list[dict[str, Any]] = []
    for i, n in enumerate(sizes, start=1):
        out += unit_pair(site, variant(unit, i, len(sizes)), n, simulator, year)
    return out


def ward_size(key: str) -> tuple[int, int]:
    return next((v for prefix, v in WARD_BEDS.items() if key.startswith(prefix)), DEFAULT_WARD)


def hospital_units(site: Site, beds: dict[str, int], seed: int, simulator: RichSimulator) -> list[dict[str, Any]]:
    """Wards of every SAE unit type, then one consultation offer per discipline."""
    out: list[dict[str, Any]] = []
    for key in sorted(beds):
        out += split_units(site, UNIT_TYPES[key], beds[key], ward_size(key), seed, simulator, SAE_YEAR)
    for key in sorted(beds.keys() & CONSULTATIONS.keys()):
        out += unit_pair(site, CONSULTATIONS[key], None, simulator)
    return out


def places_of(seed: int, finess: str, unit: UnitType) -> int | None:
    if unit.key in EXTRA_PLACES:
        return random.Random(f"{seed}:places:{finess}:{unit.key}").randint(*EXTRA_PLACES[unit.key])
    return generated_places(seed, finess, unit)


def category_units(site: Site, keys: Sequence[str], seed: int, simulator: RichSimulator) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in keys:
        unit = unit_type(key)
        places = places_of(seed, site.finess, unit)
        if places and key in SPLIT:
            out += split_units(site, unit, places, LIVING_UNIT, seed, simulator, SAE_YEAR)
        else:
            out += unit_pair(site, unit, places, simulator)
    return out


def category_of(org: dict[str, Any]) -> str | None:
    codes = [
        c.get("code") for t in org.get("type") or [] for c in t.get("coding") or [] if c.get("system") == ids.TRE_R66
    ]
    return codes[0] if codes else None


# --- report ------------------------------------------------------------------------------------------------------
@dataclass
class Step:
    name: str
    rows: int
    seconds: float

    @property
    def per_s(self) -> float:
        return round(self.rows / self.seconds, 1) if self.seconds else 0.0


@dataclass
class DatasetReport:
    size: str
    scope: str
    seed: int
    now: str
    days: int
    steps: list[Step] = field(default_factory=list)
    written: UpsertCounts = field(default_factory=UpsertCounts)
    establishments: dict[str, int] = field(default_factory=dict)  # hospitals / other EGs with generated offers
    counts: dict[str, int] = field(default_factory=dict)  # resources per type, capacity rows, events
    database_mb: float = 0.0
    peak_rss_mb: float = 0.0
    seconds: float = 0.0

    def step(self, name: str, rows: int, started: float) -> None:
        self.steps.append(Step(name, rows, round(time.perf_counter() - started, 1)))
        last = self.steps[-1]
        rss = f"peak RSS so far {peak_rss_mb():,.0f} MB"
        print(f"{name}: {rows:,} rows in {last.seconds:,.1f} s ({last.per_s:,.0f} rows/s), {rss}", flush=True)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("steps", "written")}
        out["steps"] = [
            {"name": s.name, "rows": s.rows, "seconds": s.seconds, "rows_per_s": s.per_s} for s in self.steps
        ]
        out["written"] = self.written.__dict__
        return out


def progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        disable=not enabled,
    )


# --- loading -----------------------------------------------------------------------------------------------------
@dataclass
class Writer:
    """Resources buffered and written `BATCH` at a time through `bulk_upsert`."""

    store: ResourceStore
    report: DatasetReport
    pending: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0

    def add(self, resources: list[dict[str, Any]]) -> None:
        self.pending += resources
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.report.written.add(self.store.bulk_upsert(self.pending, author=AUTHOR, method="IMPORT"))
            self.rows += len(self.pending)
            self.pending = []


def sae_sites(store: ResourceStore, reference: Path, scope: Scope) -> tuple[list[Site], dict[str, dict[str, int]]]:
    """Sites (stored EG address when the FINESS import wrote it, else the SAE's) and beds of the SAE hospitals."""
    capacity_dir = reference / "capacity"
    folder = sae_directory(capacity_dir, SAE_YEAR)
    establishments = read_establishments(folder, SAE_YEAR, scope)
    beds = read_beds(folder, SAE_YEAR, set(establishments), SaeReport(year=SAE_YEAR, scope=str(scope)))
    positions = read_positions(capacity_dir, SAE_YEAR)
    finess = sorted(f for f in establishments if beds.get(f))
    stored = load_sites(store, finess)
    return [sae_site(establishments[f], stored.get(f), positions.get(f)) for f in finess], beds


def sae_site(est: SaeEstablishment, stored: Site | None, position: dict[str, float] | None) -> Site:
    if stored is not None:
        return replace(stored, region=est.region or stored.region)
    return replace(est.site(), position=est.position or position)


def load_hospitals(
    store: ResourceStore, reference: Path, scope: Scope, simulator: RichSimulator, report: DatasetReport, progress: bool
) -> set[str]:
    started = time.perf_counter()
    sites, beds = sae_sites(store, reference, scope)
    writer = Writer(store, report)
    with progress_bar(progress) as bar:
        task = bar.add_task("hospitals (SAE wards)", total=len(sites), rate="")
        for site in sites:
            writer.add(hospital_units(site, beds[site.finess], simulator.seed, simulator))
            bar.update(task, advance=1, rate=f"{writer.rows / max(time.perf_counter() - started, 1e-3):,.0f} res/s")
        writer.flush()
    report.establishments["hospitals"] = len(sites)
    report.step("hospitals: offers + places", writer.rows, started)
    return {s.finess for s in sites}


def load_other_establishments(
    store: ResourceStore, scope: Scope, skip: set[str], simulator: RichSimulator, report: DatasetReport, progress: bool
) -> None:
    started = time.perf_counter()
    writer = Writer(store, report)
    done = 0
    with progress_bar(progress) as bar:
        task = bar.add_task("other establishments", total=None, rate="")
        for page in eg_pages(store, scope):
            wanted = [
                (f, region, org) for f, region, org in page if f not in skip and category_of(org) in UNITS_BY_CATEGORY
            ]
            places = existing_contents(store, "Location", [ids.eg_address_location_id(f) for f, _, _ in wanted])
            for finess, region, org in wanted:
                site = site_from_resources(finess, org, places.get(ids.eg_address_location_id(finess)))
                site = site if site.region else replace(site, region=region)
                if scope.accepts(site.region, departement_of(site)):
                    writer.add(
                        category_units(site, UNITS_BY_CATEGORY[category_of(org) or ""], simulator.seed, simulator)
                    )
                    done += 1
            bar.update(
                task, advance=len(page), rate=f"{writer.rows / max(time.perf_counter() - started, 1e-3):,.0f} res/s"
            )
        writer.flush()
    report.establishments["other"] = done
    report.step("other establishments: offers + places", writer.rows, started)


# --- history -----------------------------------------------------------------------------------------------------
def is_critical(location_id: str) -> bool:
    return location_id.split("-", 2)[-1].startswith(CRITICAL)


def event_row(
    row: Any, before: int | None, after: int, updated: datetime, received: datetime, version: int
) -> dict[str, Any]:
    return {
        "location_pk": row.location_pk,
        "location_id": row.location_id,
        **{f: getattr(row, f) for f in KEY_FIELDS},
        "nb_before": before,
        "nb_after": after,
        "source_type": row.source_type,
        "updated_at": updated,
        "received_at": received,
        "version_id": version,
        "actor": AUTHOR,
    }


def key_history(row: Any, installed: int, start: datetime, seed: int) -> list[dict[str, Any]]:
    """The events of one projected indicator: a creation event; for current availability and occupancy a chain
    of changes from `start` that ends at the projected number and date."""
    final = (row.nb, row.updated_at, row.received_at, row.version_id)
    if row.temporality != "01" or row.status not in ("02", "03") or row.updated_at <= start:
        return [event_row(row, None, *final)]
    rng = random.Random(f"{seed}:history:{row.location_id}:{row.status}:{row.gender}")
    per_day = 4 if is_critical(row.location_id) else 1
    span = row.updated_at - start
    n = int(span.total_seconds() / 86400 * per_day)
    times = [(start + span * (j + rng.random()) / (n + 1)).replace(microsecond=0) for j in range(n)]
    values, v = [], row.nb
    for _ in range(n):  # walk back from the final value: the chain ends exactly there
        v = min(max(installed, v), max(0, v + rng.randint(-2, 2)))
        values.append(v)
    values.reverse()
    out, before = [], None
    for t, value in zip(times, values, strict=True):
        out.append(event_row(row, before, value, t, t + timedelta(seconds=rng.randint(1, 90)), 0))
        before = value
    out.append(event_row(row, before, *final))
    return out


def location_events(rows: list[Any], start: datetime, seed: int) -> list[dict[str, Any]]:
    installed = sum(r.nb for r in rows if r.status == "01" and r.temporality == "01")
    return [e for r in rows for e in key_history(r, installed, start, seed)]


def projection_by_location(c: Connection, low: int, high: int) -> Iterator[list[Any]]:
    cols = [capacity.c.location_pk, capacity.c.location_id, *(capacity.c[f] for f in KEY_FIELDS)]
    cols += [
        capacity.c.nb,
        capacity.c.source_type,
        capacity.c.updated_at,
        capacity.c.received_at,
        capacity.c.version_id,
    ]
    q = (
        select(*cols)
        .where(capacity.c.location_pk >= low, capacity.c.location_pk < high)
        .order_by(capacity.c.location_pk, *(capacity.c[f] for f in KEY_FIELDS))
    )
    group: list[Any] = []
    for row in c.execute(q):
        if group and group[0].location_pk != row.location_pk:
            yield group
            group = []
        group.append(row)
    if group:
        yield group


def write_history(engine: Engine, now: datetime, days: int, seed: int, report: DatasetReport, progress: bool) -> None:
    """Replace the creation events the projection wrote by each indicator's history (see the module docstring)."""
    started = time.perf_counter()
    start = now.replace(tzinfo=None) - timedelta(days=days)
    with engine.begin() as c:
        c.execute(delete(capacity_event))
        top = int(c.execute(select(func.coalesce(func.max(capacity.c.location_pk), 0))).scalar_one())
    written = 0
    with progress_bar(progress) as bar:
        task = bar.add_task(f"history ({days} days)", total=top, rate="")
        for low in range(0, top + 1, PK_RANGE):
            with engine.connect() as c:
                events = [
                    e
                    for rows in projection_by_location(c, low, low + PK_RANGE)
                    for e in location_events(rows, start, seed)
                ]
            for i in range(0, len(events), EVENT_BATCH):
                with engine.begin() as c:
                    c.execute(insert(capacity_event), events[i : i + EVENT_BATCH])
            written += len(events)
            bar.update(
                task,
                completed=min(top, low + PK_RANGE),
                rate=f"{written / max(time.perf_counter() - started, 1e-3):,.0f} events/s",
            )
    report.step("capacity history (events)", written, started)


# --- entry point -------------------------------------------------------------------------------------------------
def reference_data(engine: Engine, reference: Path, report: DatasetReport) -> None:
    from ror.geo.loader import load_geography
    from ror.terminology.loader import load_nos

    started = time.perf_counter()
    with engine.connect() as c:
        has_nos = c.execute(select(code_system.c.url).limit(1)).first() is not None
        has_geo = c.execute(select(geo_commune.c.code).limit(1)).first() is not None
    if not has_nos:
        load_nos(engine, reference / "nos")
    if not has_geo:
        load_geography(engine, reference / "geo")
    report.step("reference data (NOS, geography)", 0, started)


def count(engine: Engine, report: DatasetReport) -> None:
    with engine.connect() as c:
        for res_type, n in c.execute(select(resource.c.res_type, func.count()).group_by(resource.c.res_type)):
            report.counts[res_type] = int(n)
        report.counts["capacity indicators"] = int(c.execute(select(func.count()).select_from(capacity)).scalar_one())
        report.counts["capacity events"] = int(c.execute(select(func.count()).select_from(capacity_event)).scalar_one())
    report.database_mb = database_mb(engine)


def database_mb(engine: Engine) -> float:
    if is_sqlite(engine):
        engine.dispose()
        path = Path(str(engine.url.database))
        with sqlite3.connect(path) as c:
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return round(sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6, 1)
    with engine.connect() as c:
        return round(int(c.execute(text("SELECT pg_database_size(current_database())")).scalar_one()) / 1e6, 1)


def current_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def build(
    url: str,
    size: str,
    reference: Path,
    *,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    days: int = 7,
    progress: bool = False,
) -> DatasetReport:
    """Load the dataset of `size` into the empty database at `url` (see the module docstring)."""
    t0 = time.perf_counter()
    at = (now or current_hour()).astimezone(UTC)
    scope = Scope.parse(SIZES[size])
    report = DatasetReport(size, str(scope), seed, at.isoformat(), days)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        reference_data(engine, reference, report)
        geography = Geography(engine)
        store = ResourceStore(engine, region_of=geography.region_of_commune)  # bulk_load blocks nest
        projection.install(store)
        simulator = RichSimulator(seed, at)
        with store.bulk_load() as bulk:
            if not bulk:
                raise SystemExit(f"{url} already holds resources: the dataset loads into an empty database")
            started = time.perf_counter()
            finess = import_finess(
                store,
                reference / "finess" / "finess_et_20210108_flat_from_fhir.csv.gz",
                scope=scope,
                geography=geography,
                progress=progress,
            )
            for counts in (finess.ej, finess.eg, finess.locations):
                report.written.add(counts)
            rows = finess.ej.created + finess.eg.created + finess.locations.created
            report.step("FINESS establishments (EJ, EG, addresses)", rows, started)
            hospitals = load_hospitals(store, reference, scope, simulator, report, progress)
            load_other_establishments(store, scope, hospitals, simulator, report, progress)
            started = time.perf_counter()
        report.step("search and version indexes built", 0, started)
        write_history(engine, at, days, seed, report, progress)
        started = time.perf_counter()
        analyze(engine)
        report.step("ANALYZE", 0, started)
        count(engine, report)
    finally:
        engine.dispose()
    report.seconds = round(time.perf_counter() - t0, 1)
    report.peak_rss_mb = round(peak_rss_mb(), 1)
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="region")
    p.add_argument("--database", required=True, help="SQLAlchemy URL of an empty (fresh) database")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--now", help="reference time, ISO 8601 (default: the current hour, UTC)")
    p.add_argument("--days", type=int, default=7, help="days of capacity history")
    args = p.parse_args()
    reference = get_settings().reference_data
    if reference is None or not (reference / "finess").is_dir():
        raise SystemExit("reference data not found: set ROR_REFERENCE_DATA")
    now = datetime.fromisoformat(args.now) if args.now else None
    report = build(args.database, args.size, reference, seed=args.seed, now=now, days=args.days, progress=True)
    print(f"\n{report.size} ({report.scope}), seed {report.seed}, now {report.now}: {report.seconds:,.0f} s")
    for name, n in sorted(report.counts.items()):
        print(f"  {name:24} {n:>12,}")
    print(f"  establishments with generated offers: {report.establishments}")
    print(f"  database {report.database_mb:,.1f} MB, peak RSS {report.peak_rss_mb:,.0f} MB")
    print(f"written {write_result(f'dataset-{args.size}', report.as_dict())}")


if __name__ == "__main__":
    main()
