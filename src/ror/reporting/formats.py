"""The DGOS daily report as CSV (`;`, UTF-8 with BOM), XLSX (openpyxl) and a SANER-style FHIR MeasureReport.
Shapes documented in docs/reports.md."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time
from typing import Any

from ror.reporting.activities import FAMILIES, FAMILY_BY_KEY, FAMILY_SYSTEM
from ror.reporting.daily import PARIS, DailyReport, Figures, Row

COLUMNS = [
    "date",
    "niveau",
    "code",
    "libelle",
    "region",
    "departement",
    "activite",
    "unites",
    "lits_installes",
    "lits_disponibles",
    "lits_occupes",
    "lits_supplementaires",
    "covid_pos_installes",
    "covid_pos_disponibles",
    "covid_pos_occupes",
    "covid_neg_installes",
    "covid_neg_disponibles",
    "covid_neg_occupes",
    "unites_non_a_jour",
    "plus_ancienne_mise_a_jour",
    "age_heures",
]
FAMILY_LABELS = {f.key: f.label for f in FAMILIES} | {"total": "Soins critiques (total)"}

MEASURE_URL = "https://ror.invalid/fhir/Measure/dgos-soins-critiques-quotidien"
POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
FIELD_SYSTEM = "https://ror.invalid/fhir/CodeSystem/dgos-daily-field"
TERRITORY_SYSTEM = {
    "region": "https://mos.esante.gouv.fr/NOS/TRE_R30-RegionOM/FHIR/TRE-R30-RegionOM",
    "departement": "https://ror.invalid/fhir/CodeSystem/insee-departement",
    "etablissement": "http://finess.esante.gouv.fr",
}
# (field code, SANER-like name, measure-population role or None, label)
POPULATIONS: list[tuple[str, str | None, str]] = [
    ("numTotBeds", "denominator", "Lits installés"),
    ("numTotBedsAvail", "numerator-complement", "Lits disponibles"),
    ("numTotBedsOcc", "numerator", "Lits occupés"),
    ("numSuppBeds", None, "Lits supplémentaires"),
    ("numCovidPosBeds", None, "Lits affectés Covid+ (installés)"),
    ("numCovidPosBedsAvail", None, "Lits affectés Covid+ disponibles"),
    ("numCovidPosBedsOcc", None, "Lits affectés Covid+ occupés"),
    ("numCovidNegBeds", None, "Lits affectés Covid− (installés)"),
    ("numCovidNegBedsAvail", None, "Lits affectés Covid− disponibles"),
    ("numCovidNegBedsOcc", None, "Lits affectés Covid− occupés"),
    ("numUnits", None, "Unités"),
    ("numStaleUnits", None, "Unités sans disponibilité à jour (> 24 h)"),
]


def _values(f: Figures) -> list[int]:
    return [
        f.installed,
        f.available,
        f.occupied,
        f.supplementary,
        f.covid_pos.installed,
        f.covid_pos.available,
        f.covid_pos.occupied,
        f.covid_neg.installed,
        f.covid_neg.available,
        f.covid_neg.occupied,
        f.units,
        f.stale,
    ]


def _local(dt: datetime | None) -> str:
    if dt is None:
        return ""
    return dt.replace(tzinfo=UTC).astimezone(PARIS).strftime("%Y-%m-%d %H:%M")


def table(report: DailyReport) -> list[list[Any]]:
    """Header + one line per (level, territory, family)."""
    out: list[list[Any]] = [COLUMNS]
    for r in report.rows:
        f = r.figures
        v = _values(f)
        out.append(
            [
                report.day.isoformat(),
                r.level,
                r.code,
                r.label,
                r.region or "",
                r.departement or "",
                FAMILY_LABELS[r.family],
                f.units,
                *v[:10],
                f.stale,
                _local(f.oldest_update),
                "" if f.age_hours(report.cutoff) is None else f.age_hours(report.cutoff),
            ]
        )
    return out


def to_csv(report: DailyReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\n")
    writer.writerows(table(report))
    return "\ufeff" + buf.getvalue()


def to_xlsx(report: DailyReport) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Rapport"
    rows = table(report)
    for line in rows:
        ws.append(line)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
    info = wb.create_sheet("Définitions")
    info.append(["Rapport quotidien DGOS — lits de soins critiques"])
    info.append(["Date", report.day.isoformat()])
    info.append(["État à", _local(report.cutoff) + " (heure de Paris)"])
    info.append(["Périmètre", report.scope])
    info.append(["Produit le", _local(report.generated_at)])
    info.append([])
    info.append(["Activité", "Codes TRE_R211 (activité opérationnelle de l'offre)"])
    for fam in FAMILIES:
        info.append([fam.label, " ".join(fam.codes)])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# --- FHIR MeasureReport ---------------------------------------------------------------------------------------
def _population(code: str, role: str | None, label: str, count: int) -> dict[str, Any]:
    coding = [{"system": FIELD_SYSTEM, "code": code, "display": label}]
    if role:
        coding.insert(0, {"system": POPULATION_SYSTEM, "code": role})
    return {"code": {"coding": coding, "text": label}, "count": count}


def _populations(f: Figures) -> list[dict[str, Any]]:
    return [_population(c, role, label, n) for (c, role, label), n in zip(POPULATIONS, _values(f), strict=True)]


def _stratum(r: Row) -> dict[str, Any]:
    return {
        "value": {"coding": [{"system": TERRITORY_SYSTEM[r.level], "code": r.code}], "text": r.label},
        "population": _populations(r.figures),
    }


def _iso(dt: datetime) -> str:
    return dt.replace(tzinfo=UTC).isoformat()


def to_measure_report(report: DailyReport, base: str = "") -> dict[str, Any]:
    """One group per activity family (and one for the total), its populations at the report's scope, stratified by
    région, département and establishment (FINESS)."""
    start = datetime.combine(report.day, time(0), tzinfo=PARIS).astimezone(UTC)
    top_level = "nation" if report.scope == "national" else report.scope.split(":")[0]
    groups = []
    for fam in [*FAMILY_BY_KEY, "total"]:
        top = [r for r in report.rows if r.family == fam and r.level == top_level]
        overall = Figures()
        for r in top:
            overall.add(r.figures)
        group: dict[str, Any] = {
            "code": {"coding": [{"system": FAMILY_SYSTEM, "code": fam, "display": FAMILY_LABELS[fam]}]},
            "population": _populations(overall),
        }
        if overall.installed:
            group["measureScore"] = {"value": round(overall.occupied / overall.installed, 4), "unit": "1"}
        strat = []
        for level in ("region", "departement", "etablissement"):
            strata = [_stratum(r) for r in report.rows if r.family == fam and r.level == level]
            if strata:
                strat.append({"code": [{"text": level}], "stratum": strata})
        if strat:
            group["stratifier"] = strat
        groups.append(group)
    scope_label = "France" if report.scope == "national" else report.scope
    return {
        "resourceType": "MeasureReport",
        "id": f"dgos-daily-{report.day.isoformat()}-{report.scope.replace(':', '-')}",
        "status": "complete",
        "type": "summary",
        "measure": MEASURE_URL,
        "subject": {"display": scope_label},
        "date": _iso(report.generated_at),
        "period": {"start": start.isoformat(), "end": _iso(report.cutoff)},
        "improvementNotation": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/measure-improvement-notation", "code": "decrease"}
            ]
        },
        "group": groups,
    }
