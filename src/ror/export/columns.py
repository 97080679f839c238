"""The columns of the open-data CSV files: one declaration per column (name, type, description, FHIR source and
how the value is read from the resource), used both to write the files and to write their data dictionary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ror.directory import ids
from ror.store.meta import commune_code, region_tag

Getter = Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # texte | code | nombre | date | booléen | liste
    description: str
    source: str  # FHIR element the value comes from
    get: Getter


# --- value helpers ----------------------------------------------------------------------------------------------
def _codings(concepts: Any, system: str | None = None) -> list[dict[str, Any]]:
    if isinstance(concepts, dict):
        concepts = [concepts]
    out = []
    for cc in concepts or []:
        for c in cc.get("coding") or []:
            if system is None or c.get("system") == system:
                out.append(c)
    return out


def _codes(key: str, system: str | None = None) -> Getter:
    return lambda r: "|".join(str(c.get("code", "")) for c in _codings(r.get(key), system))


def _labels(key: str, system: str | None = None) -> Getter:
    return lambda r: "|".join(str(c.get("display", "")) for c in _codings(r.get(key), system))


def _identifier(system: str) -> Getter:
    return lambda r: next((str(i.get("value", "")) for i in r.get("identifier") or [] if i.get("system") == system), "")


def _ref_id(key: str) -> Getter:
    def get(r: dict[str, Any]) -> str:
        refs = r.get(key)
        refs = refs if isinstance(refs, list) else [refs] if refs else []
        return "|".join(str(x.get("reference", "")).rsplit("/", 1)[-1] for x in refs)

    return get


def _address(r: dict[str, Any]) -> dict[str, Any]:
    a = r.get("address")
    if isinstance(a, list):
        a = a[0] if a else None
    return a or {}


def _line(r: dict[str, Any]) -> str:
    return " ".join(str(x) for x in _address(r).get("line") or [])


def _phones(r: dict[str, Any]) -> str:
    return "|".join(str(t.get("value", "")) for t in r.get("telecom") or [] if t.get("system") == "phone")


def _emails(r: dict[str, Any]) -> str:
    return "|".join(str(t.get("value", "")) for t in r.get("telecom") or [] if t.get("system") == "email")


def _bool(key: str) -> Getter:
    return lambda r: "" if r.get(key) is None else ("oui" if r.get(key) else "non")


def _age(bound: str) -> Getter:
    def get(r: dict[str, Any]) -> str:
        for e in r.get("extension") or []:
            if e.get("url") == ids.EXT_PATIENT_TYPE:
                for sub in e.get("extension") or []:
                    if sub.get("url") == "ageRange":
                        v = ((sub.get("valueRange") or {}).get(bound) or {}).get("value")
                        return "" if v is None else str(v)
        return ""

    return get


def _position(axis: str) -> Getter:
    return lambda r: "" if (r.get("position") or {}).get(axis) is None else str(r["position"][axis])


def _sensitive(r: dict[str, Any]) -> str:
    return next(
        (
            "oui" if e.get("valueBoolean") else "non"
            for e in r.get("extension") or []
            if e.get("url") == ids.EXT_SENSITIVE_UNIT
        ),
        "",
    )


def kind(r: dict[str, Any]) -> str:
    """EJ (no parent), EG (a FINESS category, attached to its EJ), else OI (internal organisation, not exported)."""
    if _codings(r.get("type"), ids.TRE_R66):
        return "EG"
    if not r.get("partOf"):
        return "EJ"
    return "OI"


ID = Column("id", "texte", "identifiant logique de la ressource dans ce répertoire", "id", lambda r: str(r["id"]))
UPDATED = Column(
    "date_maj",
    "date",
    "dernière mise à jour (instant UTC)",
    "meta.lastUpdated",
    lambda r: str(r["meta"].get("lastUpdated", "")),
)
REGION = Column("region", "code", "région (code INSEE, TRE_R30)", "meta.tag (TRE_R30)", lambda r: region_tag(r) or "")
COMMUNE = Column(
    "code_commune",
    "code",
    "commune (code INSEE COG)",
    "extension ror-commune-cog / address insee-code",
    lambda r: commune_code(r) or "",
)
POSTAL = Column(
    "code_postal", "code", "code postal", "address.postalCode", lambda r: str(_address(r).get("postalCode", ""))
)
CITY = Column(
    "ville", "texte", "ville (libellé de l'adresse)", "address.city", lambda r: str(_address(r).get("city", ""))
)
LINE = Column("adresse", "texte", "voie (lignes d'adresse jointes par un espace)", "address.line", _line)

COLUMNS: dict[str, list[Column]] = {
    "structures": [
        Column(
            "type_structure",
            "code",
            "EJ (entité juridique) ou EG (établissement géographique)",
            "type (TRE_R66), partOf",
            kind,
        ),
        ID,
        Column("finess", "code", "numéro FINESS", "identifier (http://finess.esante.gouv.fr)", _identifier(ids.FINESS)),
        Column(
            "id_nat_struct",
            "code",
            "identifiant national de structure",
            "identifier (urn:oid:1.2.250.1.71.4.2.2)",
            _identifier(ids.ID_NAT_STRUCT),
        ),
        Column("nom", "texte", "raison sociale", "name", lambda r: str(r.get("name", ""))),
        Column(
            "categorie_code",
            "code",
            "catégorie d'établissement (TRE_R66), EG seulement",
            "type (TRE_R66)",
            _codes("type", ids.TRE_R66),
        ),
        Column(
            "categorie_libelle", "texte", "libellé de la catégorie", "type.coding.display", _labels("type", ids.TRE_R66)
        ),
        Column("rattachement", "texte", "id de l'entité juridique de rattachement (EG)", "partOf", _ref_id("partOf")),
        LINE,
        POSTAL,
        CITY,
        COMMUNE,
        REGION,
        Column(
            "telephones",
            "liste",
            "téléphones publics (niveau de confidentialité 1), séparés par |",
            "telecom (phone)",
            _phones,
        ),
        Column("courriels", "liste", "adresses électroniques publiques, séparées par |", "telecom (email)", _emails),
        Column("actif", "booléen", "oui / non", "active", _bool("active")),
        UPDATED,
    ],
    "offres": [
        ID,
        Column(
            "identifiant_offre",
            "texte",
            "identifiant fonctionnel de l'offre",
            "identifier.value",
            lambda r: "|".join(str(i.get("value", "")) for i in r.get("identifier") or []),
        ),
        Column("nom", "texte", "nom de l'offre", "name", lambda r: str(r.get("name", ""))),
        Column("structure", "texte", "id de la structure qui porte l'offre", "providedBy", _ref_id("providedBy")),
        Column(
            "champ_activite", "code", "champ d'activité (TRE_R227)", "type (TRE_R227)", _codes("type", ids.TRE_R227)
        ),
        Column(
            "champ_activite_libelle",
            "texte",
            "libellé du champ d'activité",
            "type.coding.display",
            _labels("type", ids.TRE_R227),
        ),
        Column(
            "activites",
            "liste",
            "activités opérationnelles (TRE_R211), séparées par |",
            "specialty (TRE_R211)",
            _codes("specialty", ids.TRE_R211),
        ),
        Column(
            "activites_libelles",
            "liste",
            "libellés des activités",
            "specialty.coding.display",
            _labels("specialty", ids.TRE_R211),
        ),
        Column(
            "modes_prise_en_charge",
            "liste",
            "modes de prise en charge (TRE_R213)",
            "characteristic (TRE_R213)",
            _codes("characteristic", ids.TRE_R213),
        ),
        Column(
            "categorie_organisation",
            "code",
            "catégorie d'organisation (TRE_R244)",
            "category (TRE_R244)",
            _codes("category", ids.TRE_R244),
        ),
        Column(
            "age_min", "nombre", "âge minimal des patients (années)", "extension patient-type.ageRange.low", _age("low")
        ),
        Column(
            "age_max",
            "nombre",
            "âge maximal des patients (années)",
            "extension patient-type.ageRange.high",
            _age("high"),
        ),
        Column(
            "unite_sensible",
            "booléen",
            "toujours non ici : les unités sensibles ne sont pas publiées",
            "extension sensitive-unit",
            _sensitive,
        ),
        Column("lieux", "liste", "id des lieux de réalisation, séparés par |", "location", _ref_id("location")),
        REGION,
        Column("actif", "booléen", "oui / non", "active", _bool("active")),
        UPDATED,
    ],
    "lieux": [
        ID,
        Column("nom", "texte", "nom du lieu", "name", lambda r: str(r.get("name", ""))),
        Column("statut", "code", "active, suspended, inactive", "status", lambda r: str(r.get("status", ""))),
        Column("fonction", "code", "fonction du lieu (TRE_R343)", "type (TRE_R343)", _codes("type", ids.TRE_R343)),
        Column(
            "structure",
            "texte",
            "id de la structure gestionnaire",
            "managingOrganization",
            _ref_id("managingOrganization"),
        ),
        LINE,
        POSTAL,
        CITY,
        COMMUNE,
        REGION,
        Column("latitude", "nombre", "latitude WGS84", "position.latitude", _position("latitude")),
        Column("longitude", "nombre", "longitude WGS84", "position.longitude", _position("longitude")),
        Column("telephones", "liste", "téléphones publics (niveau 1), séparés par |", "telecom (phone)", _phones),
        UPDATED,
    ],
}
FILE_TYPES = {"structures": "Organization", "offres": "HealthcareService", "lieux": "Location"}
DESCRIPTIONS = {
    "structures": "Structures : entités juridiques (EJ) et établissements géographiques (EG)",
    "offres": "Offres opérationnelles (unités, services)",
    "lieux": "Lieux de réalisation de l'offre et adresses des établissements",
    "dictionnaire": "Dictionnaire des données : une ligne par colonne des fichiers",
}
