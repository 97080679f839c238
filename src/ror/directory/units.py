"""Builders of a ROR unit: the offer (HealthcareService, profile ror-healthcareservice), the place where it is
delivered (Location, profile ror-location) and the capacity indicators the place carries
(`ror-location-supported-capacity`, docs/ror-fhir-api.md §1.3, §1.4, §2).

A unit belongs to one establishment (EG `eg-<FINESS ET>`) and has a unit *type* from `UNIT_TYPES` (réanimation
adulte, EHPAD…) whose short key makes its ids: `hs-<FINESS>-<key>` / `loc-<FINESS>-<key>` (ids.py). The NOS codes
and labels every builder may emit are listed in `LABELS` (checked against the NOS files by the tests); a code
missing from that table is a programming error (KeyError), never a silent unlabeled coding.

`Site` is what a unit copies from its establishment (region, commune, address, position); `load_sites` reads it
from the stored EG Organization and its address Location (`eg-<FINESS>-adr`) when the FINESS import wrote them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import select

from ror.capacity.model import Indicator
from ror.capacity.rules import check_combination
from ror.db.tables import resource
from ror.directory import ids
from ror.store import ResourceStore
from ror.store.meta import REGION_SYSTEM, commune_code, region_tag

UCUM = "http://unitsofmeasure.org"
TRE_R240 = ids.nos("TRE_R240-TemporaliteAccueil")

# Official labels (current NOS files: fsh-2026 when the code is there, else smt-2023) of every code emitted here.
LABELS: dict[str, dict[str, str]] = {
    ids.TRE_G07: {"1": "FINESS", "40": "Identifiant national de structure"},
    ids.TRE_R66: {
        "127": "Hospitalisation à domicile (HAD)",
        "128": "Etablissement de soins chirurgicaux",
        "146": "Structure d'alternative à la dialyse en centre",
        "161": "Maison de santé pour maladies mentales",
        "292": "Centre hospitalier spécialisé de lutte contre les maladies mentales",
        "355": "Centre hospitalier (CH)",
        "365": "Etablissement de soins pluridisciplinaire",
        "500": "Etablissement d'hébergement pour personnes âgées dépendantes",
        "603": "Maison de santé (L6223-3)",
    },
    ids.TRE_R211: {
        "033": "Chirurgie digestive et viscérale fonctionnelle (hors carcinologie)",
        "059": "Hémodialyse chronique",
        "083": "Médecine polyvalente",
        "094": "Néonatalogie",
        "100": "Obstétrique",
        "127": "Réanimation polyvalente",
        "128": "Réanimation spécialisée néonatale",
        "130": "Réanimation spécialisée pédiatrique",
        "157": "Urgences polyvalentes hospitalières",
        "172": "Réadaptation polyvalente",
        "229": "Psychiatrie adulte",
        "249": "Urgences pédiatriques hospitalières",
        "293": "Accompagnements pour les actes de la vie quotidienne (AVQ)",
        "333": "Soins de longue durée (SLD)",
        "351": "Soins intensifs polyvalents",
        "354": "Soins intensifs spécialisés cardiologie (USIC)",
        "356": "Soins intensifs spécialisés neurologie vasculaire (USINV)",
        "369": "Soins intensifs spécialisés néonatalogie",
        "373": "Surveillance continue polyvalente",
        "391": "Surveillance continue spécialisée pédiatrique",
        "437": "Médecine générale",
    },
    ids.TRE_R213: {
        "13": "Hospitalisation courte durée (UHCD)",
        "28": "Hospitalisation complète (HC)",
        "31": "Hospitalisation à domicile (HAD)",
        "32": "Consultation (CS) ou Séance",
        "46": "Hébergement (accueil jour et nuit)",
    },
    ids.TRE_R227: {
        "01": "Médecine Chirurgie Obstétrique (MCO)",
        "02": "Soins Médicaux et de réadaptation (SMR)",
        "03": "Psychiatrie (PSY)",
        "04": "Médico-social (MS)",
        "05": "Ville",
    },
    ids.TRE_R244: {
        "10": "Centre Médico-Psychologique (CMP)",
        "21": "Accueil ou hébergement pour personnes âgées dépendantes, sans spécificité",
        "39": "Foyer ou établissement d'accueil médicalisé (FAM ou EAM)",
        "40": "Maison d'accueil spécialisée (MAS)",
        "99": "Maison de santé pluriprofessionnelle (MSP)",
        "100": "Soins Médicaux et de Réadaptation (SMR) polyvalent",
        "121": "Unité de réanimation",
        "128": "Unité d'hospitalisation à domicile socle",
        "153": "Unité hospitalière de chirurgie viscérale et digestive",
        "157": "Unité hospitalière de gynécologie et/ou obstétrique",
        "174": "Unité psychiatrique",
        "238": "Unité de médecine polyvalente",
        "249": "Unité de Soins de Longue Durée (USLD)",
        "274": "Unité de dialyse en centre lourd",
        "275": "Unité de dialyse Médicalisée (UDM)",
    },
    TRE_R240: {"01": "Temporaire", "02": "Permanent"},
    ids.TRE_R343: {
        "001": "Hébergement MCO",
        "002": "Hébergement PSY",
        "003": "Hébergement MS",
        "004": "Hébergement SMR",
        "005": "Adresse",
    },
    ids.TRE_R203: {"3": "Opérationnel"},
    ids.TRE_R354: {
        "25": "Identifiant du lieu de réalisation de l'offre connu par l'instance ROR",
        "26": "Identifiant de la zone d'hébergement connu par l'établissement",
    },
    ids.TRE_R355: {"35": "Identifiant fonctionnel de l'offre connu par l'instance ROR"},
    ids.TRE_R329: {"01": "Lit", "02": "Place"},
    ids.TRE_R330: {
        "01": "Installé",
        "02": "Disponible",
        "03": "Occupé",
        "04": "Réservé",
        "05": "Fermé",
        "06": "Supplémentaire",
    },
    ids.TRE_R331: {
        "01": "Courant",
        "02": "Prévisionnel 1 heure",
        "03": "Prévisionnel 24 heures",
        "04": "Prévisionnel 48 heures",
        "05": "Prévisionnel 7 jours",
    },
    ids.TRE_R332: {"01": "Femme", "02": "Homme", "04": "Indéterminé"},
    ids.TRE_R333: {"01": "Réactivable", "02": "Non réactivable", "03": "Indéterminé"},
    ids.TRE_R334: {
        "01": "Mobilisé",
        "02": "Mobilisable sans ressources humaines",
        "03": "Mobilisable avec ressources humaines",
    },
    ids.TRE_R335: {
        "01": "Saisie manuelle",
        "02": "Bed management",
        "03": "Gestion administrative du malade (GAM)",
        "04": "Dossier patient informatisé (DPI)",
    },
    ids.TRE_R336: {"01": "PMIE 1", "02": "Situation sanitaire Exceptionnelle (SSE) (Plan blanc)"},
    ids.TRE_R337: {"01": "Aucune", "02": "Covid+", "03": "Covid-"},
}

# Capacity sub-extensions: url -> code system (docs/ror-fhir-api.md §2).
CAPACITY_SYSTEMS: dict[str, str] = {
    "capacityType": ids.TRE_R329,
    "capacityStatus": ids.TRE_R330,
    "temporalityCapacity": ids.TRE_R331,
    "capacitySourceType": ids.TRE_R335,
    "genderCapacityAvailable": ids.TRE_R332,
    "capacityClosingType": ids.TRE_R333,
    "additionalBedType": ids.TRE_R334,
    "crisisType": ids.TRE_R336,
    "temporaryAssignement": ids.TRE_R337,
}
NATURE_BED, NATURE_PLACE = "01", "02"
STATUS_INSTALLED, STATUS_AVAILABLE, STATUS_OCCUPIED = "01", "02", "03"
STATUS_CLOSED, STATUS_SUPPLEMENTARY = "05", "06"
TEMPORALITY_CURRENT, TEMPORALITY_24H = "01", "03"


@dataclass(frozen=True)
class UnitType:
    """One kind of unit: what its offer and its place say, and the kind of capacity it counts."""

    key: str  # short stable slug used in the ids (`rea-adu`)
    name: str  # unit name (Location.name; the offer's name adds the care mode)
    activity: str  # activité opérationnelle, TRE_R211 (JDV_J17)
    care_mode: str  # mode de prise en charge, TRE_R213 (JDV_J19)
    field: str  # champ d'activité, TRE_R227 (JDV_J20)
    place_function: str  # fonction du lieu, TRE_R343 (JDV_J198)
    age: tuple[int, int]  # patientèle, years
    nature: str | None = NATURE_BED  # TRE_R329 of its capacity; None = the place counts no capacity
    category: str | None = None  # type d'offre, TRE_R244 (JDV_J238)
    reception: str | None = None  # temporalité d'accueil, TRE_R240


def _unit_types(*types: UnitType) -> dict[str, UnitType]:
    return {t.key: t for t in types}


ADULT, CHILD, NEWBORN, ALL_AGES = (18, 120), (0, 18), (0, 1), (0, 120)
UNIT_TYPES: dict[str, UnitType] = _unit_types(
    # SAE REA table (critical care)
    UnitType("rea-adu", "Réanimation adulte", "127", "28", "01", "001", ADULT, category="121"),
    UnitType("rea-ped", "Réanimation pédiatrique", "130", "28", "01", "001", CHILD, category="121"),
    UnitType("si-usic", "Soins intensifs de cardiologie (USIC)", "354", "28", "01", "001", ADULT),
    UnitType("si-unv", "Soins intensifs neuro-vasculaires (USINV)", "356", "28", "01", "001", ADULT),
    UnitType("si-aut", "Autres soins intensifs", "351", "28", "01", "001", ADULT),
    UnitType("si", "Soins intensifs", "351", "28", "01", "001", ADULT),
    UnitType("sc-adu", "Surveillance continue adulte", "373", "28", "01", "001", ADULT),
    UnitType("sc-ped", "Surveillance continue pédiatrique", "391", "28", "01", "001", CHILD),
    # SAE PERINAT table (neonatology)
    UnitType("neonat-rea", "Réanimation néonatale", "128", "28", "01", "001", NEWBORN),
    UnitType("neonat-si", "Soins intensifs néonatals", "369", "28", "01", "001", NEWBORN),
    UnitType("neonat", "Néonatologie", "094", "28", "01", "001", NEWBORN),
    # SAE MCO table
    UnitType("med", "Médecine", "083", "28", "01", "001", ALL_AGES, category="238"),
    UnitType("chi", "Chirurgie", "033", "28", "01", "001", ALL_AGES, category="153"),
    UnitType("obs", "Obstétrique", "100", "28", "01", "001", (12, 55), category="157"),
    # SAE URGENCES2 table
    UnitType("uhcd", "Unité d'hospitalisation de courte durée (UHCD)", "157", "13", "01", "001", ALL_AGES),
    UnitType("uhcd-ped", "UHCD pédiatrique", "249", "13", "01", "001", CHILD),
    # SAE PSY, SSR, USLD tables
    UnitType("psy", "Psychiatrie", "229", "28", "03", "002", ADULT, category="174"),
    UnitType("smr", "Soins médicaux et de réadaptation", "172", "28", "02", "004", ALL_AGES, category="100"),
    UnitType("usld", "Soins de longue durée (USLD)", "333", "28", "01", "001", ADULT, category="249"),
    # generated offers of other establishments (demo), by FINESS category
    UnitType("ehpad", "Hébergement permanent EHPAD", "293", "46", "04", "003", (60, 120), NATURE_PLACE, "21", "02"),
    UnitType("mas", "Hébergement permanent MAS", "293", "46", "04", "003", ADULT, NATURE_PLACE, "40", "02"),
    UnitType("fam", "Hébergement permanent FAM / EAM", "293", "46", "04", "003", ADULT, NATURE_PLACE, "39", "02"),
    UnitType("had", "Hospitalisation à domicile", "083", "31", "01", "005", ALL_AGES, NATURE_PLACE, "128"),
    UnitType("cmp", "Centre médico-psychologique", "229", "32", "03", "005", ADULT, None, "10"),
    UnitType("cds", "Consultations de médecine générale", "437", "32", "05", "005", ALL_AGES, None),
    UnitType("msp", "Maison de santé pluriprofessionnelle", "437", "32", "05", "005", ALL_AGES, None, "99"),
    UnitType("dialyse", "Hémodialyse en centre", "059", "32", "01", "005", ADULT, None, "274"),
    UnitType("udm", "Unité de dialyse médicalisée", "059", "32", "01", "005", ADULT, None, "275"),
)


@dataclass(frozen=True)
class Site:
    """What the units of one establishment copy from it."""

    finess: str  # FINESS ET of the EG
    region: str | None  # INSEE region code (meta.tag)
    commune: str | None  # INSEE commune code (ror-commune-cog)
    commune_name: str | None = None
    address: Mapping[str, Any] | None = None
    position: Mapping[str, Any] | None = None


# --- codings ----------------------------------------------------------------------------------------------------
def coding(system: str, code: str) -> dict[str, str]:
    """A coding with its official label; KeyError when the code is not one this package may emit."""
    return {"system": system, "code": code, "display": LABELS[system][code]}


def concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [coding(system, code)]}


def resource_meta(profile: str, region: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"profile": [profile]}
    if region:
        meta["tag"] = [{"system": REGION_SYSTEM, "code": region}]
    return meta


def fhir_datetime(value: datetime | date | str) -> str:
    """A FHIR dateTime: datetimes (naive = UTC) to the second with their offset, dates as `YYYY-MM-DD`."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.replace(microsecond=0).isoformat()
    return value.isoformat()


