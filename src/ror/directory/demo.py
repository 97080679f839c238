"""Demo data, so that every feature has something to show:

(a) the SAE units of the scope (`import_sae`: offers + places with installed beds);
(b) generated offers for the other establishments of the scope that the store holds as EG Organizations
    (`eg-<FINESS>`, usually written by the FINESS import), chosen by FINESS category (`OFFERS_BY_CATEGORY`:
    EHPAD → permanent accommodation with places, CMP → ambulatory psychiatry, centres de santé / MSP →
    consultations, dialysis, HAD…);
(c) synthetic current availability on every unit place that has an installed capacity: occupied (03), available
    (02) by gender (01 Femme / 02 Homme) or undetermined (04), on some places a 24 h forecast, closed beds
    (05, réactivable) or supplementary beds (06, mobilisable sans RH); update dates spread over the 36 h before
    `now`, most within 4 h.

Everything is deterministic for a given (`seed`, `now`): re-running writes no new version. Without reference data
the built-in seed (`seed.py`, one département) provides establishments, units and availability by itself."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from rich.text import Text
from sqlalchemy import select

from ror.db.tables import resource
from ror.directory import ids
from ror.directory.sae import SaeReport, import_sae, installed_indicator, record_run
from ror.directory.scope import Scope
from ror.directory.seed import Seed, load_seed, organization_resources, site
from ror.directory.units import (
    STATUS_AVAILABLE,
    STATUS_CLOSED,
    STATUS_OCCUPIED,
    STATUS_SUPPLEMENTARY,
    TEMPORALITY_24H,
    TEMPORALITY_CURRENT,
    UNIT_TYPES,
    Site,
    UnitType,
    capacity_indicator,
    existing_contents,
    healthcare_service,
    installed_count,
    is_installed_current,
    site_from_resources,
    unit_location,
)
from ror.store import ResourceStore, UpsertCounts

DEFAULT_SEED = 53
AUTHOR = "demo"
INSTALLED_YEAR = 2023  # generated installed capacities are dated like the SAE ones (31/12/2023)
PAGE = 1000  # EG Organizations read per query
BATCH = 1000  # resources per write

# FINESS catégorie d'établissement (TRE_R66) -> unit types generated for it.
OFFERS_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    "500": ("ehpad",),  # EHPAD
    "255": ("mas",),  # maison d'accueil spécialisée
    "437": ("fam",),  # foyer d'accueil médicalisé
    "448": ("fam",),  # établissement d'accueil médicalisé
    "127": ("had",),  # hospitalisation à domicile
    "156": ("cmp",),  # centre médico-psychologique
    "124": ("cds",),  # centre de santé
    "603": ("msp",),  # maison de santé pluriprofessionnelle
    "141": ("dialyse",),  # centre de dialyse
    "146": ("udm",),  # alternative à la dialyse en centre
}
# Installed places of generated units (min, max).
PLACES: dict[str, tuple[int, int]] = {"ehpad": (45, 110), "mas": (30, 60), "fam": (25, 55), "had": (20, 90)}
# Occupancy rate of the open capacity (min, max) per unit type.
OCCUPANCY: dict[str, tuple[float, float]] = {
    "rea-adu": (0.75, 1.0),
    "rea-ped": (0.6, 0.95),
    "neonat-rea": (0.7, 1.0),
    "psy": (0.8, 1.0),
    "usld": (0.9, 1.0),
    "ehpad": (0.9, 1.0),
    "mas": (0.92, 1.0),
    "fam": (0.9, 1.0),
    "had": (0.7, 0.95),
}
DEFAULT_OCCUPANCY = (0.7, 0.97)
SOURCES = (("01", 0.6), ("02", 0.3), ("04", 0.1))  # saisie manuelle, bed management, DPI


@dataclass
class DemoReport:
    scope: str
    source: str  # "reference data" or "built-in seed"
    now: str
    seed: int
    sae: SaeReport | None = None
    seed_establishments: int = 0
    generated: dict[str, int] = field(default_factory=dict)  # generated offers per unit type
    locations_with_availability: int = 0
    indicators: int = 0  # availability indicators written (installed ones excluded)
    written: UpsertCounts = field(default_factory=UpsertCounts)  # everything the demo wrote, SAE included
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __rich__(self) -> Text:
        return Text(str(self))

    def __str__(self) -> str:
        lines = [
            f"demo [{self.scope}] from {self.source}, seed {self.seed}, now {self.now}: "
            f"created {self.written.created}, updated {self.written.updated}, unchanged {self.written.unchanged} "
            f"in {self.seconds:.1f} s",
        ]
        if self.sae is not None:
            lines.append(f"  SAE: {self.sae.establishments} establishments, {self.sae.units} units")
        if self.seed_establishments:
            lines.append(f"  seed: {self.seed_establishments} establishments")
        if self.generated:
            lines.append("  generated offers: " + ", ".join(f"{k} {v}" for k, v in sorted(self.generated.items())))
        lines.append(f"  availability: {self.locations_with_availability} places, {self.indicators} indicators")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# --- synthetic availability ------------------------------------------------------------------------------------
def _weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def update_age(rng: random.Random) -> timedelta:
    """How long ago a unit last updated its beds: 75 % within 4 h, 20 % within 4–24 h, 5 % within 24–36 h."""
    r = rng.random()
    low, high = (0.0, 4.0) if r < 0.75 else (4.0, 24.0) if r < 0.95 else (24.0, 36.0)
    return timedelta(seconds=int(rng.uniform(low, high) * 3600))


@dataclass(frozen=True)
class Snapshot:
    """The simulated state of one place: the numbers behind its indicators."""

    installed: int
    closed: int
    occupied: int
    available: int
    female: int | None  # None: availability is not split by gender (04 Indéterminé)
    forecast: int | None  # available in 24 h
    supplementary: int


def simulate(rng: random.Random, installed: int, occupancy: tuple[float, float]) -> Snapshot:
    """closed + occupied + available <= installed; available by gender sums to available."""
    closed = rng.randint(1, max(1, installed // 8)) if installed >= 4 and rng.random() < 0.08 else 0
    open_beds = installed - closed
    occupied = min(open_beds, round(open_beds * rng.uniform(*occupancy)))
    free = open_beds - occupied
    available = rng.randint(max(0, free - 2), free)  # a free bed may lack staff, so not be "available"
    female = rng.randint(0, available) if rng.random() < 0.6 else None
    forecast = min(open_beds, available + rng.randint(0, 2)) if rng.random() < 0.1 else None
    supplementary = rng.randint(1, max(1, installed // 10)) if rng.random() < 0.05 else 0
    return Snapshot(installed, closed, occupied, available, female, forecast, supplementary)


def snapshot_indicators(snap: Snapshot, nature: str, source: str, updated: datetime) -> list[dict[str, Any]]:
    def ind(status: str, nb: int, **kw: Any) -> dict[str, Any]:
        return capacity_indicator(nature, status, kw.pop("temporality", TEMPORALITY_CURRENT), nb, source, updated, **kw)

    out = [ind(STATUS_OCCUPIED, snap.occupied)]
    if snap.female is None:
        out.append(ind(STATUS_AVAILABLE, snap.available, gender="04"))
    else:
        out.append(ind(STATUS_AVAILABLE, snap.female, gender="01"))
        out.append(ind(STATUS_AVAILABLE, snap.available - snap.female, gender="02"))
    if snap.forecast is not None:
        out.append(ind(STATUS_AVAILABLE, snap.forecast, gender="04", temporality=TEMPORALITY_24H))
    if snap.closed:
        out.append(ind(STATUS_CLOSED, snap.closed, closing_type="01"))
    if snap.supplementary:
        out.append(ind(STATUS_SUPPLEMENTARY, snap.supplementary, additional_bed_type="02"))
    return out


def unit_key_of(location_id: str) -> str:
    """`loc-<FINESS>-<key>` -> key."""
    return location_id.split("-", 2)[2]


class AvailabilitySimulator:
    """Replaces the availability indicators of a unit Location with simulated ones (a `LocationHook`).
    Deterministic per (seed, now, Location id), whatever the order in which places are visited."""

    def __init__(self, seed: int, now: datetime):
        self.seed = seed
        self.now = now
        self.locations = 0
        self.indicators = 0

    def __call__(self, location: dict[str, Any]) -> None:
        installed = installed_count(location)
        if installed is None or installed[1] <= 0:
            return
        nature, n = installed
        rng = random.Random(f"{self.seed}:{location['id']}")
        snap = simulate(rng, n, OCCUPANCY.get(unit_key_of(location["id"]), DEFAULT_OCCUPANCY))
        updated = self.now - update_age(rng)
        generated = snapshot_indicators(snap, nature, _weighted(rng, SOURCES), updated)
        extensions = location.get("extension") or []
        kept = [e for e in extensions if e.get("url") != ids.EXT_CAPACITY or is_installed_current(e)]
        location["extension"] = kept + generated
        self.locations += 1
        self.indicators += len(generated)


# --- units of an establishment ---------------------------------------------------------------------------------
def unit_pair(
    site_: Site, unit: UnitType, installed: int | None, simulator: AvailabilitySimulator, year: int = INSTALLED_YEAR
) -> list[dict[str, Any]]:
    """HealthcareService + Location of one unit, with its installed capacity and simulated availability."""
    capacities = []
    if unit.nature is not None and installed:
        capacities.append(installed_indicator(installed, year, unit.nature))
    location = unit_location(site_, unit, capacities)
    simulator(location)
    return [healthcare_service(site_, unit), location]


def generated_places(seed: int, finess: str, unit: UnitType) -> int | None:
    if unit.nature is None:
        return None
    low, high = PLACES.get(unit.key, (10, 40))
    return random.Random(f"{seed}:places:{finess}:{unit.key}").randint(low, high)


# --- (b) generated offers of the EGs in the store ---------------------------------------------------------------
def departement_of(site_: Site) -> str | None:
    """Département of an establishment: from its commune code, else from its FINESS number."""
    code = site_.commune or ""
    if len(code) == 5:
        return code[:3] if code.startswith("97") else code[:2]
    finess = site_.finess
    if finess.startswith("97"):
        return "97" + finess[3]
    if finess.startswith("9805"):
        return "976"
    return finess[:2] or None


def _category(org: dict[str, Any]) -> str | None:
    for t in org.get("type") or []:
        for c in t.get("coding") or []:
            if c.get("system") == ids.TRE_R66:
                return c.get("code")
    return None


def eg_pages(store: ResourceStore, scope: Scope) -> Iterator[list[tuple[str, str | None, dict[str, Any]]]]:
    """(FINESS, region, content) of the stored EG Organizations, a page at a time (keyset on pk)."""
    last = 0
    while True:
        q = select(resource.c.pk, resource.c.res_id, resource.c.region, resource.c.content).where(
            resource.c.res_type == "Organization",
            resource.c.res_id.like("eg-%"),
            resource.c.deleted.is_(False),
            resource.c.pk > last,
        )
        if scope.kind == "region":
            q = q.where(resource.c.region == scope.code)
        with store.read_conn() as c:
            rows = c.execute(q.order_by(resource.c.pk).limit(PAGE)).all()
        if not rows:
            return
        last = rows[-1].pk
        yield [(r.res_id[3:], r.region, orjson.loads(r.content)) for r in rows]


def generate_offers(
    store: ResourceStore,
    scope: Scope,
    skip: set[str],
    seed: int,
    simulator: AvailabilitySimulator,
    report: DemoReport,
) -> None:
    """Offers of the stored EGs of the scope whose category `OFFERS_BY_CATEGORY` knows (FINESS in `skip` aside)."""
    pending: list[dict[str, Any]] = []
    for page in eg_pages(store, scope):
        wanted = [(f, region, org) for f, region, org in page if f not in skip and _category(org) in OFFERS_BY_CATEGORY]
        places = existing_contents(store, "Location", [ids.eg_address_location_id(f) for f, _, _ in wanted])
        for finess, region, org in wanted:
            site_ = site_from_resources(finess, org, places.get(ids.eg_address_location_id(finess)))
            site_ = site_ if site_.region else replace(site_, region=region)
            if scope.accepts(site_.region, departement_of(site_)):
                keys = OFFERS_BY_CATEGORY[_category(org) or ""]
                pending += establishment_offers(site_, keys, seed, simulator, report)
        if len(pending) >= BATCH:
            report.written.add(store.bulk_upsert(pending, author=AUTHOR, method="IMPORT"))
            pending = []
    report.written.add(store.bulk_upsert(pending, author=AUTHOR, method="IMPORT"))


def establishment_offers(
    site_: Site, keys: tuple[str, ...], seed: int, simulator: AvailabilitySimulator, report: DemoReport
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in keys:
        unit = UNIT_TYPES[key]
        out += unit_pair(site_, unit, generated_places(seed, site_.finess, unit), simulator)
        report.generated[key] = report.generated.get(key, 0) + 1
    return out


# --- seed path --------------------------------------------------------------------------------------------------
def seed_resources(seed_data: Seed, simulator: AvailabilitySimulator) -> list[dict[str, Any]]:
    out = organization_resources(seed_data)
    for est in seed_data.establishments:
        site_ = site(seed_data, est)
        for key, installed in est.units.items():
            out += unit_pair(site_, UNIT_TYPES[key], installed, simulator, seed_data.installed_year)
    return out


def load_seed_demo(store: ResourceStore, scope: Scope, simulator: AvailabilitySimulator, report: DemoReport) -> None:
    seed_data = load_seed()
    if not scope.accepts(seed_data.region, seed_data.departement):
        report.notes.append(
            f"the built-in seed covers departement:{seed_data.departement} (region:{seed_data.region}) only: "
            f"nothing loaded for {scope}"
        )
        return
    resources = seed_resources(seed_data, simulator)
    for start in range(0, len(resources), BATCH):
        report.written.add(store.bulk_upsert(resources[start : start + BATCH], author=AUTHOR, method="IMPORT"))
    report.seed_establishments = len(seed_data.establishments)


# --- entry point ------------------------------------------------------------------------------------------------
def _now(now: datetime | None) -> datetime:
    value = now or datetime.now(UTC)
    value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def load_demo(
    store: ResourceStore,
    reference_dir: Path | None,
    *,
    scope: Scope,
    now: datetime | None = None,
    seed: int = DEFAULT_SEED,
    progress: bool = False,
) -> DemoReport:
    """Load the demo data of `scope` (see the module docstring). `reference_dir` is the reference data root (the
    folder holding `capacity/`); None or missing → the built-in seed."""
    started = time.perf_counter()
    at = _now(now)
    simulator = AvailabilitySimulator(seed, at)
    use_reference = reference_dir is not None and reference_dir.is_dir()
    report = DemoReport(str(scope), "reference data" if use_reference else "built-in seed", at.isoformat(), seed)
    if reference_dir is not None and use_reference:
        _load_reference_demo(store, reference_dir, scope, seed, simulator, report, progress)
    else:
        load_seed_demo(store, scope, simulator, report)
    report.locations_with_availability, report.indicators = simulator.locations, simulator.indicators
    report.seconds = round(time.perf_counter() - started, 2)
    record_run(store, "demo", str(reference_dir or "built-in seed"), at, report.written, str(report))
    return report


def _load_reference_demo(
    store: ResourceStore,
    reference_dir: Path,
    scope: Scope,
    seed: int,
    simulator: AvailabilitySimulator,
    report: DemoReport,
    progress: bool,
) -> None:
    capacity = reference_dir / "capacity"
    sae_finess: set[str] = set()
    if capacity.is_dir():
        report.sae = import_sae(
            store, capacity, scope=scope, progress=progress, now=simulator.now, add_indicators=simulator
        )
        report.written.add(report.sae.written)
        sae_finess = set(report.sae.finess)
    else:
        report.notes.append(f"no SAE data in {capacity}: no SAE units")
    generate_offers(store, scope, sae_finess, seed, simulator, report)
