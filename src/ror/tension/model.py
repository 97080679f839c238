"""The tension scale, reasons and corrective actions (our code systems, documented in docs/tension.md), one
declaration, and its FHIR form: a `Flag` (category tension-es, code = level, subject = the EG Organization,
period = start/end)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from ror.directory import ids
from ror.errors import InvalidRequest, client_json
from ror.search.normalise import fhir_instant
from ror.store.meta import REGION_SYSTEM

CS = "https://ror.invalid/fhir/CodeSystem/"
SD = "https://ror.invalid/fhir/StructureDefinition/"
LEVEL_SYSTEM = CS + "tension-niveau"
REASON_SYSTEM = CS + "tension-motif"
ACTION_SYSTEM = CS + "tension-action"
CATEGORY_SYSTEM = CS + "flag-categorie-ror"
CATEGORY_CODE = "tension-es"
EXT_REASON = SD + "tension-motif"
EXT_ACTION = SD + "tension-action"
EXT_PREVIOUS = SD + "tension-niveau-precedent"
EXT_COMMENT = SD + "tension-commentaire"
DEPARTEMENT_SYSTEM = CS + "insee-departement"


@dataclass(frozen=True)
class Level:
    code: int
    label: str
    meaning: str
    color: str  # DSFR-ish badge colour


LEVELS: dict[int, Level] = {
    1: Level(
        1, "Vigilance", "Activité soutenue, absorbée par l'organisation habituelle ; surveillance renforcée.", "info"
    ),
    2: Level(
        2, "Tension", "Difficulté à trouver des lits d'aval ; mesures internes (gestion des lits, sorties).", "new"
    ),
    3: Level(
        3, "Tension forte", "Mesures exceptionnelles : lits supplémentaires, déprogrammation, renforts.", "warning"
    ),
    4: Level(4, "Crise", "Capacités dépassées : plan blanc, transferts et délestage régional.", "error"),
}
REASONS: dict[str, str] = {
    "afflux-urgences": "Afflux de patients aux urgences",
    "lits-aval": "Manque de lits d'aval",
    "personnel": "Manque de personnel",
    "epidemie": "Épidémie saisonnière",
    "sse": "Situation sanitaire exceptionnelle",
    "technique": "Panne ou incident technique",
    "autre": "Autre motif",
}
ACTIONS: dict[str, str] = {
    "lits-supplementaires": "Ouverture de lits supplémentaires",
    "deprogrammation": "Déprogrammation d'activité",
    "transferts": "Transferts de patients",
    "renfort-personnel": "Rappel ou renfort de personnel",
    "sorties": "Accélération des sorties",
    "cellule-crise": "Activation de la cellule de crise",
    "plan-blanc": "Déclenchement du plan blanc",
    "autre": "Autre mesure",
}


@dataclass(frozen=True)
class Action:
    code: str
    quantity: int | None = None  # beds opened, interventions deprogrammed, patients transferred…

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code} | ({"quantity": self.quantity} if self.quantity is not None else {})


@dataclass(frozen=True)
class Declaration:
    pk: int
    finess: str
    organization_id: str
    organization_name: str | None
    region: str | None
    departement: str | None
    level: int
    previous_level: int
    reasons: tuple[str, ...]
    actions: tuple[Action, ...]
    comment: str | None
    started_at: datetime
    ended_at: datetime | None
    declared_by: str
    ended_by: str | None
    updated_at: datetime
    version_id: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"tes-{self.pk}"

    @property
    def active(self) -> bool:
        return self.ended_at is None

    @property
    def escalation(self) -> bool:
        return self.level > self.previous_level

    @property
    def label(self) -> str:
        return LEVELS[self.level].label

    def flag(self) -> dict[str, Any]:
        level = LEVELS[self.level]
        res: dict[str, Any] = {
            "resourceType": "Flag",
            "id": self.id,
            "meta": {"versionId": str(self.version_id), "lastUpdated": fhir_instant(self.updated_at)},
            "status": "active" if self.active else "inactive",
            "category": [
                {"coding": [{"system": CATEGORY_SYSTEM, "code": CATEGORY_CODE, "display": "Tension en établissement"}]}
            ],
            "code": {
                "coding": [{"system": LEVEL_SYSTEM, "code": str(level.code), "display": level.label}],
                "text": f"Niveau {level.code} — {level.label}",
            },
            "subject": {
                "reference": f"Organization/{self.organization_id}",
                "identifier": {"system": ids.FINESS, "value": self.finess},
                **({"display": self.organization_name} if self.organization_name else {}),
            },
            "period": {"start": fhir_instant(self.started_at)},
            "author": {"reference": f"Organization/{self.organization_id}"},
        }
        tags = []
        if self.region:
            tags.append({"system": REGION_SYSTEM, "code": self.region})
        if self.departement:
            tags.append({"system": DEPARTEMENT_SYSTEM, "code": self.departement})
        if tags:
            res["meta"]["tag"] = tags
        if self.ended_at:
            res["period"]["end"] = fhir_instant(self.ended_at)
        ext: list[dict[str, Any]] = [{"url": EXT_PREVIOUS, "valueInteger": self.previous_level}]
        ext += [
            {
                "url": EXT_REASON,
                "valueCodeableConcept": {"coding": [{"system": REASON_SYSTEM, "code": r, "display": REASONS[r]}]},
            }
            for r in self.reasons
        ]
        for a in self.actions:
            parts: list[dict[str, Any]] = [
                {
                    "url": "action",
                    "valueCodeableConcept": {
                        "coding": [{"system": ACTION_SYSTEM, "code": a.code, "display": ACTIONS[a.code]}]
                    },
                }
            ]
            if a.quantity is not None:
                parts.append({"url": "quantite", "valueInteger": a.quantity})
            ext.append({"url": EXT_ACTION, "extension": parts})
        if self.comment:
            ext.append({"url": EXT_COMMENT, "valueString": self.comment})
        res["extension"] = ext
        return res

    def flag_json(self) -> str:
        return orjson.dumps(self.flag()).decode()


def check_reasons(codes: list[str], where: str) -> tuple[str, ...]:
    for c in codes:
        if c not in REASONS:
            raise InvalidRequest(f"unknown tension reason {c!r} (known: {', '.join(REASONS)})", expression=where)
    return tuple(dict.fromkeys(codes))


def check_actions(actions: list[Action], where: str) -> tuple[Action, ...]:
    for a in actions:
        if a.code not in ACTIONS:
            raise InvalidRequest(
                f"unknown corrective action {a.code!r} (known: {', '.join(ACTIONS)})", expression=where
            )
        if a.quantity is not None and (not isinstance(a.quantity, int) or a.quantity < 0):
            raise InvalidRequest("an action quantity is an integer ≥ 0", expression=where)
    return tuple(actions)


def check_level(value: Any, where: str) -> int:
    try:
        level = int(value)
    except (TypeError, ValueError):
        level = 0
    if level not in LEVELS:
        raise InvalidRequest(f"tension level must be 1..4 ({LEVEL_SYSTEM}), got {value!r}", expression=where)
    return level


def _code(cc: Any, system: str) -> str | None:
    for c in (cc or {}).get("coding") or []:
        if c.get("system") == system:
            return c.get("code")
    return None


@dataclass(frozen=True)
class FlagInput:
    """What a client's Flag asks for."""

    organization_id: str | None
    finess: str | None
    level: int
    reasons: tuple[str, ...]
    actions: tuple[Action, ...]
    comment: str | None
    start: str | None
    end: str | None
    active: bool


