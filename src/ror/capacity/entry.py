"""Manual capacity entry of a whole establishment (the web form "Saisie des disponibilités"), as one use case:
read the unit Locations of the EG, apply the changed numbers (available by gender, occupied) or a confirmation
("aucun changement": the same numbers re-stamped with now), check the caller's rights and the indicator rules, and
store every changed Location in ONE transaction (projection and events follow, see projection.py). Source type 01
(saisie manuelle). Audited. Nothing is written when one row is wrong: the form comes back with the messages."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, select

from ror.access import audit
from ror.access.rights import require_write
from ror.access.tokens import Caller
from ror.capacity.model import CAPACITY_URL, Indicator, indicators_of
from ror.capacity.rules import BusinessRuleError, consistency_warnings, validate_indicators
from ror.db.tables import idx_reference, resource
from ror.directory import ids
from ror.errors import RorError
from ror.services import Services

SOURCE_MANUAL = "01"
CURRENT, NO_ASSIGNMENT = "01", "01"
INSTALLED, AVAILABLE, OCCUPIED, CLOSED, SUPPLEMENTARY = "01", "02", "03", "05", "06"
GENDER_LABELS = {"01": "Femmes", "02": "Hommes", "04": "Indéterminé"}


@dataclass(frozen=True)
class UnitState:
    """One unit Location as the form shows it."""

    location_id: str
    name: str
    version_id: int
    nature: str  # TRE_R329: 01 lit, 02 place
    installed: int | None
    available: dict[str, int]  # gender (01 F, 02 H, 04 indéterminé) -> number
    occupied: int | None
    closed: int
    supplementary: int
    updated_at: datetime | None  # latest capacityUpdateDate of the current availability / occupancy (UTC, naive)
    note: str | None
    warnings: dict[str, str] = field(default_factory=dict)  # field -> French message (consistency rules)

    @property
    def genders(self) -> list[str]:
        """The gender fields of the row: the unit's own split, else one undetermined field."""
        return sorted(self.available) or ["04"]


@dataclass
class RowChange:
    """What the form sent for one unit. Numbers are raw strings (validated here, messages in French)."""

    available: dict[str, str] = field(default_factory=dict)
    occupied: str | None = None
    confirm: bool = False
    note: str | None = None
    version_id: int | None = None  # the version the form was built from (concurrent edit check)


@dataclass
class EntryResult:
    saved: dict[str, int] = field(default_factory=dict)  # location id -> new version
    confirmed: list[str] = field(default_factory=list)  # saved without changing a number
    unchanged: list[str] = field(default_factory=list)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)  # location id -> field -> message
    warnings: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


class EntryRejected(RorError):
    """The whole entry was refused (nothing written); `result.errors` says where."""

    status, code = 400, "business-rule"

    def __init__(self, result: EntryResult) -> None:
        n = len(result.errors)
        super().__init__(f"{n} unité(s) à corriger : rien n'a été enregistré")
        self.result = result


def _is_current(ind: Indicator) -> bool:
    return ind.temporality == CURRENT and ind.temporary_assignment == NO_ASSIGNMENT


def unit_state(location_id: str, version_id: int, res: dict[str, Any]) -> UnitState | None:
    """The form row of a Location; None when it counts no capacity (no installed current indicator)."""
    try:
        inds = indicators_of(res)
    except RorError:
        return None
    current = [i for i in inds if _is_current(i)]
    installed = [i for i in current if i.status == INSTALLED]
    if not installed:
        return None
    available = {i.gender or "04": i.nb for i in current if i.status == AVAILABLE}
    occupied = [i for i in current if i.status == OCCUPIED]
    stamps = [i.updated_at for i in current if i.status in (AVAILABLE, OCCUPIED)]
    notes = [i.comment for i in current if i.status in (AVAILABLE, OCCUPIED) and i.comment]
    state = UnitState(
        location_id=location_id,
        name=str(res.get("name") or location_id),
        version_id=version_id,
        nature=installed[0].nature,
        installed=sum(i.nb for i in installed),
        available=available,
        occupied=occupied[0].nb if occupied else None,
        closed=sum(i.nb for i in current if i.status == CLOSED),
        supplementary=sum(i.nb for i in current if i.status == SUPPLEMENTARY),
        updated_at=max(stamps) if stamps else None,
        note=notes[0] if notes else None,
    )
    return replace(state, warnings=_warnings(state, inds))


