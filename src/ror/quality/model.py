"""What a rule is and what it produces.

A rule checks objects of one kind (offer, establishment…) and yields one `Check` per object in its perimeter:
conforme or écart, with the offending value, a proposed value and the FHIRPath of the element. A rule that cannot
run on our data says why (`NotApplicable`) instead of pretending."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ror.quality.data import QualityData

# TRE_R350 ThematiqueAnomalie
COMPLETUDE, EXHAUSTIVITE, COHERENCE, RECENCE, STRUCTURATION, EXACTITUDE = "01", "02", "03", "04", "05", "06"
# TRE_R349 ActionAnomalie
AJOUT, CORRECTION, SUPPRESSION = "AJO", "COR", "SUP"


class NotApplicable(Exception):
    """The rule cannot run: the data it needs is missing (message: what it needs)."""


@dataclass(frozen=True)
class Check:
    rule: str
    focus_type: str  # FHIR type of the object checked (Organization, HealthcareService, Location)
    focus_id: str  # its logical id, or "finess:<number>" for a FINESS establishment absent from the ROR
    region: str | None
    departement: str | None
    ok: bool
    message: str = ""
    error_value: str | None = None
    proposed_value: str | None = None
    path: str | None = None  # FHIRPath of the element in error
    focus_finess: str | None = None  # FINESS shown when the focus is not (yet) a ROR resource


@dataclass
class RuleResult:
    rule: Rule
    status: str  # ok | not-applicable
    reason: str = ""  # for not-applicable: what data is missing
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def anomalies(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


class Rule(ABC):
    """One quality rule: id, title, what it checks, the data it needs; `run` yields its checks."""

    id: str
    title: str
    description: str
    needs: tuple[str, ...]  # names of the QualityData facts it reads (documentation and docs/quality.md)
    theme: str  # TRE_R350
    action: str = CORRECTION  # TRE_R349
    adaptation: str = ""  # how it differs from the national rule

    @abstractmethod
    def run(self, data: QualityData) -> Iterable[Check]: ...

    def check(
        self,
        focus_type: str,
        focus_id: str,
        region: str | None,
        departement: str | None,
        ok: bool,
        message: str = "",
        *,
        error: str | None = None,
        proposed: str | None = None,
        path: str | None = None,
        finess: str | None = None,
    ) -> Check:
        return Check(self.id, focus_type, focus_id, region, departement, ok, message, error, proposed, path, finess)