@client_json("Flag")
def parse_flag(res: dict[str, Any]) -> FlagInput:
    if res.get("resourceType") != "Flag":
        raise InvalidRequest("the body must be a Flag", expression="Flag")
    if not any(_code(c, CATEGORY_SYSTEM) == CATEGORY_CODE for c in res.get("category") or []):
        raise InvalidRequest(f"Flag.category must hold {CATEGORY_SYSTEM}|{CATEGORY_CODE}", expression="Flag.category")
    level = check_level(_code(res.get("code"), LEVEL_SYSTEM), "Flag.code")
    subject = res.get("subject") or {}
    ref = str(subject.get("reference") or "")
    org_id = ref.split("/", 1)[1] if ref.startswith("Organization/") else None
    ident = subject.get("identifier") or {}
    finess = ident.get("value") if ident.get("system") == ids.FINESS else None
    if not org_id and not finess:
        raise InvalidRequest(
            "Flag.subject must reference the establishment (Organization/… or its FINESS identifier)",
            expression="Flag.subject",
        )
    reasons: list[str] = []
    actions: list[Action] = []
    comment = None
    for e in res.get("extension") or []:
        if e.get("url") == EXT_REASON:
            reasons.append(str(_code(e.get("valueCodeableConcept"), REASON_SYSTEM)))
        elif e.get("url") == EXT_ACTION:
            code, qty = None, None
            for sub in e.get("extension") or []:
                if sub.get("url") == "action":
                    code = _code(sub.get("valueCodeableConcept"), ACTION_SYSTEM)
                elif sub.get("url") == "quantite":
                    qty = sub.get("valueInteger")
            actions.append(Action(str(code), qty))
        elif e.get("url") == EXT_COMMENT:
            comment = e.get("valueString")
    period = res.get("period") or {}
    status = res.get("status", "active")
    if status not in ("active", "inactive"):
        raise InvalidRequest("Flag.status is active or inactive", expression="Flag.status")
    return FlagInput(
        org_id,
        finess,
        level,
        check_reasons(reasons, "Flag.extension"),
        check_actions(actions, "Flag.extension"),
        comment,
        period.get("start"),
        period.get("end"),
        status == "active",
    )
