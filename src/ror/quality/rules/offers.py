"""Offer-level rules: emergencies naming (CO1), sensitive units (CO3), médico-social completeness (CP5, CP6)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ror.directory import ids
from ror.quality.data import TRE_R240, Offer, QualityData
from ror.quality.model import COHERENCE, COMPLETUDE, Check, Rule
from ror.quality.rules.categories import MEDICO_SOCIAL, PRACTICES
from ror.quality.rules.text import fold

SENSITIVE_PATH = f"HealthcareService.extension('{ids.EXT_SENSITIVE_UNIT}').value"


def _category(data: QualityData, offer: Offer) -> str | None:
    eg = data.establishments.get(offer.org_id or "")
    return eg.category if eg else None


class CO1(Rule):
    id = "CO1"
    title = "Nom des offres d'urgences"
    description = (
        "Une offre ouverte en mode « Accueil des urgences » (R213 33) avec l'activité 157 (urgences polyvalentes) "
        "ou 249 (urgences pédiatriques) a un nom contenant « urgence »."
    )
    needs = ("offers",)
    theme = COHERENCE
    adaptation = (
        "Seule la règle de nommage est contrôlée. La règle d'autorisation (activité FINESS 14, modalités 23 SU / "
        "24 SUP) n'est pas applicable : besoin des autorisations sanitaires FINESS (dwh_activitesoin), absentes."
    )

    def run(self, data: QualityData) -> Iterable[Check]:
        for o in data.offers:
            if not o.open or "33" not in o.care_modes or not (o.activities & {"157", "249"}):
                continue
            ok = "urgence" in fold(o.name)
            yield self.check(
                "HealthcareService", o.id, o.region, o.departement, ok,
                "" if ok else f"le nom « {o.name} » ne contient pas « urgence »",
                error=o.name, proposed=f"{o.name} - Urgences" if not ok else None, path="HealthcareService.name",
            )  # fmt: skip


SENSITIVE_NAME = re.compile(
    r"\buhsir?\b|securisee interregionale|securite inter-regionale|securise|detenus|\busmp\b|penitentia|\buhsa\b"
    r"|specialement amenage|service medico-psychologique|\bufdh\b|\bumdh\b|\bnrbc\b|decontamination|contamine"
)
SMPR = re.compile(r"\bsmpr\b")
NOT_SENSITIVE_CATEGORIES = frozenset({"500", "124"}) | PRACTICES


def looks_sensitive(offer: Offer) -> bool:
    name = fold(offer.name)
    by_name = bool(SENSITIVE_NAME.search(name)) or (bool(SMPR.search(name)) and "readaptation" not in name)
    return by_name or "089" in offer.activities


class CO3(Rule):
    id = "CO3"
    title = "Unités sensibles signalées"
    description = (
        "Une offre ouverte dont le nom évoque une unité sensible (UHSI, UHSA, USMP, SMPR, détenus, NRBC, "
        "décontamination…) ou qui porte l'activité 089 (médecine pénitentiaire) a l'extension unité sensible à "
        "vrai ; inversement une offre signalée sensible que ces indices ne détectent pas est à vérifier."
    )
    needs = ("offers", "establishments")
    theme = COHERENCE
    adaptation = "Pas d'arbre OI (UF → UE) dans nos données : la propagation d'une UF détectée à ses UE n'a pas lieu."

    def run(self, data: QualityData) -> Iterable[Check]:
        for o in data.offers:
            if not o.open or _category(data, o) in NOT_SENSITIVE_CATEGORIES:
                continue
            detected = looks_sensitive(o)
            flagged = bool(o.sensitive)
            if not detected and not flagged:
                continue
            ok = detected == flagged
            if ok:
                msg = ""
            elif detected:
                msg = f"« {o.name} » ressemble à une unité sensible mais n'est pas signalée comme telle"
            else:
                msg = f"« {o.name} » est signalée sensible sans indice (nom, activité 089) : à vérifier"
            yield self.check(
                "HealthcareService", o.id, o.region, o.departement, ok, msg,
                error=str(flagged).lower(), proposed=None if ok else str(detected).lower(), path=SENSITIVE_PATH,
            )  # fmt: skip


MS_MODES = frozenset({"46", "47", "48"})
CP5_CATEGORIES = frozenset({"183", "186", "194", "195", "255", "390", "395", "437"})
CP5_PA_HOSTING = frozenset({"202", "207", "500", "501", "502"})


def _ms_scope(data: QualityData) -> Iterable[tuple[Offer, str]]:
    """Open offers in hébergement / accueil de jour / de nuit of a médico-social EG, not a platform de répit (38)."""
    for o in data.offers:
        cat = _category(data, o)
        if o.open and o.care_modes & MS_MODES and cat in MEDICO_SOCIAL and "38" not in o.categories:
            yield o, cat or ""


class CP5(Rule):
    id = "CP5"
    title = "Catégorisation de l'offre médico-sociale"
    description = (
        "Une offre médico-sociale d'hébergement ou d'accueil (R213 46/47/48) des catégories IME, ITEP, déficients "
        "sensoriels, MAS, accueil temporaire, FAM (et résidences autonomie / EHPA / EHPAD en hébergement) renseigne "
        "la catégorie d'organisation (TRE_R244) et la temporalité d'accueil (TRE_R240)."
    )
    needs = ("offers", "establishments")
    theme = COMPLETUDE

    def run(self, data: QualityData) -> Iterable[Check]:
        for o, cat in _ms_scope(data):
            if not (cat in CP5_CATEGORIES or (cat in CP5_PA_HOSTING and "46" in o.care_modes)):
                continue
            missing = [
                name for name, values in (("catégorie", o.categories), ("temporalité", o.receptions)) if not values
            ]
            path = None
            if "catégorie" in missing:
                path = "HealthcareService.category"
            elif missing:
                path = f"HealthcareService.characteristic.where(coding.system='{TRE_R240}')"
            yield self.check(
                "HealthcareService", o.id, o.region, o.departement, not missing,
                f"non renseigné : {', '.join(missing)}" if missing else "", error="(vide)" if missing else None,
                path=path,
            )  # fmt: skip


class CP6(Rule):
    id = "CP6"
    title = "Places installées de l'offre médico-sociale"
    description = (
        "Une offre médico-sociale d'hébergement ou d'accueil (même périmètre que CP5, toutes catégories "
        "médico-sociales) déclare des places installées (> 0) sur son lieu ; sans objet pour les PASA (R244 25)."
    )
    needs = ("offers", "establishments", "capacity projection")
    theme = COMPLETUDE
    adaptation = "Places installées = indicateurs capacitaires « installé, courant » des lieux de l'offre."

    def run(self, data: QualityData) -> Iterable[Check]:
        cap = data.capacity_by_location
        for o, _cat in _ms_scope(data):
            if "25" in o.categories:
                continue
            installed = sum((cap.get(loc) or {}).get("installed") or 0 for loc in o.locations)
            yield self.check(
                "HealthcareService", o.id, o.region, o.departement, installed > 0,
                "" if installed > 0 else "aucune place installée déclarée", error=str(installed),
                path=f"Location.extension('{ids.EXT_CAPACITY}')",
            )  # fmt: skip