# --- identifiers ------------------------------------------------------------------------------------------------
def functional_id(site: Site, unit: UnitType) -> str:
    """`<region>/<FINESS>-<key>`: the ROR-style identifier of the offer and of its place (deterministic)."""
    local = f"{site.finess}-{unit.key}"
    return f"{site.region}/{local}" if site.region else local


def external_sync_id(finess: str, unit_key: str) -> str:
    """idExterneSynchro as capacity feeds address it: `<idNatStruct of the EG>/<ward id>` (`1` + FINESS)."""
    return f"1{finess}/{unit_key.upper()}"


# --- resources --------------------------------------------------------------------------------------------------
def _age(value: int) -> dict[str, Any]:
    return {"value": value, "unit": "a", "system": UCUM, "code": "a"}


def patient_type(low: int, high: int) -> dict[str, Any]:
    return {
        "url": ids.EXT_PATIENT_TYPE,
        "extension": [{"url": "ageRange", "valueRange": {"low": _age(low), "high": _age(high)}}],
    }


def healthcare_service(site: Site, unit: UnitType, *, sensitive: bool = False) -> dict[str, Any]:
    """The offer (offre opérationnelle) of one unit, provided by its EG and delivered at its Location."""
    characteristic = [concept(ids.TRE_R213, unit.care_mode)]
    if unit.reception:
        characteristic.append(concept(TRE_R240, unit.reception))
    res: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "id": ids.unit_service_id(site.finess, unit.key),
        "meta": resource_meta(ids.PROFILE_HEALTHCARESERVICE, site.region),
        "extension": [
            {"url": ids.EXT_SENSITIVE_UNIT, "valueBoolean": sensitive},
            patient_type(*unit.age),
        ],
        "identifier": [{"type": concept(ids.TRE_R355, "35"), "value": functional_id(site, unit)}],
        "active": True,
        "providedBy": {"reference": f"Organization/{ids.eg_id(site.finess)}"},
        "type": [concept(ids.TRE_R227, unit.field)],
        "specialty": [concept(ids.TRE_R211, unit.activity)],
        "location": [{"reference": f"Location/{ids.unit_location_id(site.finess, unit.key)}"}],
        "name": f"{unit.name} - {LABELS[ids.TRE_R213][unit.care_mode]}",
        "characteristic": characteristic,
    }
    if unit.category:
        res["category"] = [concept(ids.TRE_R244, unit.category)]
    return res


