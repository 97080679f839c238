"""Facts the access filter needs about a batch of resources (sensitive unit, médico-social field), read from the
search indexes in a few queries per page (no N+1), and the SQL conditions that keep hidden resources out of
searches (so totals and pages are right)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, not_, or_, select, true
from sqlalchemy.sql.selectable import FromClause

from ror.access.policy import CHAMP_MEDICO_SOCIAL, Context
from ror.db.tables import idx_reference, idx_token, resource

SENSITIVE = ("sensitive-unit", "true")
# How a resource type reaches the offers (HealthcareService) whose facts apply to it.
LINKS: dict[str, tuple[str, str] | None] = {
    "HealthcareService": None,  # itself
    "Location": ("HealthcareService", "location"),  # offers pointing to the Location
    "PractitionerRole": ("PractitionerRole", "service"),  # the role points to its offer
    "Organization": ("HealthcareService", "organization"),  # offers provided by the Organization
}


def _offer_flags(conn: Connection, hs_pks: list[int]) -> dict[int, tuple[bool, bool]]:
    flags = {pk: (False, False) for pk in hs_pks}
    if not hs_pks:
        return flags
    t = idx_token
    rows = conn.execute(
        select(t.c.resource_pk, t.c.param, t.c.code).where(
            t.c.resource_pk.in_(hs_pks),
            t.c.res_type == "HealthcareService",
            or_(
                and_(t.c.param == SENSITIVE[0], t.c.code == SENSITIVE[1]),
                and_(t.c.param == "service-type", t.c.code == CHAMP_MEDICO_SOCIAL),
            ),
        )
    )
    for pk, param, _code in rows:
        sensitive, ms = flags[pk]
        flags[pk] = (sensitive or param == SENSITIVE[0], ms or param == "service-type")
    return flags


def contexts(conn: Connection, rows: Iterable[tuple[int, str, str]]) -> dict[int, Context]:
    """Context per resource pk for (pk, res_type, res_id) rows."""
    rows = list(rows)
    out: dict[int, Context] = {pk: Context() for pk, _, _ in rows}
    hs = [pk for pk, rt, _ in rows if rt == "HealthcareService"]
    for pk, (s, ms) in _offer_flags(conn, hs).items():
        out[pk] = Context(s, ms)
    r = idx_reference
    # Location / Organization: offers that point to them
    for rt, param in (("Location", "location"), ("Organization", "organization")):
        targets = {rid: pk for pk, t, rid in rows if t == rt}
        if not targets:
            continue
        links = conn.execute(
            select(r.c.target_id, r.c.resource_pk).where(
                r.c.res_type == "HealthcareService",
                r.c.param == param,
                r.c.target_type == rt,
                r.c.target_id.in_(list(targets)),
            )
        ).all()
        _merge(out, links, targets, _offer_flags(conn, [pk for _, pk in links]), sensitive=rt == "Location")
    # PractitionerRole: its offer
    roles = [pk for pk, t, _ in rows if t == "PractitionerRole"]
    if roles:
        links = conn.execute(
            select(r.c.resource_pk, resource.c.pk)
            .select_from(
                r.join(resource, and_(resource.c.res_type == r.c.target_type, resource.c.res_id == r.c.target_id))
            )
            .where(r.c.resource_pk.in_(roles), r.c.param == "service", r.c.res_type == "PractitionerRole")
        ).all()
        flags = _offer_flags(conn, [hs_pk for _, hs_pk in links])
        for role_pk, hs_pk in links:
            s, ms = flags.get(hs_pk, (False, False))
            cur = out[role_pk]
            out[role_pk] = Context(cur.sensitive or s, cur.medico_social or ms)
    return out


def _merge(
    out: dict[int, Context],
    links: list[Any],
    targets: dict[str, int],
    flags: dict[int, tuple[bool, bool]],
    *,
    sensitive: bool,
) -> None:
    for target_id, hs_pk in links:
        pk = targets[target_id]
        s, ms = flags.get(hs_pk, (False, False))
        cur = out[pk]
        # an Organization is not hidden because one of its offers is sensitive; a Location of a sensitive offer is
        out[pk] = Context(cur.sensitive or (s and sensitive), cur.medico_social or ms)


def _sensitive_offers() -> Any:
    t = idx_token.alias()
    return select(t.c.resource_pk).where(
        t.c.res_type == "HealthcareService", t.c.param == SENSITIVE[0], t.c.code == SENSITIVE[1]
    )


def hide_sensitive(outer: FromClause, res_type: str) -> ColumnElement[bool]:
    """SQL condition: the resource is not (attached to) a sensitive unit. Uncorrelated `NOT IN` sub-selects (the
    hidden set is computed once); NULL targets are excluded so that NOT IN never turns unknown."""
    if res_type == "HealthcareService":
        return not_(outer.c.pk.in_(_sensitive_offers()))
    r = idx_reference.alias()
    if res_type == "Location":
        hidden = select(r.c.target_id).where(
            r.c.res_type == "HealthcareService",
            r.c.param == "location",
            r.c.target_type == "Location",
            r.c.target_id.is_not(None),
            r.c.resource_pk.in_(_sensitive_offers()),
        )
        return not_(outer.c.res_id.in_(hidden))
    if res_type == "PractitionerRole":
        hs = resource.alias()
        hidden = (
            select(r.c.resource_pk)
            .select_from(r.join(hs, and_(hs.c.res_type == "HealthcareService", hs.c.res_id == r.c.target_id)))
            .where(r.c.res_type == "PractitionerRole", r.c.param == "service", hs.c.pk.in_(_sensitive_offers()))
        )
        return not_(outer.c.pk.in_(hidden))
    return true()
