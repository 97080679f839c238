"""Which indicators are valid (combinations of codes), codes within the current value sets, and the consistency
warnings between the indicators of one Location. The table is documented in docs/capacity.md."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ror.capacity.model import CODED, Indicator
from ror.errors import Issue, RorError

# status → which optional dimensions it may carry
STATUS_NAMES = {
    "01": "Installé",
    "02": "Disponible",
    "03": "Occupé",
    "04": "Réservé",
    "05": "Fermé",
    "06": "Supplémentaire",
}
GENDER_STATUSES = {"02"}
CLOSING_STATUSES = {"05"}
SUPPLEMENTARY_STATUSES = {"06"}
# forecasts (temporality 02–05) make sense for what can change within hours or days; installed capacity is structural
FORECAST_STATUSES = {"02", "03", "04", "05", "06"}


class BusinessRuleError(RorError):
    status, code = 400, "business-rule"


@dataclass(frozen=True)
class Combination:
    ok: bool
    reason: str = ""


def check_combination(ind: Indicator) -> Combination:
    s = ind.status
    if ind.gender and s not in GENDER_STATUSES:
        return Combination(False, "genderCapacityAvailable is only allowed with capacityStatus 02 (Disponible)")
    if ind.closing_type and s not in CLOSING_STATUSES:
        return Combination(False, "capacityClosingType is only allowed with capacityStatus 05 (Fermé)")
    if s in CLOSING_STATUSES and not ind.closing_type:
        return Combination(False, "capacityStatus 05 (Fermé) needs capacityClosingType")
    if ind.additional_bed_type and s not in SUPPLEMENTARY_STATUSES:
        return Combination(False, "additionalBedType is only allowed with capacityStatus 06 (Supplémentaire)")
    if s in SUPPLEMENTARY_STATUSES and not ind.additional_bed_type:
        return Combination(False, "capacityStatus 06 (Supplémentaire) needs additionalBedType")
    if ind.crisis_type and s not in SUPPLEMENTARY_STATUSES:
        return Combination(False, "crisisType is only allowed with capacityStatus 06 (Supplémentaire)")
    if ind.temporality != "01" and s not in FORECAST_STATUSES:
        return Combination(False, f"forecasts (temporality {ind.temporality}) are not given for status {s}")
    return Combination(True)


Validate = Callable[[str, str, str], object]  # (value set, system, code) → raises on an invalid code


def validate_indicators(
    indicators: Sequence[Indicator], validate_code: Validate | None, kept: Sequence[Indicator] = ()
) -> None:
    """Raise BusinessRuleError (one issue per problem) when a code is outside its current value set, a
    combination is invalid, or two indicators share a key.

    `kept`: the stored indicators a patch started from. Those it carries over untouched (the same objects) are
    stored data — tolerated with a code deprecated since, e.g. R332 03 — so only the indicators the write adds
    or changes are checked for codes and combinations (a feeder updating its available beds is not refused for
    an old indicator it did not send; a capacity PATCH also validates one indicator instead of all of them);
    the duplicate-key rule covers them all."""
    untouched = {id(ind) for ind in kept}
    issues: list[Issue] = []
    seen: dict[tuple[str, ...], int] = {}
    for i, ind in enumerate(indicators):
        path = f"Location.extension.where(url='ror-location-supported-capacity')[{i}]"
        checked = id(ind) not in untouched
        if checked and validate_code is not None:
            for url, (attr, system, vs) in CODED.items():
                code = getattr(ind, attr)
                if code:
                    try:
                        validate_code(vs, system, code)
                    except RorError as exc:
                        issues.append(Issue("error", "business-rule", f"{url}: {exc.diagnostics}", [path]))
        if checked and not (combo := check_combination(ind)).ok:
            issues.append(
                Issue(
                    "error",
                    "business-rule",
                    f"Les valeurs ne correspondent pas à un indicateur valide ({ind.describe()}): {combo.reason}",
                    [path],
                )
            )
        if ind.key in seen:
            issues.append(
                Issue(
                    "error",
                    "business-rule",
                    f"two indicators with the same key ({ind.describe()}) on one Location",
                    [path],
                )
            )
        seen[ind.key] = i
    if issues:
        raise BusinessRuleError(issues[0].diagnostics, issues=issues)


def consistency_warnings(indicators: Sequence[Indicator]) -> list[Issue]:
    """Reported, never silently fixed: available > installed; occupied + available > installed + supplementary."""
    out: list[Issue] = []
    by: dict[tuple[str, str, str], int] = {}
    for ind in indicators:
        if ind.temporality != "01" or ind.temporary_assignment != "01":
            continue
        k = (ind.nature, ind.status, "")
        by[k] = by.get(k, 0) + ind.nb
    for nature in {k[0] for k in by}:
        installed = by.get((nature, "01", ""))
        available = by.get((nature, "02", ""), 0)
        occupied = by.get((nature, "03", ""), 0)
        extra = by.get((nature, "06", ""), 0)
        if installed is None:
            continue
        if available > installed:
            out.append(
                Issue(
                    "warning",
                    "business-rule",
                    f"available ({available}) > installed ({installed}) for nature {nature}",
                    ["Location"],
                )
            )
        if occupied + available > installed + extra:
            out.append(
                Issue(
                    "warning",
                    "business-rule",
                    f"occupied + available ({occupied + available}) > installed + supplementary "
                    f"({installed + extra}) for nature {nature}",
                    ["Location"],
                )
            )
    return out
