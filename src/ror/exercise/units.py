"""The units an exercise fills: the Locations of one critical-care family (`ror.reporting.activities`, e.g.
`rea-adulte` = R211 121–127 and 129 of quality-rules EX3) with their installed beds, read from the database's own
capacity projection (`capacity`, status 01 Installé, current, nature 01 Lit, no temporary assignment) — or, to plan
without a database, from the SAE tables the import reads (same unit types, same family rule)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import Engine, func, select

from ror.access.rights import establishment_finess
from ror.capacity.timeseries import NO_ASSIGNMENT, units_query
from ror.db.tables import capacity, resource
from ror.directory import ids
from ror.directory.sae import SaeReport, read_beds, read_establishments, sae_directory
from ror.directory.scope import Scope
from ror.directory.units import NATURE_BED, STATUS_INSTALLED, TEMPORALITY_CURRENT, UNIT_TYPES
from ror.exercise.plan import IcuUnit, scale_for
from ror.exercise.scenario import Curves
from ror.reporting.activities import family_of


@dataclass(frozen=True)
class UnitSelection:
    units: list[IcuUnit]
    orphans: list[str]  # Locations of the family whose establishment (FINESS EG) is not in the store: nobody may write


def _series_level(scope: Scope) -> tuple[str, str | None]:
    return ("national", None) if scope.kind == "national" else (scope.kind, scope.code)


def units_from_database(engine: Engine, scope: Scope, activity: str) -> UnitSelection:
    """Locations of `activity` in `scope` with installed beds (> 0), their département and establishment."""
    level, code = _series_level(scope)
    selected = units_query(level, code, activity).subquery("units")
    c = capacity
    beds = (
        select(c.c.location_pk, func.max(c.c.departement).label("dep"), func.sum(c.c.nb).label("nb"))
        .where(
            c.c.location_pk.in_(select(selected.c.pk)),
            c.c.status == STATUS_INSTALLED,
            c.c.temporality == TEMPORALITY_CURRENT,
            c.c.nature == NATURE_BED,
            c.c.temporary_assignment.in_(NO_ASSIGNMENT),
        )
        .group_by(c.c.location_pk)
        .subquery("beds")
    )
    q = (
        select(resource.c.res_id, beds.c.dep, beds.c.nb, resource.c.content)
        .select_from(beds.join(resource, resource.c.pk == beds.c.location_pk))
        .order_by(resource.c.res_id)
    )
    units: list[IcuUnit] = []
    orphans: list[str] = []
    with engine.connect() as conn:
        for location_id, departement, installed, content in conn.execute(q):
            if not installed or not departement:
                continue
            finess = establishment_finess(conn, orjson.loads(content))
            if not finess:
                orphans.append(location_id)
                continue
            units.append(IcuUnit(location_id, departement, int(installed), frozenset(finess)))
    return UnitSelection(units, orphans)


def units_from_sae(reference_dir: Path, scope: Scope, activity: str, year: int = 2023) -> list[IcuUnit]:
    """The same units as an import of the SAE `year` would create (`ror import sae`), without a database."""
    folder = sae_directory(reference_dir / "capacity", year)
    keys = {k for k, t in UNIT_TYPES.items() if family_of({t.activity}) == activity}
    establishments = read_establishments(folder, year, scope)
    beds = read_beds(folder, year, set(establishments), SaeReport(year=year, scope=str(scope)))
    out: list[IcuUnit] = []
    for fi, by_unit in sorted(beds.items()):
        dep = establishments[fi].departement
        for key in sorted(keys & set(by_unit)):
            if dep and by_unit[key] > 0:
                out.append(IcuUnit(ids.unit_location_id(fi, key), dep, by_unit[key], frozenset({fi})))
    return out


def national_scale(reference_dir: Path, curves: Curves, activity: str, fraction: float) -> tuple[float, int]:
    """(k, installed beds): the national peak of the census occupies `fraction` of the nation's installed beds of
    `activity` (SAE, as `ror import sae --scope national` would store them)."""
    installed = sum(u.installed for u in units_from_sae(reference_dir, Scope("national"), activity))
    return scale_for(fraction, installed, curves.peak()[1]), installed
