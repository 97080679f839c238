"""Population tracking (« peuplement », docs/quality-rules.md §3): the seven completeness flags of every open offer,
its status, and the status of each establishment.

Offer flags: 1 champ d'activité (TRE_R227 in JDV_J20), 2 mode de prise en charge (JDV_J19), 3 patientèle (age
range low and high), 4 activité opérationnelle (JDV_J17), 5 adresse (line, city, postal code on the offer's Location),
6 contact (an offer contact whose telecom has address, channel and confidentiality level), 7 catégorie
d'organisation (JDV_J238) — required only for home services (EG categories 209, 354, 460). Codes are checked
against the loaded NOS value sets; without NOS any code counts.

Offer status: Finalisé when every applicable flag holds, En cours when at least one does, À faire otherwise.
Establishment status (open ROR EG of a tracked category): Finalisé when it has offers and all are finalised,
À faire when it has none or none has any flag, En cours otherwise (the national « finalisé + à faire = à faire »
quirk is reported as En cours, as §7.13 proposes).

`population` computes every establishment of a scope (QualityData); `establishment_population` one establishment
from its Organization, offers and places already read (the establishment's offers page), with the same flags."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ror.quality.data import Offer, Place, QualityData, establishment_of, load_value_sets, offer_of, place_of
from ror.quality.rules.categories import DOMICILE, TRACKED
from ror.search.normalise import utcnow

FLAGS = ("champ", "mode", "patientele", "activite", "adresse", "contact", "categorie")
FLAG_LABELS = {
    "champ": "Champ d'activité",
    "mode": "Mode de prise en charge",
    "patientele": "Patientèle",
    "activite": "Activité opérationnelle",
    "adresse": "Adresse",
    "contact": "Contact",
    "categorie": "Catégorie d'organisation",
}
FINALISE, EN_COURS, A_FAIRE = "finalise", "en_cours", "a_faire"
STATUS_LABELS = {FINALISE: "Finalisé", EN_COURS: "En cours", A_FAIRE: "À faire"}
CHAMPS = frozenset({"01", "02", "03", "04", "05"})


@dataclass
class OfferFlags:
    offer_id: str
    flags: dict[str, bool | None]  # None = not applicable

    @property
    def status(self) -> str:
        applicable = [v for v in self.flags.values() if v is not None]
        if all(applicable):
            return FINALISE
        return EN_COURS if any(applicable) else A_FAIRE


@dataclass
class EstablishmentPopulation:
    id: str
    finess: str | None
    name: str
    category: str | None
    region: str | None
    departement: str | None
    offers: list[OfferFlags] = field(default_factory=list)
    tracked: bool = True  # open EG of a tracked category (the perimeter of the territory counts)

    @property
    def status(self) -> str:
        statuses = [o.status for o in self.offers]
        if statuses and all(s == FINALISE for s in statuses):
            return FINALISE
        if any(s != A_FAIRE for s in statuses):
            return EN_COURS
        return A_FAIRE

    def flag_counts(self) -> Counter[str]:
        return Counter(f for o in self.offers for f, v in o.flags.items() if v)


def _valid(codes: set[str], allowed: set[str]) -> bool:
    return bool(codes & allowed) if allowed else bool(codes)


def offer_flags(
    vs: Mapping[str, set[str]], places: Mapping[str, Place], o: Offer, eg_category: str | None
) -> OfferFlags:
    """The seven flags of one offer; `vs` = the JDV codes (load_value_sets), `places` = its Locations by id."""
    flags: dict[str, bool | None] = {
        "champ": _valid(o.fields & CHAMPS, vs["J20"]),
        "mode": _valid(o.care_modes, vs["J19"]),
        "patientele": o.ages is not None and o.ages[0] is not None and o.ages[1] is not None,
        "activite": _valid(o.activities, vs["J17"]),
        "adresse": any(p.has_address for p in (places.get(x) for x in o.locations) if p),
        "contact": o.contact_ok,
        "categorie": _valid(o.categories, vs["J238"]) if eg_category in DOMICILE else None,
    }
    return OfferFlags(o.id, flags)


def population(data: QualityData) -> list[EstablishmentPopulation]:
    out: dict[str, EstablishmentPopulation] = {}
    for eg in data.establishments.values():
        if eg.open and eg.category in TRACKED:
            out[eg.id] = EstablishmentPopulation(eg.id, eg.finess, eg.name, eg.category, eg.region, eg.departement)
    for o in data.offers:
        e = out.get(o.org_id or "")
        if e is not None and o.open:
            e.offers.append(offer_flags(data.value_sets, data.places, o, e.category))
    return sorted(out.values(), key=lambda e: (e.region or "", e.departement or "", e.name))


def establishment_population(
    conn: Connection,
    org: Mapping[str, Any],
    offers: Iterable[Mapping[str, Any]],
    places: Mapping[str, Mapping[str, Any]],
    *,
    region: str | None = None,
    now: datetime | None = None,
) -> EstablishmentPopulation | None:
    """The population of one establishment from its Organization, its offers (HealthcareService providedBy it) and
    their places (Location by id), as `population` computes it for a territory; one query (the value sets). None
    when the Organization is not an EG. Closed offers are left out, as in `population`; `tracked` tells whether the
    establishment is in the perimeter (open, tracked category)."""
    now = now or utcnow()
    today = now.date()
    eg = establishment_of(str(org.get("id")), region, dict(org), today)
    if eg is None:
        return None
    out = EstablishmentPopulation(
        eg.id, eg.finess, eg.name, eg.category, eg.region, eg.departement, tracked=eg.open and eg.category in TRACKED
    )
    vs = load_value_sets(conn)
    by_id = {pid: place_of(pid, dict(res)) for pid, res in places.items()}
    for res in offers:
        o = offer_of(str(res.get("id")), region, eg.departement, now, dict(res), today)
        if o.open and o.org_id == eg.id:
            out.offers.append(offer_flags(vs, by_id, o, eg.category))
    return out
