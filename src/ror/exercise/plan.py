"""The replay plan: a pure function from a scenario's daily census per département and the installed beds of the
exercise's units to the occupied / available / supplementary beds of every unit at every simulated step.

Rules (docs/exercise.md):

* one scale factor `k` for the whole exercise, k = fraction × installed / peak census (`scale_for`): by default the
  national one (all adult ICU beds of the SAE, the national census peak: 0.95 × 5 224 / 7 019 ≈ 0.707 for
  covid-2020-spring, computed by the caller and given as `scale`), or the perimeter's own (`scale=None`: the peak
  of the census summed over the exercise's départements, over the whole scenario whatever the replayed window,
  occupies `fraction`, default 0.95, of their installed beds);
* steps: `steps_per_day` per simulated day from `start` 00:00 to `until` 00:00 included; a day's census holds at
  00:00 (UTC) of that day and is interpolated linearly to the next day;
* per step t the exercise's total is round_half_up(k × Σ_d census(d, t)), shared between the départements in
  proportion to k × census(d, t) by largest remainders (so a département's target is that value rounded down or
  up, and rounding never makes an interpolated hour exceed the peak day); a département's target is shared
  between its units in proportion to their installed beds (largest remainders, exact integer arithmetic, ties
  to the unit listed first), so the units always sum to their département's target;
* per unit: available = max(0, installed − occupied); supplementary = max(0, occupied − installed) (the beds a
  crisis cell opens, status 06 with the crisis type); occupied is never capped, so the sum stays the census.

Départements of the census without any unit in the exercise are listed in `unplaced` (their patients are not
replayed); units of a département without census stay empty."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property

from ror.errors import InvalidRequest
from ror.exercise.scenario import Curves

DEFAULT_FRACTION = 0.95
MAX_STEPS_PER_DAY = 24 * 60


@dataclass(frozen=True)
class IcuUnit:
    location_id: str
    departement: str
    installed: int
    finess: frozenset[str] = field(default=frozenset(), compare=False)


@dataclass(frozen=True)
class UnitState:
    occupied: int
    available: int
    supplementary: int


def scale_for(fraction: float, installed: int, peak: int) -> float:
    """The factor that makes a census peak of `peak` patients occupy `fraction` of `installed` beds."""
    return fraction * installed / peak if peak else 0.0


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def apportion_shares(total: int, shares: list[float]) -> list[int]:
    """Round `shares` (≥ 0) so that they sum to `total` = round(sum): each part is its share rounded down or up,
    the largest fractional parts rounded up (ties to the first listed)."""
    parts = [math.floor(x) for x in shares]
    rest = max(0, min(len(shares), total - sum(parts)))
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in order[:rest]:
        parts[i] += 1
    return parts


def apportion(total: int, weights: list[int]) -> list[int]:
    """Split `total` in proportion to `weights` (largest remainders, exact): the parts sum to `total`."""
    whole = sum(weights)
    if whole <= 0:
        return [0] * len(weights)
    parts = [total * w // whole for w in weights]
    rest = total - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[:rest]:
        parts[i] += 1
    return parts


@dataclass(frozen=True)
class ReplayPlan:
    scenario: str
    times: tuple[datetime, ...]  # simulated instants (naive UTC), one per step
    scale: float
    scale_basis: str  # "périmètre" (computed here from fraction), else what the caller said (national, donné)
    fraction: float | None  # None: the scale was given
    installed: int  # installed beds of the units of départements with a census (the basis of the scale)
    peak_day: date  # first day of the peak of the census over the exercise's départements (whole scenario)
    peak_census: int
    units: tuple[IcuUnit, ...]
    departements: tuple[str, ...]  # départements with units, sorted
    unplaced: tuple[str, ...]  # départements of the census without unit
    targets: tuple[tuple[int, ...], ...]  # [step][index in departements] occupied beds
    exact: tuple[float, ...] = field(compare=False, repr=False, default=())  # [step] k × census, unrounded

    @property
    def steps(self) -> int:
        return len(self.times)

    @cached_property
    def _units_by_departement(self) -> dict[str, list[IcuUnit]]:
        out: dict[str, list[IcuUnit]] = {d: [] for d in self.departements}
        for u in self.units:
            out[u.departement].append(u)
        return out

    def total(self, step: int) -> int:
        return sum(self.targets[step])

    def departement_total(self, step: int, departement: str) -> int:
        return self.targets[step][self.departements.index(departement)]

    def peak_step(self) -> int:
        """The step of the maximum of the planned total (equal totals: the larger unrounded census, then the
        first)."""
        totals = [self.total(i) for i in range(self.steps)]
        exact = self.exact or (0.0,) * self.steps
        return max(range(len(totals)), key=lambda i: (totals[i], exact[i], -i))

    def states(self, step: int) -> dict[str, UnitState]:
        """Location id → its beds at `step`."""
        out: dict[str, UnitState] = {}
        for d, target in zip(self.departements, self.targets[step], strict=True):
            units = self._units_by_departement[d]
            for u, occupied in zip(units, apportion(target, [u.installed for u in units]), strict=True):
                out[u.location_id] = UnitState(occupied, max(0, u.installed - occupied), max(0, occupied - u.installed))
        return out


def _census_at(values: tuple[int, ...], first: date, at: datetime) -> float:
    offset = (at - datetime.combine(first, time())) / timedelta(days=1)
    i = math.floor(offset)
    if i >= len(values) - 1:
        return float(values[-1])
    share = offset - i
    return values[i] * (1 - share) + values[i + 1] * share


def build_plan(
    curves: Curves,
    units: Iterable[IcuUnit],
    *,
    scenario: str,
    start: date | None = None,
    until: date | None = None,
    steps_per_day: int = 24,
    fraction: float = DEFAULT_FRACTION,
    scale: float | None = None,
    scale_basis: str = "donné",
) -> ReplayPlan:
    start = start or curves.days[0]
    until = until or curves.days[-1]
    if not curves.days[0] <= start <= until <= curves.days[-1]:
        raise InvalidRequest(
            f"the replayed period must lie within {curves.days[0]} … {curves.days[-1]} (got {start} … {until})",
            expression="from",
        )
    if not 1 <= steps_per_day <= MAX_STEPS_PER_DAY:
        raise InvalidRequest(f"steps per day must be between 1 and {MAX_STEPS_PER_DAY}", expression="steps-per-day")
    if scale is None and not 0 < fraction <= 10:
        raise InvalidRequest("the peak fraction must be in ]0, 10]", expression="fraction")
    if scale is not None and scale < 0:
        raise InvalidRequest("the scale factor must be ≥ 0", expression="scale")
    chosen = tuple(sorted((u for u in units if u.installed > 0), key=lambda u: (u.departement, u.location_id)))
    if not chosen:
        raise InvalidRequest("aucune unité avec des lits installés dans le périmètre de l'exercice")
    departements = tuple(sorted({u.departement for u in chosen}))
    with_census = {d for d in departements if d in curves.by_departement}
    installed = sum(u.installed for u in chosen if u.departement in with_census)
    peak_day, peak = curves.peak(with_census) if with_census else (curves.days[0], 0)
    k = scale if scale is not None else scale_for(fraction, installed, peak)
    step = timedelta(days=1) / steps_per_day
    origin = datetime.combine(start, time())
    times = tuple(origin + i * step for i in range((until - start).days * steps_per_day + 1))
    zero = (0,) * len(curves.days)
    series = [curves.by_departement.get(d, zero) for d in departements]
    targets: list[tuple[int, ...]] = []
    exact: list[float] = []
    for at in times:
        shares = [k * _census_at(values, curves.days[0], at) for values in series]
        targets.append(tuple(apportion_shares(round_half_up(sum(shares)), shares)))
        exact.append(sum(shares))
    return ReplayPlan(
        scenario=scenario,
        times=times,
        scale=k,
        scale_basis=scale_basis if scale is not None else "périmètre",
        fraction=None if scale is not None else fraction,
        installed=installed,
        peak_day=peak_day,
        peak_census=peak,
        units=chosen,
        departements=departements,
        unplaced=tuple(sorted(set(curves.by_departement) - set(departements))),
        targets=tuple(targets),
        exact=tuple(exact),
    )
