"""Structures against FINESS: category (CO4), EJ attachment (ST2), duplicate identifiers (ST3), exhaustivity (EX1.2),
open/closed state (EX2). FINESS = the extract in the reference data (`finess/…flat…csv.gz`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from sqlalchemy import select

from ror.db.tables import idx_token
from ror.directory import ids
from ror.quality.data import FinessRow, QualityData
from ror.quality.model import AJOUT, COHERENCE, EXACTITUDE, EXHAUSTIVITE, STRUCTURATION, Check, NotApplicable, Rule
from ror.quality.rules.categories import PRACTICES, TRACKED

PLACEHOLDER_FINESS = "888888888"
CATEGORY_PATH = f"Organization.type.where(coding.system='{ids.TRE_R66}')"


def _finess(data: QualityData) -> dict[str, FinessRow]:
    rows = data.finess
    if rows is None:
        raise NotApplicable("needs the FINESS extract (reference data finess/finess_et_*_flat_from_fhir.csv.gz)")
    return rows


def _compared(data: QualityData) -> Iterator:
    """EGs with a real FINESS, open or provisionally closed, not a practice (CO4/ST2 perimeter)."""
    for eg in data.establishments.values():
        if not eg.finess or eg.finess == PLACEHOLDER_FINESS or eg.category in PRACTICES:
            continue
        if eg.open or eg.closing_type == "PRO":
            yield eg


class CO4(Rule):
    id = "CO4"
    title = "Catégorie de l'établissement = catégorie FINESS"
    description = (
        "La catégorie d'établissement (TRE_R66) de chaque EG ouvert ou fermé provisoirement est celle du FINESS ; "
        "un EG dont le FINESS est introuvable est en écart. Les cabinets (SA05–SA09) ne sont pas concernés."
    )
    needs = ("establishments", "finess")
    theme = EXACTITUDE

    def run(self, data: QualityData) -> Iterable[Check]:
        finess = _finess(data)
        for eg in _compared(data):
            row = finess.get(eg.finess or "")
            if row is None:
                yield self.check(
                    "Organization",
                    eg.id,
                    eg.region,
                    eg.departement,
                    False,
                    f"FINESS {eg.finess} introuvable dans l'extraction FINESS",
                    error=eg.category,
                    path="Organization.identifier",
                )
                continue
            ok = eg.category == row.category
            yield self.check(
                "Organization", eg.id, eg.region, eg.departement, ok,
                "" if ok else f"catégorie ROR {eg.category or '(vide)'} ≠ FINESS {row.category}",
                error=eg.category, proposed=row.category, path=CATEGORY_PATH,
            )  # fmt: skip


class ST2(Rule):
    id = "ST2"
    title = "Rattachement EJ = FINESS"
    description = (
        "L'EJ de rattachement d'un EG (partOf) porte le numéro FINESS EJ que le FINESS donne à cet établissement."
    )
    needs = ("establishments", "legal_entities", "finess")
    theme = STRUCTURATION

    def run(self, data: QualityData) -> Iterable[Check]:
        finess = _finess(data)
        ej_finess = data.all_ej_finess
        for eg in _compared(data):
            row = finess.get(eg.finess or "")
            actual = ej_finess.get(eg.ej_id or "") if eg.ej_id else None
            expected = row.finess_ej if row else None
            ok = row is not None and actual == expected
            msg = "" if ok else f"EJ ROR {actual or '(aucune)'} ≠ EJ FINESS {expected or '(FINESS introuvable)'}"
            yield self.check(
                "Organization", eg.id, eg.region, eg.departement, ok, msg,
                error=actual, proposed=expected, path="Organization.partOf",
            )  # fmt: skip


class ST3(Rule):
    id = "ST3"
    title = "Identifiants nationaux en double"
    description = (
        "Deux EJ/EG ouverts d'une même région ne partagent ni l'identifiant national de structure (idNatStruct) "
        "ni, pour deux EG, le numéro FINESS ET."
    )
    needs = ("establishments", "legal_entities")
    theme = STRUCTURATION
    adaptation = "Durci comme proposé en §7.5 : aussi les EG partageant un FINESS ET."

    def run(self, data: QualityData) -> Iterable[Check]:
        objects: list[tuple[str, str | None, str | None, list[str], str | None]] = []
        for ej in data.legal_entities.values():
            if ej.open and not ej.id.endswith("ejv"):
                objects.append((ej.id, ej.region, None, ej.id_nat, None))
        for eg in data.establishments.values():
            if eg.open and eg.category not in PRACTICES:
                objects.append((eg.id, eg.region, eg.departement, eg.id_nat, eg.finess))
        groups: dict[tuple[str, str, str | None], list[str]] = defaultdict(list)
        for oid, region, _dep, id_nat, finess in objects:
            for value in id_nat:
                groups[("idNat", value, region)].append(oid)
            if finess:
                groups[("finess", finess, region)].append(oid)
        dups: dict[str, tuple[str, str, list[str]]] = {}
        for (kind, value, _region), members in groups.items():
            if len(members) > 1:
                for m in members:
                    dups.setdefault(m, (kind, value, [x for x in members if x != m]))
        for oid, region, dep, _id_nat, _finess in objects:
            d = dups.get(oid)
            msg = "" if d is None else f"{d[0]} {d[1]} aussi porté par {', '.join(sorted(d[2]))}"
            path = None if d is None else f"Organization.identifier.where(value='{d[1]}')"
            yield self.check("Organization", oid, region, dep, d is None, msg, error=d[1] if d else None, path=path)


class EX1_2(Rule):
    id = "EX1.2"
    title = "Tout établissement FINESS suivi existe dans le ROR"
    description = (
        "Chaque établissement (ET) de l'extraction FINESS d'une catégorie suivie (§4) a un EG dans le ROR portant "
        "son numéro FINESS (toutes régions, tous états)."
    )
    needs = ("finess", "Organization FINESS identifiers")
    theme = EXHAUSTIVITE
    action = AJOUT
    adaptation = (
        "Périmètre sanitaire approché par la catégorie : nous n'avons pas les autorisations FINESS (MCO/PSY/SMR)."
    )

    def run(self, data: QualityData) -> Iterable[Check]:
        finess = _finess(data)
        t = idx_token
        q = select(t.c.code).where(t.c.res_type == "Organization", t.c.param == "identifier", t.c.system == ids.FINESS)
        with data.engine.connect() as conn:
            known = {code for (code,) in conn.execute(q)}
        for row in finess.values():
            if row.category not in TRACKED:
                continue
            ok = row.finess in known
            yield self.check(
                "Organization", f"finess:{row.finess}", row.region, row.departement, ok,
                "" if ok else f"{row.name} (FINESS {row.finess}, catégorie {row.category}) absent du ROR",
                proposed=row.finess, path="Organization", finess=row.finess,
            )  # fmt: skip


class EX2(Rule):
    id = "EX2"
    title = "État ouvert/fermé cohérent avec le FINESS"
    description = (
        "Un EG ouvert dans le ROR est présent (donc ouvert) dans l'extraction FINESS ; un EG présent dans le FINESS "
        "n'est pas fermé dans le ROR."
    )
    needs = ("establishments", "finess")
    theme = COHERENCE
    adaptation = (
        "L'extraction FINESS ne contient que les établissements ouverts, sans date ni type de fermeture : les "
        "contrôles « fermeture PRO/DEF identique » et « caducité » ne sont pas applicables (besoin : FINESS "
        "historique avec dtfermestruct / cdtypefermestruct)."
    )

    def run(self, data: QualityData) -> Iterable[Check]:
        finess = _finess(data)
        for eg in data.establishments.values():
            if not eg.finess or eg.finess == PLACEHOLDER_FINESS:
                continue
            present = eg.finess in finess
            if eg.open and not present:
                msg, ok = "ouvert dans le ROR, absent (fermé ou inconnu) du FINESS", False
            elif not eg.open and present:
                msg, ok = "fermé dans le ROR, ouvert dans le FINESS", False
            else:
                msg, ok = "", True
            yield self.check(
                "Organization", eg.id, eg.region, eg.departement, ok, msg,
                error="ouvert" if eg.open else "fermé", proposed=None if ok else ("fermé" if eg.open else "ouvert"),
                path="Organization.active",
            )  # fmt: skip