def _unit_rows(conn: Connection, finess: str) -> list[tuple[str, int, dict[str, Any]]]:
    """(id, version, content) of the Locations managed by the EG, in one query."""
    r = idx_reference
    rows = conn.execute(
        select(resource.c.res_id, resource.c.version_id, resource.c.content)
        .select_from(r.join(resource, resource.c.pk == r.c.resource_pk))
        .where(
            and_(
                r.c.res_type == "Location",
                r.c.param == "organization",
                r.c.target_type == "Organization",
                r.c.target_id == ids.eg_id(finess),
                resource.c.deleted.is_(False),
            )
        )
        .order_by(resource.c.res_id)
    ).all()
    return [(row.res_id, int(row.version_id), orjson.loads(row.content)) for row in rows]


def establishment_units(services: Services, finess: str, conn: Connection | None = None) -> list[UnitState]:
    """The rows of the entry form: every unit Location of the establishment that counts capacity, by name."""
    if conn is None:
        with services.store.read_conn() as c:
            return establishment_units(services, finess, c)
    units = [u for rid, v, res in _unit_rows(conn, finess) if (u := unit_state(rid, v, res)) is not None]
    return sorted(units, key=lambda u: (u.name.lower(), u.location_id))


def _number(raw: str | None, label: str) -> tuple[int | None, str | None]:
    """(value, French error). Empty = not given."""
    text = (raw or "").strip()
    if text == "":
        return None, None
    if text.lstrip("-").isdigit() and text.startswith("-"):
        return None, f"{label} : un nombre négatif n'est pas possible."
    if not text.isdigit():
        return None, f"{label} : saisissez un nombre entier (0, 1, 2…)."
    value = int(text)
    if value > 100_000:
        return None, f"{label} : {value} est trop grand."
    return value, None


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).replace(microsecond=0).isoformat()


def _apply(
    unit: UnitState, inds: list[Indicator], available: dict[str, int], occupied: int | None, note: str | None, at: str
) -> list[Indicator]:
    """The Location's new indicators: the row's current availability and occupancy set (or re-stamped) at `at`,
    source 01; the other indicators unchanged — also an availability by a gender the form does not offer (R332 03,
    deprecated: stored data, left as it is)."""
    out: list[Indicator] = []
    seen_gender: set[str] = set()
    seen_occupied = False
    for ind in inds:
        if _is_current(ind) and ind.status == AVAILABLE and (ind.gender or "04") in GENDER_LABELS:
            g = ind.gender or "04"
            seen_gender.add(g)
            nb = available.get(g, ind.nb)
            out.append(replace(ind, nb=nb, update_date=at, source_type=SOURCE_MANUAL, comment=note))
        elif _is_current(ind) and ind.status == OCCUPIED:
            seen_occupied = True
            nb = occupied if occupied is not None else ind.nb
            out.append(replace(ind, nb=nb, update_date=at, source_type=SOURCE_MANUAL, comment=note))
        else:
            out.append(ind)
    for g, nb in sorted(available.items()):
        if g not in seen_gender:
            out.append(
                Indicator(unit.nature, AVAILABLE, CURRENT, nb, SOURCE_MANUAL, at, NO_ASSIGNMENT, gender=g, comment=note)
            )
    if occupied is not None and not seen_occupied:
        out.append(Indicator(unit.nature, OCCUPIED, CURRENT, occupied, SOURCE_MANUAL, at, NO_ASSIGNMENT, comment=note))
    return out


def _warnings(unit: UnitState, inds: list[Indicator]) -> dict[str, str]:
    """French messages for the consistency rules (capacity/rules.py), placed next to the field concerned."""
    out: dict[str, str] = {}
    current = [i for i in inds if _is_current(i)]
    avail = sum(i.nb for i in current if i.status == AVAILABLE)
    occ = sum(i.nb for i in current if i.status == OCCUPIED)
    for issue in consistency_warnings(inds):
        if issue.diagnostics.startswith("available"):
            out["available"] = f"Attention : {avail} disponible(s) pour {unit.installed} installé(s)."
        else:
            out["occupied"] = (
                f"Attention : occupés + disponibles ({occ + avail}) dépassent installés + supplémentaires "
                f"({(unit.installed or 0) + unit.supplementary})."
            )
    return out


