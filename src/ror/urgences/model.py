"""One activity report of an emergency department and its FHIR form: a `MeasureReport` (type summary) of our
measure `urgences-activite`, one group per indicator (code from our code system), subject = the department's
Location, reporter = its establishment, and the offer (HealthcareService) in an extension."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ror.directory import ids
from ror.errors import InvalidRequest, client_json
from ror.search.normalise import fhir_instant
from ror.store.meta import REGION_SYSTEM

CARE_MODE_URGENCES = "33"  # TRE_R213 "Accueil des urgences"
MEASURE_URL = "https://ror.invalid/fhir/Measure/urgences-activite"
GROUP_SYSTEM = "https://ror.invalid/fhir/CodeSystem/urgences-indicateur"
EXT_SERVICE = "https://ror.invalid/fhir/StructureDefinition/urgences-offre"
DEPARTEMENT_SYSTEM = "https://ror.invalid/fhir/CodeSystem/insee-departement"
GROUPS: dict[str, tuple[str, str]] = {  # code -> (field, French label)
    "patients-presents": ("present", "Patients présents"),
    "attente-lit": ("waiting_bed", "Patients en attente d'un lit d'hospitalisation (brancards)"),
    "passages-24h": ("passages_24h", "Passages des dernières 24 heures"),
}
MAX_VALUE = 5000


@dataclass(frozen=True)
class Report:
    pk: int
    service_id: str
    location_id: str | None
    organization_id: str | None
    finess: str | None
    region: str | None
    departement: str | None
    observed_at: datetime
    present: int
    waiting_bed: int
    passages_24h: int
    source: str
    recorded_at: datetime

    @property
    def id(self) -> str:
        return f"urg-{self.pk}"

    def measure_report(self) -> dict[str, Any]:
        tags = [{"system": REGION_SYSTEM, "code": self.region}] if self.region else []
        if self.departement:
            tags.append({"system": DEPARTEMENT_SYSTEM, "code": self.departement})
        res: dict[str, Any] = {
            "resourceType": "MeasureReport",
            "id": self.id,
            "meta": {
                "versionId": "1",
                "lastUpdated": fhir_instant(self.recorded_at),
                **({"tag": tags} if tags else {}),
            },
            "extension": [
                {"url": EXT_SERVICE, "valueReference": {"reference": f"HealthcareService/{self.service_id}"}}
            ],
            "status": "complete",
            "type": "summary",
            "measure": MEASURE_URL,
            "date": fhir_instant(self.observed_at),
            "period": {
                "start": fhir_instant(self.observed_at - timedelta(hours=24)),
                "end": fhir_instant(self.observed_at),
            },
            "group": [
                {
                    "code": {"coding": [{"system": GROUP_SYSTEM, "code": code, "display": label}]},
                    "measureScore": {"value": getattr(self, field)},
                }
                for code, (field, label) in GROUPS.items()
            ],
        }
        if self.location_id:
            res["subject"] = {"reference": f"Location/{self.location_id}"}
        if self.organization_id:
            res["reporter"] = {"reference": f"Organization/{self.organization_id}"}
            if self.finess:
                res["reporter"]["identifier"] = {"system": ids.FINESS, "value": self.finess}
        return res


@dataclass(frozen=True)
class Figures:
    present: int
    waiting_bed: int
    passages_24h: int


def check_figures(present: Any, waiting_bed: Any, passages_24h: Any, where: str = "MeasureReport.group") -> Figures:
    values = {"patients-presents": present, "attente-lit": waiting_bed, "passages-24h": passages_24h}
    for code, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_VALUE:
            raise InvalidRequest(f"{code} must be an integer 0..{MAX_VALUE}, got {v!r}", expression=where)
    if waiting_bed > present:
        raise InvalidRequest("patients waiting for a bed are among the patients present", expression=where)
    return Figures(present, waiting_bed, passages_24h)


@dataclass(frozen=True)
class ReportInput:
    service_id: str | None
    location_id: str | None
    date: str | None
    figures: Figures


@client_json("MeasureReport")
def parse_measure_report(res: dict[str, Any]) -> ReportInput:
    if res.get("resourceType") != "MeasureReport":
        raise InvalidRequest("the body must be a MeasureReport", expression="MeasureReport")
    if res.get("measure") != MEASURE_URL:
        raise InvalidRequest(f"MeasureReport.measure must be {MEASURE_URL}", expression="MeasureReport.measure")
    service_id = None
    for e in res.get("extension") or []:
        if e.get("url") == EXT_SERVICE:
            ref = str((e.get("valueReference") or {}).get("reference", ""))
            service_id = ref.removeprefix("HealthcareService/") or None
    subject = str((res.get("subject") or {}).get("reference", ""))
    location_id = subject.removeprefix("Location/") if subject.startswith("Location/") else None
    if service_id is None and location_id is None:
        raise InvalidRequest(
            "name the emergency department: extension urgences-offre (HealthcareService) or subject (Location)",
            expression="MeasureReport.subject",
        )
    values: dict[str, Any] = {}
    for g in res.get("group") or []:
        for c in (g.get("code") or {}).get("coding") or []:
            if c.get("system") == GROUP_SYSTEM and c.get("code") in GROUPS:
                values[c["code"]] = (g.get("measureScore") or {}).get("value")
    missing = [c for c in GROUPS if c not in values]
    if missing:
        raise InvalidRequest(f"missing group(s): {', '.join(missing)}", expression="MeasureReport.group")
    figures = check_figures(values["patients-presents"], values["attente-lit"], values["passages-24h"])
    return ReportInput(service_id, location_id, res.get("date"), figures)
