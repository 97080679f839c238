"""Critical-care activity families of the DGOS daily report, from the operational activity (TRE_R211, JDV_J17) of
the offer (HealthcareService) delivered at a Location. The mapping is documented in docs/reports.md.

* réanimation adulte: the R211 codes quality-rules.md EX3 lists (121–127, 129);
* réanimation pédiatrique: 130 (EX4);
* soins intensifs: 351–372 (« Soins intensifs … » in JDV_J17) except 355 (psychiatrie: not critical care) and
  369 (néonatalogie: périnatalité authorisation, counted with the maternity level, not here);
* surveillance continue: 373–391 (« Surveillance continue … » in JDV_J17).

Réanimation néonatale (128) is left out for the same reason as 369. A Location delivering offers of several
families is counted once, in the first family of this order."""

from __future__ import annotations

from dataclasses import dataclass

# Our code system for the families (used in the MeasureReport groups and the CSV).
FAMILY_SYSTEM = "https://ror.invalid/fhir/CodeSystem/dgos-critical-care-family"


@dataclass(frozen=True)
class Family:
    key: str
    label: str
    codes: tuple[str, ...]


FAMILIES: tuple[Family, ...] = (
    Family("rea-adulte", "Réanimation adulte", ("121", "122", "123", "124", "125", "126", "127", "129")),
    Family("rea-pediatrique", "Réanimation pédiatrique", ("130",)),
    Family(
        "soins-intensifs",
        "Soins intensifs",
        tuple(str(n) for n in range(351, 373) if n not in (355, 369)),
    ),
    Family("surveillance-continue", "Surveillance continue", tuple(str(n) for n in range(373, 392))),
)
FAMILY_BY_KEY = {f.key: f for f in FAMILIES}
FAMILY_OF_CODE = {code: f.key for f in FAMILIES for code in f.codes}
PRIORITY = {f.key: i for i, f in enumerate(FAMILIES)}


def family_of(codes: set[str]) -> str | None:
    """The family of a Location from the R211 codes of its offers (first family in FAMILIES order wins)."""
    found = {FAMILY_OF_CODE[c] for c in codes if c in FAMILY_OF_CODE}
    return min(found, key=PRIORITY.__getitem__) if found else None
