"""The offer form (docs/workflow.md, "Formulaires de l'offre"): the posted fields ⇄ the proposed HealthcareService
(the offer) and its Location (the place where it is delivered), and the FHIRPath expressions of the profile
validation (src/ror/validation) ⇄ the form fields the messages are shown next to.

The form only manages some elements; everything else of the resource it starts from (capacity indicators of the
place, other characteristics, the closing period…) is kept as it was. Codes come from NOS pickers: a value
`127 — Réanimation polyvalente`, a bare code or an unambiguous label; the code is put in its TRE system and the
profile validation (bindings: current codes of the JDV only) judges it."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ror.directory import ids
from ror.directory.units import LABELS, TRE_R240, commune_cog, patient_type
from ror.errors import RorError
from ror.geo.service import Geography
from ror.terminology.service import Terminology
from ror.validation.model import Finding
from ror.write.closure import CLOSING_ID

Res = dict[str, Any]
R252 = ids.nos("TRE_R252-TypeHoraire")
R287 = ids.nos("TRE_R287-NatureContact")
R212 = ids.nos("TRE_R212-Equipement")
EXT_EQUIPMENT = ids.SD + "ror-location-equipment"
EXT_HS_CONTACT = ids.SD + "ror-healthcareservice-contact"
EXT_HS_CONTACT_TELECOM = EXT_HS_CONTACT + "-telecom"
EXT_CONTACT_LEVEL = ids.SD + "ror-confidentiality-level"
EXT_TYPE_OF_TIME = ids.SD + "ror-available-time-type-of-time"

DAYS = (
    ("mon", "Lundi"),
    ("tue", "Mardi"),
    ("wed", "Mercredi"),
    ("thu", "Jeudi"),
    ("fri", "Vendredi"),
    ("sat", "Samedi"),
    ("sun", "Dimanche"),
)
# picker / select field -> (value set of its codes, code system written in the resource)
CODED: dict[str, tuple[str, str]] = {
    "activite": ("JDV_J17-ActiviteOperationnelle-ROR", ids.TRE_R211),
    "mode": ("JDV_J19-ModePriseEnCharge-ROR", ids.TRE_R213),
    "champ": ("JDV_J20-ChampActivite-ROR", ids.TRE_R227),
    "categorie": ("JDV_J238-TypeOffre-ROR", ids.TRE_R244),
    "lieu_fonction": ("JDV_J198-FonctionLieu-ROR", ids.TRE_R343),
    "canal": ("JDV_J225-CanalCommunication-ROR", ids.TRE_R200),
    "niveau": ("JDV_J222-NiveauConfidentialite-ROR", ids.TRE_R283),
    "nature": ("JDV_J221-NatureContact-ROR", R287),
    "equipement": ("JDV_J18-EquipementSpecifique-ROR", R212),
}
# value sets the suggestion endpoint serves (short names of the pickers)
PICKERS = {"J17": "activite", "J19": "mode", "J238": "categorie", "J18": "equipement"}
RECEPTION = LABELS[TRE_R240]  # temporalité d'accueil (01 Temporaire, 02 Permanent)
MIN_ROWS = 2  # blank rows offered after the filled ones (contacts, closures, equipment)
_CODE = re.compile(r"^\s*([0-9A-Za-z]{1,6})(?:\s*[—-]\s+.*)?\s*$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass
class Built:
    """What a form gives: the offer, its place, French errors per field (nothing is saved when there are some),
    and the form row of each contact / equipment written (to put validation messages on the right row)."""

    hs: Res
    loc: Res
    errors: dict[str, str] = field(default_factory=dict)
    contact_rows: list[int] = field(default_factory=list)
    equipment_rows: list[int] = field(default_factory=list)


# --- reading a resource into form values --------------------------------------------------------------------------
def _code_of(items: Any, system: str) -> str:
    for cc in items if isinstance(items, list) else [items] if items else []:
        for c in (cc or {}).get("coding") or [cc or {}]:
            if c.get("system") == system and c.get("code"):
                return str(c["code"])
    return ""


def _picked(terminology: Terminology | None, fieldname: str, code: str) -> str:
    if not code:
        return ""
    if terminology is not None:
        try:
            return f"{code} — {terminology.display(CODED[fieldname][1], code)}"
        except RorError:
            pass
    return code


def _ext(res: Mapping[str, Any], url: str) -> list[Res]:
    return [e for e in res.get("extension") or [] if isinstance(e, dict) and e.get("url") == url]


def _sub_code(ext: Mapping[str, Any], url: str) -> str:
    for sub in _ext(ext, url):
        for c in (sub.get("valueCodeableConcept") or {}).get("coding") or []:
            if c.get("code"):
                return str(c["code"])
    return ""


def values_from(hs: Res, loc: Res | None, terminology: Terminology | None = None) -> dict[str, str]:
    """The form values showing `hs` and its place `loc`."""
    v: dict[str, str] = {"nom": str(hs.get("name") or "")}
    for name, element in (("activite", "specialty"), ("mode", "characteristic"), ("categorie", "category")):
        v[name] = _picked(terminology, name, _code_of(hs.get(element), CODED[name][1]))
    v["champ"] = _code_of(hs.get("type"), ids.TRE_R227)
    v["accueil"] = _code_of(hs.get("characteristic"), TRE_R240)
    sensitive = _ext(hs, ids.EXT_SENSITIVE_UNIT)
    v["sensible"] = "1" if sensitive and sensitive[0].get("valueBoolean") is True else ""
    for pt in _ext(hs, ids.EXT_PATIENT_TYPE):
        for sub in _ext(pt, "ageRange"):
            rng = sub.get("valueRange") or {}
            for bound, name in (("low", "age_min"), ("high", "age_max")):
                value = (rng.get(bound) or {}).get("value")
                v[name] = "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    times = [t for t in hs.get("availableTime") or [] if isinstance(t, dict)]
    open_days = {d for t in times for d in t.get("daysOfWeek") or []}
    if times and open_days == {d for d, _ in DAYS} and all(t.get("allDay") for t in times):
        v["h247"] = "1"
    for t in times:
        for d in t.get("daysOfWeek") or []:
            v[f"j-{d}"] = "1"
            v[f"debut-{d}"] = "00:00" if t.get("allDay") else str(t.get("availableStartTime") or "")[:5]
            v[f"fin-{d}"] = "23:59" if t.get("allDay") else str(t.get("availableEndTime") or "")[:5]
    closures = [n for n in hs.get("notAvailable") or [] if isinstance(n, dict) and n.get("id") != CLOSING_ID]
    for i, n in enumerate(closures):
        v[f"fe-{i}-motif"] = str(n.get("description") or "")
        v[f"fe-{i}-debut"] = str((n.get("during") or {}).get("start") or "")[:10]
        v[f"fe-{i}-fin"] = str((n.get("during") or {}).get("end") or "")[:10]
    for i, contact in enumerate(_ext(hs, EXT_HS_CONTACT)):
        v[f"ct-{i}-nature"] = _sub_code(contact, "purposeContact")
        v[f"ct-{i}-niveau"] = _sub_code(contact, EXT_CONTACT_LEVEL)
        for tel in _ext(contact, EXT_HS_CONTACT_TELECOM)[:1]:
            v[f"ct-{i}-canal"] = _sub_code(tel, ids.EXT_TELECOM_CHANNEL)
            v[f"ct-{i}-niveau"] = _sub_code(tel, ids.EXT_TELECOM_CONFIDENTIALITY) or v[f"ct-{i}-niveau"]
            v[f"ct-{i}-valeur"] = next((str(s.get("valueString") or "") for s in _ext(tel, "telecomAddress")), "")
    loc = loc or {}
    v["lieu_nom"] = str(loc.get("name") or "")
    v["lieu_fonction"] = _code_of(loc.get("type"), ids.TRE_R343)
    address = loc.get("address") or {}
    v["lieu_adresse"] = ", ".join(address.get("line") or [])
    v["lieu_cp"] = str(address.get("postalCode") or "")
    for ext in _ext(loc, ids.EXT_COMMUNE_COG):
        for c in (ext.get("valueCodeableConcept") or {}).get("coding") or []:
            v["lieu_commune"] = f"{c.get('code')} — {c.get('display') or address.get('city') or ''}".rstrip(" —")
    for ident in loc.get("identifier") or []:
        if "26" in {c.get("code") for c in (ident.get("type") or {}).get("coding") or []}:
            v["lieu_id_externe"] = str(ident.get("value") or "")
    for i, eq in enumerate(_ext(loc, EXT_EQUIPMENT)):
        v[f"eq-{i}-type"] = _picked(terminology, "equipement", _sub_code(eq, "equipmentType"))
        v[f"eq-{i}-nombre"] = next((str(s.get("valueInteger")) for s in _ext(eq, "nbInService")), "")
    return v


def rows(values: Mapping[str, str], prefix: str) -> int:
    """How many rows of a repeated group (`ct`, `fe`, `eq`) to show: the filled ones plus blank ones."""
    used = [int(m.group(1)) for k in values if (m := re.match(rf"^{prefix}-(\d+)-", k)) and values[k]]
    return max(used, default=-1) + 1 + MIN_ROWS


def form_values(form: Mapping[str, Any]) -> dict[str, str]:
    """The posted form as plain strings (the CSRF token and the buttons left out)."""
    return {str(k): str(v).strip() for k, v in form.items() if k not in ("csrf", "action") and isinstance(v, str)}


# --- building resources from the form -----------------------------------------------------------------------------
def _coding(system: str, code: str, display: str | None) -> dict[str, str]:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


class _Builder:
    def __init__(self, values: Mapping[str, str], terminology: Terminology, geography: Geography) -> None:
        self.v = values
        self.terminology = terminology
        self.geography = geography
        self.errors: dict[str, str] = {}

    def get(self, name: str) -> str:
        return (self.v.get(name) or "").strip()

    def code(self, name: str, kind: str | None = None, *, required: str = "") -> dict[str, str] | None:
        """The coding picked in field `name` (codes of the value set of `kind`, default: the field itself)."""
        text = self.get(name)
        if not text:
            if required:
                self.errors[name] = required
            return None
        value_set, system = CODED[kind or name]
        m = _CODE.match(text)
        code = m.group(1) if m else None
        if code is None:  # a label typed without choosing: accept it when it designates one current code
            found = self.terminology.expand(value_set, text=text, limit=2)
            if len(found) != 1:
                self.errors[name] = f"« {text} » : choisissez une valeur dans la liste proposée."
                return None
            code = found[0].code
        try:
            display: str | None = self.terminology.validate(value_set, system, code).display
        except RorError:
            display = None  # not a current code of the JDV: the profile validation says so next to the field
        return _coding(system, code, display)

    def integer(self, name: str, low: int, high: int, message: str, *, required: bool = True) -> int | None:
        text = self.get(name)
        if not text:
            if required:
                self.errors[name] = message
            return None
        if not text.isdigit() or not low <= int(text) <= high:
            self.errors[name] = message
            return None
        return int(text)

    def day(self, name: str) -> str | None:
        text = self.get(name)
        if not text:
            return None
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            self.errors[name] = "Date attendue au format AAAA-MM-JJ."
            return None

    def time(self, name: str) -> str | None:
        text = self.get(name)
        if not _TIME.match(text):
            self.errors[name] = "Heure attendue au format HH:MM (00:00 à 23:59)."
            return None
        return text + ":00"


def _available_time(b: _Builder) -> list[Res]:
    type_of_time = {
        "url": EXT_TYPE_OF_TIME,
        "valueCodeableConcept": {"coding": [_coding(R252, "01", "Horaire d'ouverture")]},
    }
    if b.get("h247"):
        return [{"extension": [type_of_time], "daysOfWeek": [d for d, _ in DAYS], "allDay": True}]
    groups: dict[tuple[str, str], list[str]] = {}
    for d, label in DAYS:
        if not b.get(f"j-{d}"):
            continue
        start, end = b.time(f"debut-{d}"), b.time(f"fin-{d}")
        if start and end and start >= end:
            b.errors[f"fin-{d}"] = f"{label} : l'heure de fermeture doit suivre l'heure d'ouverture."
        if start and end:
            groups.setdefault((start, end), []).append(d)
    out: list[Res] = []
    for (start, end), days in groups.items():
        slot: Res = {"extension": [type_of_time], "daysOfWeek": days}
        if (start, end) == ("00:00:00", "23:59:00"):
            slot["allDay"] = True
        else:
            slot["availableStartTime"], slot["availableEndTime"] = start, end
        out.append(slot)
    return out


def _closures(b: _Builder) -> list[Res]:
    out = []
    for i in range(rows(b.v, "fe")):
        reason, start, end = b.get(f"fe-{i}-motif"), b.day(f"fe-{i}-debut"), b.day(f"fe-{i}-fin")
        if not (reason or start or end):
            continue
        if not start:
            b.errors.setdefault(f"fe-{i}-debut", "Date de début de la fermeture obligatoire.")
            continue
        if end and end < start:
            b.errors[f"fe-{i}-fin"] = "La fin de la fermeture doit suivre son début."
        during = {"start": start, **({"end": end} if end else {})}
        out.append({"id": f"fermeture-{i + 1}", "description": reason or "Fermeture exceptionnelle", "during": during})
    return out


def _contacts(b: _Builder) -> tuple[list[Res], list[int]]:
    out, used = [], []
    for i in range(rows(b.v, "ct")):
        value = b.get(f"ct-{i}-valeur")
        if not (value or b.get(f"ct-{i}-nature")):
            continue
        if not value:
            b.errors[f"ct-{i}-valeur"] = "Numéro ou adresse du contact obligatoire."
            continue
        channel = b.code(f"ct-{i}-canal", "canal", required="Canal de communication obligatoire.")
        level = b.code(f"ct-{i}-niveau", "niveau", required="Niveau de confidentialité obligatoire.")
        purpose = b.code(f"ct-{i}-nature", "nature")
        if channel is None or level is None:
            continue
        telecom = {
            "url": EXT_HS_CONTACT_TELECOM,
            "extension": [
                {"url": ids.EXT_TELECOM_CHANNEL, "valueCodeableConcept": {"coding": [channel]}},
                {"url": ids.EXT_TELECOM_CONFIDENTIALITY, "valueCodeableConcept": {"coding": [level]}},
                {"url": "telecomAddress", "valueString": value},
            ],
        }
        contact: Res = {"url": EXT_HS_CONTACT, "extension": []}
        if purpose:
            contact["extension"].append({"url": "purposeContact", "valueCodeableConcept": {"coding": [purpose]}})
        contact["extension"] += [
            {"url": EXT_CONTACT_LEVEL, "valueCodeableConcept": {"coding": [level]}},
            telecom,
        ]
        out.append(contact)
        used.append(i)
    return out, used


def _equipment(b: _Builder) -> tuple[list[Res], list[int]]:
    out, used = [], []
    for i in range(rows(b.v, "eq")):
        if not (b.get(f"eq-{i}-type") or b.get(f"eq-{i}-nombre")):
            continue
        kind = b.code(f"eq-{i}-type", "equipement", required="Type d'équipement obligatoire.")
        number = b.integer(f"eq-{i}-nombre", 0, 9999, "Nombre en service : un entier de 0 à 9999.", required=False)
        if kind is None:
            continue
        ext: Res = {
            "url": EXT_EQUIPMENT,
            "extension": [{"url": "equipmentType", "valueCodeableConcept": {"coding": [kind]}}],
        }
        if number is not None:
            ext["extension"].append({"url": "nbInService", "valueInteger": number})
        out.append(ext)
        used.append(i)
    return out, used


def _replace_coding(items: list[Res], system: str, coding: dict[str, str] | None) -> list[Res]:
    kept = [cc for cc in items if system not in {c.get("system") for c in (cc or {}).get("coding") or []}]
    return kept + ([{"coding": [coding]}] if coding else [])


def new_identifier(region: str | None) -> str:
    local = uuid.uuid4().hex[:10].upper()
    return f"{region}/{local}" if region else local


def build(
    values: Mapping[str, str],
    *,
    finess: str,
    region: str | None,
    terminology: Terminology,
    geography: Geography,
    base_hs: Res | None = None,
    base_loc: Res | None = None,
    location_id: str | None = None,
) -> Built:
    """The offer and its place from the form, on top of `base_hs` / `base_loc` (what they were) or new ones.
    `location_id` is the place the offer is delivered at (kept from `base_hs` when it has one)."""
    b = _Builder(values, terminology, geography)
    hs: Res = copy.deepcopy(base_hs) if base_hs else {"resourceType": "HealthcareService", "active": True}
    loc: Res = copy.deepcopy(base_loc) if base_loc else {"resourceType": "Location"}
    org_ref = {"reference": f"Organization/{ids.eg_id(finess)}"}

    # the offer
    name = b.get("nom")
    if not name:
        b.errors["nom"] = "Nom de l'offre obligatoire."
    hs["name"] = name
    hs.setdefault("meta", {"profile": [ids.PROFILE_HEALTHCARESERVICE]})
    hs["providedBy"] = org_ref
    if not hs.get("identifier"):
        hs["identifier"] = [
            {
                "type": {"coding": [_coding(ids.TRE_R355, "35", LABELS[ids.TRE_R355]["35"])]},
                "value": new_identifier(region),
            }
        ]
    activity = b.code("activite", required="Activité opérationnelle obligatoire : choisissez-la dans la liste.")
    hs["specialty"] = _replace_coding(hs.get("specialty") or [], ids.TRE_R211, activity)
    characteristic = _replace_coding(hs.get("characteristic") or [], ids.TRE_R213, b.code("mode"))
    reception = b.get("accueil")
    if reception and reception not in RECEPTION:
        b.errors["accueil"] = "Temporalité d'accueil inconnue."
        reception = ""
    characteristic = _replace_coding(
        characteristic, TRE_R240, _coding(TRE_R240, reception, RECEPTION[reception]) if reception else None
    )
    hs["characteristic"] = characteristic
    field_ = b.code("champ")
    hs["type"] = [{"coding": [field_]}] if field_ else []
    category = b.code("categorie")
    if category:
        hs["category"] = [{"coding": [category]}]
    else:
        hs.pop("category", None)
    low = b.integer("age_min", 0, 150, "Âge minimum : un nombre d'années de 0 à 150.")
    high = b.integer("age_max", 0, 150, "Âge maximum : un nombre d'années de 0 à 150.")
    contacts, contact_rows = _contacts(b)
    others = [
        e
        for e in hs.get("extension") or []
        if e.get("url") not in (ids.EXT_SENSITIVE_UNIT, ids.EXT_PATIENT_TYPE, EXT_HS_CONTACT)
    ]
    patient: list[Res] = []
    if low is not None and high is not None:
        pt = patient_type(low, high)
        for old in _ext(hs, ids.EXT_PATIENT_TYPE):  # keep supportedPatientInfo and the like
            pt["extension"] += [s for s in old.get("extension") or [] if s.get("url") != "ageRange"]
        patient = [pt]
    hs["extension"] = [
        {"url": ids.EXT_SENSITIVE_UNIT, "valueBoolean": bool(b.get("sensible"))},
        *patient,
        *others,
        *contacts,
    ]
    times = _available_time(b)
    if times:
        hs["availableTime"] = times
    else:
        hs.pop("availableTime", None)
    closing = [n for n in hs.get("notAvailable") or [] if isinstance(n, dict) and n.get("id") == CLOSING_ID]
    not_available = _closures(b) + closing
    if not_available:
        hs["notAvailable"] = not_available
    else:
        hs.pop("notAvailable", None)

    # the place
    place_name = b.get("lieu_nom") or name
    loc["name"] = place_name
    loc.setdefault("meta", {"profile": [ids.PROFILE_LOCATION]})
    loc.setdefault("status", "active")
    loc.setdefault("operationalStatus", _coding(ids.TRE_R203, "3", LABELS[ids.TRE_R203]["3"]))
    loc["managingOrganization"] = org_ref
    function = b.code("lieu_fonction")
    loc["type"] = [{"coding": [function]}] if function else []
    if not loc["type"]:
        loc.pop("type")
    commune_text = b.get("lieu_commune")
    commune = None
    if not commune_text:
        b.errors["lieu_commune"] = "Commune du lieu obligatoire (nom ou code INSEE)."
    else:
        m = re.search(r"\b(\d[0-9AB]\d{3})\b", commune_text)
        commune = geography.commune(m.group(1)) if m else None
        if commune is None:
            b.errors["lieu_commune"] = f"Commune introuvable : « {commune_text} ». Choisissez-la dans la liste."
    old_commune = next(
        (
            c.get("code")
            for e in _ext(loc, ids.EXT_COMMUNE_COG)
            for c in (e.get("valueCodeableConcept") or {}).get("coding") or []
        ),
        None,
    )
    loc_ext = [e for e in loc.get("extension") or [] if e.get("url") not in (ids.EXT_COMMUNE_COG, EXT_EQUIPMENT)]
    equipment, equipment_rows = _equipment(b)
    address = dict(loc.get("address") or {})
    line = b.get("lieu_adresse")
    if [line] != (address.get("line") or [None])[:1] or len(address.get("line") or []) > 1:
        address.pop("_line", None)
        if line:
            address["line"] = [line]
        else:
            address.pop("line", None)
    if b.get("lieu_cp"):
        address["postalCode"] = b.get("lieu_cp")
    else:
        address.pop("postalCode", None)
    if commune is not None:
        loc_ext.insert(0, commune_cog(commune.code, commune.name))
        address["city"] = commune.name
        if commune.code != old_commune and commune.centroid is not None:
            loc["position"] = {"latitude": commune.centroid[0], "longitude": commune.centroid[1]}
    if address:
        loc["address"] = address
    loc["extension"] = loc_ext + equipment
    identifiers = [
        i
        for i in loc.get("identifier") or []
        if "26" not in {c.get("code") for c in (i.get("type") or {}).get("coding") or []}
    ]
    if not any("25" in {c.get("code") for c in (i.get("type") or {}).get("coding") or []} for i in identifiers):
        identifiers.insert(
            0,
            {
                "type": {"coding": [_coding(ids.TRE_R354, "25", LABELS[ids.TRE_R354]["25"])]},
                "value": new_identifier(region),
            },
        )
    if b.get("lieu_id_externe"):
        identifiers.append(
            {
                "type": {"coding": [_coding(ids.TRE_R354, "26", LABELS[ids.TRE_R354]["26"])]},
                "value": b.get("lieu_id_externe"),
            }
        )
    loc["identifier"] = identifiers

    if location_id and not any(str(r.get("reference")) == f"Location/{location_id}" for r in hs.get("location") or []):
        hs["location"] = [{"reference": f"Location/{location_id}"}, *(hs.get("location") or [])]
    return Built(hs, loc, b.errors, contact_rows, equipment_rows)


# --- validation messages next to the fields -----------------------------------------------------------------------
FRENCH = {
    "hs-type": "Champ d'activité obligatoire.",
    "hs-type-jdv": "Champ d'activité hors du jeu de valeurs.",
    "hs-specialty": "Activité opérationnelle obligatoire.",
    "hs-operational-activity": "Une et une seule activité opérationnelle.",
    "hs-operational-activity-jdv": "Activité hors du jeu de valeurs JDV_J17 ou périmée : choisissez-la dans la liste.",
    "hs-characteristic": "Mode de prise en charge attendu.",
    "hs-care-mode-present": "Mode de prise en charge attendu par le profil ROR.",
    "hs-care-mode-jdv": "Mode de prise en charge hors du jeu de valeurs JDV_J19 ou périmé.",
    "hs-category-jdv": "Type d'offre hors du jeu de valeurs JDV_J238 ou périmé.",
    "hs-patient-type": "Tranche d'âge de la patientèle obligatoire.",
    "hs-age-range": "Tranche d'âge de la patientèle obligatoire.",
    "hs-age-range-low": "Âge minimum obligatoire.",
    "hs-age-range-high": "Âge maximum obligatoire.",
    "hs-age-range-values": "L'âge minimum doit être inférieur ou égal à l'âge maximum.",
    "hs-available-time": "Horaires : le profil ROR attend une seule plage (plusieurs plages sont acceptées).",
    "loc-commune-cog": "Commune du lieu obligatoire.",
    "loc-commune-cog-known": "Commune inconnue du Code officiel géographique.",
    "loc-type-jdv": "Fonction du lieu hors du jeu de valeurs JDV_J198.",
    "identifier-unique": "Identifiant déjà utilisé par une autre ressource de l'établissement.",
    "hs-telecom-channel-jdv": "Canal de communication hors du jeu de valeurs.",
    "hs-contact-telecom": "Contact incomplet : canal, niveau de confidentialité et valeur obligatoires.",
}
# (pattern of the FHIRPath expression, field); the first match wins
_FIELDS: tuple[tuple[str, str], ...] = (
    (r"^HealthcareService\.location", "lieu_nom"),
    (re.escape(ids.TRE_R211), "activite"),
    (r"^HealthcareService\.specialty", "activite"),
    (re.escape(ids.TRE_R213), "mode"),
    (re.escape(TRE_R240), "accueil"),
    (r"^HealthcareService\.characteristic", "mode"),
    (r"^HealthcareService\.type", "champ"),
    (r"^HealthcareService\.category", "categorie"),
    (r"valueRange\.high", "age_max"),
    (r"patient-type", "age_min"),
    (r"sensitive-unit", "sensible"),
    (r"^HealthcareService\.availableTime", "h247"),
    (r"^HealthcareService\.notAvailable", "fe-0-debut"),
    (r"^HealthcareService\.name", "nom"),
    (r"^Location\.extension\('[^']*ror-commune-cog'\)", "lieu_commune"),
    (r"^Location\.type", "lieu_fonction"),
    (r"^Location\.address", "lieu_adresse"),
    (r"^Location\.name", "lieu_nom"),
)
_CONTACT_ROW = re.compile(r"ror-healthcareservice-contact'\)\[(\d+)\]")
_IDENT_ROW = re.compile(r"^Location\.identifier\[(\d+)\]")


def field_of(finding: Finding, built: Built) -> str:
    """The form field a validation finding is about (`_general` when none)."""
    expr = finding.expression
    m = _CONTACT_ROW.search(expr)
    if m and int(m.group(1)) < len(built.contact_rows):
        return f"ct-{built.contact_rows[int(m.group(1))]}-valeur"
    if "ror-healthcareservice-contact" in expr and built.contact_rows:
        return f"ct-{built.contact_rows[0]}-valeur"
    m = _IDENT_ROW.match(expr)
    if m:
        idents = built.loc.get("identifier") or []
        i = int(m.group(1))
        if i < len(idents) and "26" in {c.get("code") for c in (idents[i].get("type") or {}).get("coding") or []}:
            return "lieu_id_externe"
        return "_general"
    for pattern, name in _FIELDS:
        if re.search(pattern, expr):
            return name
    return "_general"


def message_of(finding: Finding) -> str:
    french = FRENCH.get(finding.rule)
    return f"{french} ({finding.message})" if french else finding.message


def place_findings(findings: list[Finding], built: Built) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(errors, warnings) per field from validation findings of the offer and of its place."""
    errors: dict[str, list[str]] = {}
    warnings: dict[str, list[str]] = {}
    for f in findings:
        target = errors if f.severity in ("error", "fatal") else warnings
        if f.severity == "information":
            continue
        target.setdefault(field_of(f, built), []).append(message_of(f))
    return errors, warnings
