"""Who may do which transition (the rule table of docs/workflow.md).

| action | from | to | who |
|---|---|---|---|
| submit | brouillon | soumis | an author (unit editor, establishment manager, administrators) who may write it |
| review | soumis | valide | the regional team: regional administrator of its region, national administrator |
| publish | valide | publie | the establishment head: establishment manager of that FINESS, national administrator |
| reject | soumis | rejete | the regional team (comment required) |
| reject | valide | rejete | the establishment head (comment required) |
| rework | rejete | brouillon | an author |
"""

from __future__ import annotations

from ror.access.people import Person

BROUILLON, SOUMIS, VALIDE, PUBLIE, REJETE = "brouillon", "soumis", "valide", "publie", "rejete"
LABELS = {
    BROUILLON: "Brouillon",
    SOUMIS: "Soumis — relecture régionale",
    VALIDE: "Relu — validation du responsable",
    PUBLIE: "Publié",
    REJETE: "Rejeté — à reprendre",
}
ACTION_LABELS = {
    "submit": "Soumettre à la relecture",
    "review": "Relecture validée",
    "publish": "Valider et publier",
    "reject": "Rejeter",
    "rework": "Reprendre le brouillon",
}


def is_author(p: Person, finess: str, region: str | None) -> bool:
    return p.role in ("unit_editor", "establishment_manager", "regional_admin", "national_admin") and p.may_write(
        finess, region
    )


def is_regional_team(p: Person, region: str | None) -> bool:
    return p.role == "national_admin" or (p.role == "regional_admin" and bool(p.region) and p.region == region)


def is_head(p: Person, finess: str) -> bool:
    return p.role == "national_admin" or (p.role == "establishment_manager" and finess in p.finess)


def allowed(p: Person, action: str, status: str, finess: str, region: str | None) -> bool:
    if action in ("submit",) and status == BROUILLON:
        return is_author(p, finess, region)
    if action == "rework" and status == REJETE:
        return is_author(p, finess, region)
    if action == "review" and status == SOUMIS:
        return is_regional_team(p, region)
    if action == "publish" and status == VALIDE:
        return is_head(p, finess)
    if action == "reject":
        return (status == SOUMIS and is_regional_team(p, region)) or (status == VALIDE and is_head(p, finess))
    return False


TARGET = {"submit": SOUMIS, "review": VALIDE, "publish": PUBLIE, "reject": REJETE, "rework": BROUILLON}
