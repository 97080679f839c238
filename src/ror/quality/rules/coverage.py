"""Intensive-care coverage (EX3, EX4, EX5): an establishment with réanimation activity has the matching offer.

The national rules start from FINESS authorisations (activity 15 modalities 09 / 10|98, activity 03 modality 04),
which we do not have. Where the data allows, we start from the SAE instead: an establishment that declared
installed beds of that kind in the SAE (REA REAADU / REAENF, PERINAT LIT_REA) must have an open offer with the
expected operational activity. Without the SAE tables the rules are not applicable."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from ror.directory import ids
from ror.quality.data import QualityData
from ror.quality.model import AJOUT, EXHAUSTIVITE, Check, NotApplicable, Rule

REA_ADULT = frozenset({"121", "122", "123", "124", "125", "126", "127", "129"})


class _Coverage(Rule):
    sae_unit: str
    activities: frozenset[str]
    needs = ("establishments", "offers", "SAE installed beds")
    theme = EXHAUSTIVITE
    action = AJOUT

    def run(self, data: QualityData) -> Iterable[Check]:
        beds = data.sae_beds
        if beds is None:
            raise NotApplicable("needs FINESS authorisations or, as a proxy, the SAE tables (reference capacity/)")
        offered: dict[str, set[str]] = defaultdict(set)
        for o in data.offers:
            if o.open and o.org_id:
                offered[o.org_id] |= o.activities
        for eg in data.establishments.values():
            n = (beds.get(eg.finess or "") or {}).get(self.sae_unit, 0)
            if not eg.open or n <= 0:
                continue
            ok = bool(offered.get(eg.id, set()) & self.activities)
            yield self.check(
                "Organization", eg.id, eg.region, eg.departement, ok,
                "" if ok else f"{n} lits {self.sae_unit} au SAE mais aucune offre ouverte d'activité "
                f"{'/'.join(sorted(self.activities))}",
                proposed="/".join(sorted(self.activities)),
                path=f"HealthcareService.where(providedBy.reference='Organization/{eg.id}')"
                f".specialty.where(coding.system='{ids.TRE_R211}')",
            )  # fmt: skip


class EX3(_Coverage):
    id = "EX3"
    title = "Réanimation adulte décrite"
    description = "Un établissement avec des lits de réanimation adulte a une offre d'activité 121–127 ou 129."
    adaptation = "Autorisation FINESS 15/09 remplacée par les lits REAADU du SAE 2023."
    sae_unit = "rea-adu"
    activities = REA_ADULT


class EX4(_Coverage):
    id = "EX4"
    title = "Réanimation pédiatrique décrite"
    description = "Un établissement avec des lits de réanimation pédiatrique a une offre d'activité 130."
    adaptation = "Autorisation FINESS 15/10 ou 15/98 remplacée par les lits REAENF du SAE 2023."
    sae_unit = "rea-ped"
    activities = frozenset({"130"})


class EX5(_Coverage):
    id = "EX5"
    title = "Réanimation néonatale décrite"
    description = "Un établissement avec des lits de réanimation néonatale a une offre d'activité 128."
    adaptation = "Autorisation FINESS 03/04 remplacée par les lits LIT_REA du tableau PERINAT du SAE 2023."
    sae_unit = "neonat-rea"
    activities = frozenset({"128"})
