"""Exercise scenarios (registry as data: `scenarios.json`) and their source curves.

A scenario names a historical surge: a daily census of patients per département (`measure`) that the replay
turns into occupied beds of one critical-care activity family (`activity`, `ror.reporting.activities`). The one
format read today is Santé publique France's SI-VIC `covid_hospit` file (`dep;sexe;jour;hosp;rea;rad;dc`, quoted
fields, `sexe` 0 = both sexes, 1/2 = men/women: only the 0 rows are read, the others would count twice). Quirks of
the stored file, handled: 27–29 June 2020 are written `27/06/2020` for most départements (ISO elsewhere), and one
row of 2020-03-24 has no département (13 patients): it is left out, as it cannot be placed."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path

from ror.errors import InvalidRequest
from ror.reporting.activities import FAMILY_BY_KEY

REGISTRY = Path(__file__).with_name("scenarios.json")
SIVIC_FORMAT = "sivic-covid-hospit"
BOTH_SEXES = "0"


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    description: str
    file: str  # relative to the reference data root (ROR_REFERENCE_DATA)
    format: str
    measure: str  # column of the census (SI-VIC: rea = patients in intensive care)
    activity: str  # critical-care family whose beds the census occupies
    crisis_type: str  # TRE_R336 of the crisis declared for the exercise
    source: str


@cache
def scenarios() -> dict[str, Scenario]:
    data = json.loads(REGISTRY.read_text(encoding="utf-8"))
    out = {key: Scenario(key=key, **value) for key, value in data.items()}
    for sc in out.values():
        if sc.activity not in FAMILY_BY_KEY:
            raise ValueError(f"scenario {sc.key}: unknown activity family {sc.activity!r}")
    return out


def get_scenario(key: str) -> Scenario:
    found = scenarios().get(key)
    if found is None:
        raise InvalidRequest(f"scénario inconnu {key!r} ; scénarios : {', '.join(sorted(scenarios()))}")
    return found


@dataclass(frozen=True)
class Curves:
    """A daily census per département on consecutive days (gaps filled linearly, ends carried)."""

    days: tuple[date, ...]
    by_departement: dict[str, tuple[int, ...]]  # aligned with `days`

    def total(self, departements: set[str] | None = None) -> list[int]:
        deps = [d for d in self.by_departement if departements is None or d in departements]
        return [sum(self.by_departement[d][i] for d in deps) for i in range(len(self.days))]

    def peak(self, departements: set[str] | None = None) -> tuple[date, int]:
        """(first day of the maximum, maximum) of the total over `departements` (default: all)."""
        totals = self.total(departements)
        best = max(range(len(totals)), key=lambda i: (totals[i], -i))
        return self.days[best], totals[best]

    def departement_peak(self, departement: str) -> tuple[date, int]:
        values = self.by_departement[departement]
        best = max(range(len(values)), key=lambda i: (values[i], -i))
        return self.days[best], values[best]


def read_sivic(path: Path, measure: str = "rea") -> Curves:
    raw: dict[str, dict[date, int]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter=";"):
            dep = (row.get("dep") or "").strip()
            if (row.get("sexe") or "").strip() != BOTH_SEXES or not dep:
                continue
            value = (row.get(measure) or "").strip()
            if value == "" or value.upper() == "NA":
                continue
            raw.setdefault(dep, {})[_day(row.get("jour") or "")] = int(value)
    if not raw:
        raise InvalidRequest(f"{path}: no row with sexe=0 and a {measure} value")
    first = min(min(v) for v in raw.values())
    last = max(max(v) for v in raw.values())
    days = tuple(first + timedelta(days=i) for i in range((last - first).days + 1))
    return Curves(days, {dep: _fill(values, days) for dep, values in sorted(raw.items())})


def _day(text: str) -> date:
    """`2020-04-08` or `08/04/2020`."""
    t = text.strip()
    if "/" in t:
        day, month, year = t.split("/")
        return date(int(year), int(month), int(day))
    return date.fromisoformat(t)


def _fill(values: dict[date, int], days: tuple[date, ...]) -> tuple[int, ...]:
    known = sorted(values)
    out: list[int] = []
    for day in days:
        if day in values:
            out.append(values[day])
            continue
        before = [d for d in known if d < day]
        after = [d for d in known if d > day]
        if not before or not after:
            out.append(values[before[-1] if before else after[0]])
            continue
        a, b = before[-1], after[0]
        share = (day - a).days / (b - a).days
        out.append(round(values[a] + (values[b] - values[a]) * share))
    return tuple(out)


def load_curves(scenario: Scenario, reference_dir: Path | None) -> Curves:
    if reference_dir is None:
        raise InvalidRequest("reference data not found: set ROR_REFERENCE_DATA (the scenario's source file)")
    path = reference_dir / scenario.file
    if not path.is_file():
        raise InvalidRequest(f"scenario {scenario.key}: source file not found: {path}")
    if scenario.format != SIVIC_FORMAT:
        raise InvalidRequest(f"scenario {scenario.key}: unknown format {scenario.format!r}")
    return read_sivic(path, scenario.measure)
