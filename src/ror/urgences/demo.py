"""Demo emergency activity: one emergency department (offer with care mode 33 + its place) for each establishment
of the store that declared passages in SAE 2023 (URGENCES2 PASSU, summed in the derived per-establishment
table), and 24 hourly reports scaled from its yearly passages: passages of the last 24 h ≈ yearly / 365,
patients present ≈ passages × 4.5 h mean stay / 24 h × an hour-of-day curve, waiting for a bed ≈ 10–25 % of
them. Deterministic (seeded by FINESS)."""

from __future__ import annotations

import csv
import math
import random
from datetime import datetime, timedelta
from pathlib import Path

from ror.directory import ids
from ror.directory.units import ALL_AGES, UnitType, healthcare_service, load_sites, unit_location
from ror.search.normalise import utcnow
from ror.urgences.model import CARE_MODE_URGENCES, Figures
from ror.urgences.service import UrgencesService

DERIVED = Path("capacity/derived/sae2023_capacites_par_etablissement.csv")
UNIT = UnitType("urg", "Urgences", "157", "32", "01", "005", ALL_AGES, nature=None)
MEAN_STAY_H = 4.5


def yearly_passages(reference_dir: Path) -> dict[str, int]:
    path = reference_dir / DERIVED
    if not path.is_file():
        return {}
    out: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter=";"):
            value = (row.get("passages_urgences") or "").strip()
            if value.isdigit() and int(value) > 0:
                out[row["fi"]] = int(value)
    return out


def hour_factor(hour: int) -> float:
    """Relative load by hour of day (Paris ≈ UTC+1): low at night, peak late afternoon; mean ≈ 1."""
    return 1.0 + 0.55 * math.sin((hour - 10) / 24 * 2 * math.pi)


def figures(yearly: int, hour: int, rng: random.Random) -> Figures:
    daily = yearly / 365
    passages = max(0, round(daily * rng.uniform(0.9, 1.1)))
    present = max(0, round(daily * MEAN_STAY_H / 24 * hour_factor(hour) * rng.uniform(0.85, 1.15)))
    waiting = min(present, round(present * rng.uniform(0.10, 0.25)))
    return Figures(present, waiting, passages)


def load_urgences_demo(urgences: UrgencesService, reference_dir: Path | None, now: datetime | None = None) -> str:
    if reference_dir is None:
        return "urgences: no reference data, nothing generated"
    yearly = yearly_passages(reference_dir)
    sites = load_sites(urgences.store, yearly)
    resources = []
    for site in sites.values():
        hs = healthcare_service(site, UNIT)
        care_mode = {"system": ids.TRE_R213, "code": CARE_MODE_URGENCES, "display": "Accueil des urgences"}
        hs["characteristic"] = [{"coding": [care_mode]}]
        hs["name"] = "Urgences - Accueil des urgences"
        resources += [hs, unit_location(site, UNIT)]
    urgences.store.bulk_upsert(resources, author="demo")
    now = (now or utcnow()).replace(minute=0, second=0, microsecond=0)
    rows = []
    for finess in sites:
        with urgences.engine.connect() as c:
            dep = urgences.department(c, ids.unit_service_id(finess, UNIT.key))
        rng = random.Random(int(finess) if finess.isdigit() else hash(finess))
        for h in range(24, 0, -1):
            at = now - timedelta(hours=h - 1)
            rows.append((dep, figures(yearly[finess], (at.hour + 1) % 24, rng), at))
    urgences.load(rows)
    return f"urgences: {len(sites)} emergency departments, {len(rows)} hourly reports (scaled from SAE 2023)"
