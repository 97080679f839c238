"""RE1.2 — freshness of the description of each establishment's offers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from ror.quality.data import QualityData
from ror.quality.model import RECENCE, Check, Rule
from ror.quality.rules.categories import PRACTICES

YEAR = timedelta(days=365)


def conforming(n: int, m: int) -> bool:
    """N open offers, M updated within a year: N = 0 → yes; 1–7 → M ≥ 1; ≥ 8 → round(M/N, 2) ≥ 0.25."""
    if n == 0:
        return True
    if n <= 7:
        return m >= 1
    return round(m / n, 2) >= 0.25


class RE1_2(Rule):
    id = "RE1.2"
    title = "Fraîcheur des offres de l'établissement"
    description = (
        "Pour chaque EG ouvert (hors cabinets) : N offres ouvertes, M mises à jour depuis moins d'un an ; conforme "
        "si N = 0, si M ≥ 1 quand N ≤ 7, si M/N ≥ 25 % quand N ≥ 8."
    )
    needs = ("establishments", "offers")
    theme = RECENCE
    adaptation = "Date de mise à jour de l'offre = meta.lastUpdated de la HealthcareService (contacts inclus)."

    def run(self, data: QualityData) -> Iterable[Check]:
        limit = data.now - YEAR
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for o in data.offers:
            if o.open and o.org_id:
                c = counts[o.org_id]
                c[0] += 1
                c[1] += int(o.last_updated >= limit)
        for eg in data.establishments.values():
            if not eg.open or eg.category in PRACTICES:
                continue
            n, m = counts.get(eg.id, (0, 0))
            ok = conforming(n, m)
            yield self.check(
                "Organization", eg.id, eg.region, eg.departement, ok,
                "" if ok else f"{m} offre(s) mise(s) à jour depuis un an sur {n}",
                error=f"{m}/{n}", path="HealthcareService.meta.lastUpdated",
            )  # fmt: skip
