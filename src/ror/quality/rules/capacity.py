"""Capacity consistency: available ≤ installed (CAP1) and stale feeds (CAP2)."""

from __future__ import annotations

from collections.abc import Iterable

from ror.capacity.freshness import unit_freshness
from ror.directory import ids
from ror.quality.data import QualityData
from ror.quality.model import COHERENCE, RECENCE, Check, Rule

CAPACITY_PATH = f"Location.extension('{ids.EXT_CAPACITY}')"


class CAP1(Rule):
    id = "CAP1"
    title = "Disponibles ≤ installés"
    description = (
        "Sur chaque lieu, la capacité disponible courante (sans affectation temporaire, tous genres) ne dépasse pas "
        "la capacité installée."
    )
    needs = ("capacity projection",)
    theme = COHERENCE
    adaptation = "Règle propre au capacitaire (docs/capacity.md), absente des règles nationales."

    def run(self, data: QualityData) -> Iterable[Check]:
        for loc, d in sorted(data.capacity_by_location.items()):
            if d["installed"] is None or d["available"] is None:
                continue
            ok = d["available"] <= d["installed"]
            yield self.check(
                "Location", loc, d["region"], d["departement"], ok,
                "" if ok else f"{d['available']} disponibles pour {d['installed']} installés",
                error=str(d["available"]), proposed=f"≤ {d['installed']}", path=CAPACITY_PATH,
            )  # fmt: skip


class CAP2(Rule):
    id = "CAP2"
    title = "Flux de disponibilités à jour"
    description = (
        "Un lieu avec une capacité installée publie sa disponibilité courante depuis moins de 24 h (ou l'intervalle "
        "d'une crise active sur son territoire) ; un lieu qui n'en a jamais publié est en écart."
    )
    needs = ("capacity projection", "crises")
    theme = RECENCE

    def run(self, data: QualityData) -> Iterable[Check]:
        scope = data.scope
        region = scope.code if scope.kind == "region" else None
        dep = scope.code if scope.kind == "departement" else None
        for u in unit_freshness(data.engine, region=region, departement=dep, at=data.now):
            stale = u.stale(data.now)
            # a stable message (no age in hours): a re-run does not rewrite the task while nothing changes
            if u.last_update is None:
                msg = "aucune disponibilité publiée"
            else:
                msg = f"dernière disponibilité publiée le {u.last_update:%Y-%m-%d %H:%M} UTC"
            yield self.check(
                "Location", u.location_id, u.region, u.departement, not stale, msg if stale else "",
                error=u.last_update.isoformat() if u.last_update else None,
                proposed=f"mise à jour < {int(u.limit.total_seconds() // 60)} min", path=CAPACITY_PATH,
            )  # fmt: skip
