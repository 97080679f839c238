"""Crisis exercise sandbox: replay a historical surge (e.g. the SI-VIC 2020 ICU census per département) on the
installed beds of a separate database, through the real capacity write service (docs/exercise.md)."""

from ror.exercise.plan import IcuUnit, ReplayPlan, UnitState, build_plan
from ror.exercise.scenario import Curves, Scenario, get_scenario, load_curves, scenarios

__all__ = [
    "Curves",
    "IcuUnit",
    "ReplayPlan",
    "Scenario",
    "UnitState",
    "build_plan",
    "get_scenario",
    "load_curves",
    "scenarios",
]