def commune_cog(code: str, name: str | None = None) -> dict[str, Any]:
    c: dict[str, str] = {"system": ids.TRE_R13, "code": code}
    if name:
        c["display"] = name
    return {"url": ids.EXT_COMMUNE_COG, "valueCodeableConcept": {"coding": [c]}}


def unit_location(site: Site, unit: UnitType, capacities: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The place of one unit (lieu de réalisation de l'offre): address and position of its EG, capacity list."""
    extension: list[dict[str, Any]] = []
    if site.commune:
        extension.append(commune_cog(site.commune, site.commune_name))
    extension.extend(capacities)
    res: dict[str, Any] = {
        "resourceType": "Location",
        "id": ids.unit_location_id(site.finess, unit.key),
        "meta": resource_meta(ids.PROFILE_LOCATION, site.region),
        "extension": extension,
        "identifier": [
            {"type": concept(ids.TRE_R354, "25"), "value": functional_id(site, unit)},
            {"type": concept(ids.TRE_R354, "26"), "value": external_sync_id(site.finess, unit.key)},
        ],
        "status": "active",
        "operationalStatus": coding(ids.TRE_R203, "3"),
        "name": unit.name,
        "type": [concept(ids.TRE_R343, unit.place_function)],
        "managingOrganization": {"reference": f"Organization/{ids.eg_id(site.finess)}"},
    }
    if site.address:
        res["address"] = dict(site.address)
    if site.position:
        res["position"] = dict(site.position)
    return res


# --- capacity indicators ----------------------------------------------------------------------------------------
def _check(name: str, system: str, code: str | None) -> None:
    if code is not None and code not in LABELS[system]:
        raise ValueError(f"{name} {code!r} is not a code of {system.rsplit('/', 1)[-1]}: {sorted(LABELS[system])}")


def capacity_indicator(
    nature: str,
    status: str,
    temporality: str,
    nb: int,
    source_type: str,
    update_date: datetime | date | str,
    gender: str | None = None,
    closing_type: str | None = None,
    additional_bed_type: str | None = None,
    crisis_type: str | None = None,
    temporary_assignment: str = "01",
) -> dict[str, Any]:
    """One `ror-location-supported-capacity` extension (one indicator), built by the capacity model. ValueError on
    a code missing from LABELS, a negative number or a combination the ROR rejects (capacity/rules.py)."""
    codes = {
        "capacityType": nature,
        "capacityStatus": status,
        "temporalityCapacity": temporality,
        "capacitySourceType": source_type,
        "genderCapacityAvailable": gender,
        "capacityClosingType": closing_type,
        "additionalBedType": additional_bed_type,
        "crisisType": crisis_type,
        "temporaryAssignement": temporary_assignment,
    }
    for url, code in codes.items():
        _check(url, CAPACITY_SYSTEMS[url], code)
    if isinstance(nb, bool) or not isinstance(nb, int) or nb < 0:
        raise ValueError(f"nbCapacity must be an integer >= 0, got {nb!r}")
    indicator = Indicator(
        nature,
        status,
        temporality,
        nb,
        source_type,
        fhir_datetime(update_date),
        temporary_assignment,
        gender=gender,
        closing_type=closing_type,
        additional_bed_type=additional_bed_type,
        crisis_type=crisis_type,
    )
    combination = check_combination(indicator)
    if not combination.ok:
        raise ValueError(combination.reason)
    ext = indicator.to_extension()
    for sub in ext["extension"]:  # official labels, as the NOS publishes them
        if "valueCodeableConcept" in sub:
            code = sub["valueCodeableConcept"]["coding"][0]["code"]
            sub["valueCodeableConcept"] = concept(CAPACITY_SYSTEMS[sub["url"]], code)
    return ext


def _coded(url: str, code: str) -> dict[str, Any]:
    return {"url": url, "valueCodeableConcept": concept(CAPACITY_SYSTEMS[url], code)}


def read_indicator(ext: Mapping[str, Any]) -> dict[str, Any]:
    """A capacity extension as {sub-extension url: code | int | dateTime string}."""
    out: dict[str, Any] = {}
    for sub in ext.get("extension") or []:
        url = sub.get("url")
        if "valueCodeableConcept" in sub:
            codings = sub["valueCodeableConcept"].get("coding") or [{}]
            out[url] = codings[0].get("code")
        elif "valueInteger" in sub:
            out[url] = sub["valueInteger"]
        elif "valueDateTime" in sub:
            out[url] = sub["valueDateTime"]
    return out


def is_capacity(ext: Mapping[str, Any]) -> bool:
    return ext.get("url") == ids.EXT_CAPACITY


def is_installed_current(ext: Mapping[str, Any]) -> bool:
    """The indicator an import owns: installed, current, no temporary assignment."""
    if not is_capacity(ext):
        return False
    ind = read_indicator(ext)
    return (
        ind.get("capacityStatus") == STATUS_INSTALLED
        and ind.get("temporalityCapacity") == TEMPORALITY_CURRENT
        and ind.get("temporaryAssignement", "01") == "01"
    )


def installed_count(location: Mapping[str, Any]) -> tuple[str, int] | None:
    """(nature, installed number) of a Location, or None when it declares no installed current capacity."""
    for ext in location.get("extension") or []:
        if is_installed_current(ext):
            ind = read_indicator(ext)
            return str(ind.get("capacityType")), int(ind.get("nbCapacity", 0))
    return None


def replace_capacities(location: dict[str, Any], capacities: Iterable[dict[str, Any]]) -> None:
    """Put `capacities` after the Location's non-capacity extensions (in place)."""
    kept = [e for e in location.get("extension") or [] if not is_capacity(e)]
    location["extension"] = kept + list(capacities)


# --- establishments as stored ----------------------------------------------------------------------------------
def load_sites(store: ResourceStore, finess: Iterable[str]) -> dict[str, Site]:
    """Sites of the EGs already in the store (EG Organization, address and position of `eg-<FINESS>-adr`)."""
    wanted = sorted(set(finess))
    orgs = existing_contents(store, "Organization", [ids.eg_id(f) for f in wanted])
    places = existing_contents(store, "Location", [ids.eg_address_location_id(f) for f in wanted])
    out: dict[str, Site] = {}
    for f in wanted:
        org, place = orgs.get(ids.eg_id(f)), places.get(ids.eg_address_location_id(f))
        if org is not None:
            out[f] = site_from_resources(f, org, place)
    return out


def site_from_resources(finess: str, org: Mapping[str, Any], place: Mapping[str, Any] | None) -> Site:
    address = (place or {}).get("address") or _first_address(org)
    commune = (commune_code(dict(place)) if place else None) or commune_code(dict(org))
    return Site(
        finess=finess,
        region=region_tag(dict(org)) or (region_tag(dict(place)) if place else None),
        commune=commune,
        commune_name=_commune_display(place) if place else None,
        address=address or None,
        position=(place or {}).get("position") or None,
    )


def existing_contents(store: ResourceStore, res_type: str, res_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Current content of those of the given resources that exist (not deleted), by id."""
    out: dict[str, dict[str, Any]] = {}
    with store.read_conn() as c:
        for start in range(0, len(res_ids), 900):
            chunk = list(res_ids[start : start + 900])
            q = select(resource.c.res_id, resource.c.content).where(
                resource.c.res_type == res_type, resource.c.res_id.in_(chunk), resource.c.deleted.is_(False)
            )
            for row in c.execute(q):
                out[row.res_id] = orjson.loads(row.content)
    return out


def _first_address(org: Mapping[str, Any]) -> dict[str, Any] | None:
    addr = org.get("address")
    if isinstance(addr, list):
        return addr[0] if addr else None
    return addr if isinstance(addr, dict) else None


def _commune_display(place: Mapping[str, Any]) -> str | None:
    for ext in place.get("extension") or []:
        if ext.get("url") == ids.EXT_COMMUNE_COG:
            for c in (ext.get("valueCodeableConcept") or {}).get("coding") or []:
                return c.get("display")
    return None