def save_establishment(
    services: Services,
    caller: Caller,
    finess: str,
    changes: dict[str, RowChange],
    *,
    now: datetime | None = None,
    remote_addr: str | None = None,
) -> EntryResult:
    """Save the rows of one establishment in one transaction. Raises EntryRejected (nothing written, a message
    per unit) when a number is invalid, a row was changed by someone else meanwhile or a stored indicator the row
    re-stamps breaks a rule (that unit is named; the others can be saved without it); Forbidden/Unauthorized
    (rights.py) when the caller may not write the establishment."""
    at = _stamp(now or datetime.now(UTC))
    result = EntryResult()
    store = services.store
    terminology = services.terminology
    validate = terminology.validate if terminology.value_sets() else None
    try:
        with store.write_tx() as conn:
            rows = {rid: (v, res) for rid, v, res in _unit_rows(conn, finess)}
            planned: list[tuple[str, int, dict[str, Any], list[Indicator]]] = []
            for loc_id, change in sorted(changes.items()):
                if loc_id not in rows:
                    result.errors[loc_id] = {"row": f"{loc_id} n'est pas une unité de l'établissement {finess}."}
                    continue
                version, res = rows[loc_id]
                require_write(conn, caller, res)
                unit = unit_state(loc_id, version, res)
                if unit is None:
                    result.errors[loc_id] = {"row": "Cette unité ne déclare pas de capacité installée."}
                    continue
                before = indicators_of(res)
                planned_row = _plan_row(unit, before, change, result, at)
                if planned_row is None:
                    continue
                try:  # the indicators the row sets; those it leaves as stored are not checked again
                    validate_indicators(planned_row, validate, kept=before)
                except BusinessRuleError as exc:  # a stored indicator the row re-stamps breaks a rule
                    result.errors[loc_id] = {
                        "row": f"Cette unité ne peut pas être enregistrée ({exc.diagnostics}) : laissez-la "
                        "inchangée pour enregistrer les autres, et signalez-la à l'administrateur du ROR."
                    }
                    continue
                planned.append((loc_id, version, res, planned_row))
            if result.errors:
                raise EntryRejected(result)
            for loc_id, version, res, new in planned:
                others = [e for e in res.get("extension") or [] if e.get("url") != CAPACITY_URL]
                res["extension"] = others + [i.to_extension() for i in new]
                stored, _ = store.update(
                    "Location", loc_id, res, if_match=version, author=caller.subject, conn=conn, method="PATCH"
                )
                result.saved[loc_id] = stored.version_id
                audit.record(
                    conn,
                    actor_type=caller.kind,
                    actor_id=caller.subject,
                    action="capacity-entry",
                    outcome="success",
                    res_type="Location",
                    res_id=loc_id,
                    version_id=stored.version_id,
                    remote_addr=remote_addr,
                    detail="confirmation (aucun changement)" if loc_id in result.confirmed else None,
                )
    except RorError as exc:
        if not isinstance(exc, EntryRejected):
            audit.failure(
                store.engine,
                caller,
                exc,
                action="capacity-entry",
                res_type="Organization",
                res_id=ids.eg_id(finess),
                remote_addr=remote_addr,
            )
        raise
    return result


def _plan_row(
    unit: UnitState, stored: list[Indicator], change: RowChange, result: EntryResult, at: str
) -> list[Indicator] | None:
    """The new indicators of one row, or None when nothing is to be written (errors go to `result`)."""
    loc_id = unit.location_id
    errors: dict[str, str] = {}
    available: dict[str, int] = {}
    for g in unit.genders:
        value, err = _number(change.available.get(g), f"Disponibles ({GENDER_LABELS.get(g, g)})")
        if err:
            errors[f"available-{g}"] = err
        elif value is not None:
            available[g] = value
    occupied, err = _number(change.occupied, "Occupés")
    if err:
        errors["occupied"] = err
    if change.version_id is not None and change.version_id != unit.version_id:
        errors["row"] = (
            "Cette unité a été mise à jour par ailleurs pendant votre saisie : rechargez la page pour voir les "
            "nouvelles valeurs."
        )
    if errors:
        result.errors[loc_id] = errors
        return None
    note = (change.note or "").strip()[:500] or None
    changed = any(unit.available.get(g) != nb for g, nb in available.items())
    changed = changed or (occupied is not None and occupied != unit.occupied)
    changed = changed or (note is not None and note != unit.note)
    if not changed and not change.confirm:
        result.unchanged.append(loc_id)
        return None
    if not changed:
        result.confirmed.append(loc_id)
    new = _apply(unit, stored, available, occupied, note if note is not None else unit.note, at)
    warnings = _warnings(unit, new)
    if warnings:
        result.warnings[loc_id] = warnings
    return new
