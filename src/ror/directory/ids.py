"""Identifier systems, NOS code systems and the deterministic logical ids of imported resources.

Imported resources get ids derived from their source identifier so that a re-import finds and updates the same
resource (idempotency) without a lookup table:
  EJ Organization  `ej-<FINESS EJ>`        EG Organization  `eg-<FINESS ET>`
  EG address Location `eg-<FINESS ET>-adr`
  unit (offre) HealthcareService `hs-<FINESS ET>-<unit key>`, its Location `loc-<FINESS ET>-<unit key>`"""

from __future__ import annotations

IG = "https://interop.esante.gouv.fr/ig/fhir/ror"
SD = IG + "/StructureDefinition/"


def nos(name: str) -> str:
    """`TRE_R211-ActiviteOperationnelle` -> its canonical CodeSystem URL (same pattern for JDV_)."""
    return f"https://mos.esante.gouv.fr/NOS/{name}/FHIR/{name.replace('_', '-', 1)}"


# identifier systems (docs/ror-fhir-api.md §5)
ID_NAT_STRUCT = "urn:oid:1.2.250.1.71.4.2.2"
FINESS = "http://finess.esante.gouv.fr"
SIRENE = "http://sirene.fr"
TRE_G07 = nos("TRE_G07-TypeIdentifiantStructure")  # 40 idNatSt, 1 FINESS, 2 SIREN, 3 SIRET
TRE_R354 = nos("TRE_R354-TypeIdentifiantRessourceOperationnelle")  # 25 idLocation, 26 idExterneSynchro
TRE_R355 = nos("TRE_R355-TypeIdentifiantOffre")  # 35 identifiant fonctionnel de l'offre

# code systems used when building resources
TRE_R13 = nos("TRE_R13-CommuneOM")
TRE_R30 = nos("TRE_R30-RegionOM")
TRE_R66 = nos("TRE_R66-CategorieEtablissement")
TRE_R65 = nos("TRE_R65-AgregatCategorieEtablissement")
TRE_R73 = nos("TRE_R73-ESPIC")
TRE_R211 = nos("TRE_R211-ActiviteOperationnelle")
TRE_R213 = nos("TRE_R213-ModePriseEnCharge")
TRE_R227 = nos("TRE_R227-ChampActivite")
TRE_R244 = nos("TRE_R244-CategorieOrganisation")
TRE_R203 = nos("TRE_R203-StatutLieu")
TRE_R343 = nos("TRE_R343-FonctionLieu")
TRE_R200 = nos("TRE_R200-CanalCommunication")
TRE_R283 = nos("TRE_R283-NiveauConfidentialite")
TRE_R329 = nos("TRE_R329-NatureCapacite")
TRE_R330 = nos("TRE_R330-TypeStatutCapacite")
TRE_R331 = nos("TRE_R331-TemporaliteCapacite")
TRE_R332 = nos("TRE_R332-GenreCapacite")
TRE_R333 = nos("TRE_R333-TypeFermetureCapacite")
TRE_R334 = nos("TRE_R334-TypeLitSupplementaire")
TRE_R335 = nos("TRE_R335-TypeSourceCapacite")
TRE_R336 = nos("TRE_R336-TypeCrise")
TRE_R337 = nos("TRE_R337-AffectationTemporaire")

# extensions
EXT_COMMUNE_COG = SD + "ror-commune-cog"
EXT_CAPACITY = SD + "ror-location-supported-capacity"
EXT_SENSITIVE_UNIT = SD + "ror-healthcareservice-sensitive-unit"
EXT_PATIENT_TYPE = SD + "ror-healthcareservice-patient-type"
EXT_ORG_PERIOD = SD + "organization-period"
EXT_TELECOM_CHANNEL = SD + "ror-telecom-communication-channel"
EXT_TELECOM_CONFIDENTIALITY = SD + "ror-telecom-confidentiality-level"
EXT_FR_INSEE_CODE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"

PROFILE_ORGANIZATION = SD + "ror-organization"
PROFILE_HEALTHCARESERVICE = SD + "ror-healthcareservice"
PROFILE_LOCATION = SD + "ror-location"


def ej_id(finess_ej: str) -> str:
    return f"ej-{finess_ej}"


def eg_id(finess_et: str) -> str:
    return f"eg-{finess_et}"


def eg_address_location_id(finess_et: str) -> str:
    return f"eg-{finess_et}-adr"


def unit_service_id(finess_et: str, unit_key: str) -> str:
    return f"hs-{finess_et}-{unit_key}"


def unit_location_id(finess_et: str, unit_key: str) -> str:
    return f"loc-{finess_et}-{unit_key}"
