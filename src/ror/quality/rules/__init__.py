"""The rules, one class each (docs/quality.md has the table)."""

from __future__ import annotations

from ror.quality.model import Rule
from ror.quality.rules.capacity import CAP1, CAP2
from ror.quality.rules.coverage import EX3, EX4, EX5
from ror.quality.rules.freshness import RE1_2
from ror.quality.rules.offers import CO1, CO3, CP5, CP6
from ror.quality.rules.structure import CO4, EX1_2, EX2, ST2, ST3

ALL_RULES: tuple[Rule, ...] = (
    CO1(),
    CO3(),
    CO4(),
    ST2(),
    ST3(),
    CP5(),
    CP6(),
    EX1_2(),
    EX2(),
    EX3(),
    EX4(),
    EX5(),
    RE1_2(),
    CAP1(),
    CAP2(),
)
RULES_BY_ID = {r.id: r for r in ALL_RULES}
