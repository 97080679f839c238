"""Write rights: a feeder client (or a person) may write only the establishments (EG) it is granted, and so their
units and Locations. The EG of a resource is found by walking managingOrganization / providedBy / partOf up to
an Organization carrying a FINESS identifier that the caller holds."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson
from sqlalchemy import Connection

from ror.access.tokens import Caller
from ror.directory import ids
from ror.errors import RorError
from ror.store.rawsql import fetch_all, marks

MAX_DEPTH = 6


# looked up on every write (the capacity feed's hot path), at driver level (`fetch_all`); `coalesce(deleted)`: the
# (res_type, res_id) key drives on both engines, also without planner statistics (SQLite then chose the
# (res_type, deleted) index: ~100 ms per lookup on a national database)
def _organizations_sql(n: int) -> str:
    return (
        "SELECT res_id, content FROM resource WHERE res_type = 'Organization'"
        f" AND res_id IN ({marks(n)}) AND coalesce(deleted, ?) = ?"
    )


class Forbidden(RorError):
    status, code = 403, "forbidden"


class Unauthorized(RorError):
    status, code = 401, "login"


def _ref_id(ref: Any, res_type: str) -> str | None:
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        parts = ref["reference"].split("/")
        if len(parts) >= 2 and parts[-2] == res_type:
            return parts[-1]
    return None


def _finess_of(org: dict[str, Any]) -> set[str]:
    """The FINESS numbers an Organization carries (FINESS identifier, or idNatStruct `1` + FINESS)."""
    found: set[str] = set()
    for ident in org.get("identifier") or []:
        if ident.get("system") == ids.FINESS and ident.get("value"):
            found.add(str(ident["value"]))
        if ident.get("system") == ids.ID_NAT_STRUCT and str(ident.get("value", "")).startswith("1"):
            found.add(str(ident["value"])[1:])
    return found


def establishment_finess(conn: Connection, res: dict[str, Any], enough: Collection[str] = ()) -> set[str]:
    """FINESS numbers of the Organizations above a resource (itself included when it is an Organization); the walk
    stops at the first level that holds one of `enough` (a writer's establishments: usually the EG, one read)."""
    if res.get("resourceType") == "Organization":
        found = _finess_of(res)
        parent = _ref_id(res.get("partOf"), "Organization")
        if parent is None or not found.isdisjoint(enough):
            return found
        return found | establishments(conn, [parent], enough)[parent]
    org_id = _ref_id(res.get(_PARENT.get(str(res.get("resourceType")), "")), "Organization")
    return establishments(conn, [org_id], enough)[org_id] if org_id else set()


_PARENT = {"Location": "managingOrganization", "HealthcareService": "providedBy"}


def establishments(conn: Connection, org_ids: Collection[str], enough: Collection[str] = ()) -> dict[str, set[str]]:
    """For each Organization id, the FINESS numbers of it and the Organizations above it (partOf), read level by
    level for all of them at once (a bulk feed's units: one query per level, not per unit); a walk stops at the
    first level holding one of `enough`."""
    found: dict[str, set[str]] = {o: set() for o in org_ids}
    frontier = {o: o for o in org_ids}  # start -> Organization to read next
    for _ in range(MAX_DEPTH):
        if not frontier:
            break
        wanted = sorted(set(frontier.values()))
        contents: dict[str, str] = {}
        for start in range(0, len(wanted), 900):
            chunk = wanted[start : start + 900]
            rows = fetch_all(conn, _organizations_sql(len(chunk)), (*chunk, False, False))
            contents.update((r[0], r[1]) for r in rows)
        following: dict[str, str] = {}
        for start, current in frontier.items():
            content = contents.get(current)
            if content is None:
                continue
            org = orjson.loads(content)
            found[start] |= _finess_of(org)
            parent = _ref_id(org.get("partOf"), "Organization")
            if parent is not None and found[start].isdisjoint(enough):
                following[start] = parent
        frontier = following
    return found


def organization_id(reference: str) -> str | None:
    """`Organization/eg-1` (relative or absolute) -> `eg-1`; None for anything else."""
    return _ref_id({"reference": reference}, "Organization")


def parent_reference(res: dict[str, Any]) -> str | None:
    """The reference string of a Location's managingOrganization or a HealthcareService's providedBy (the key
    of the `owners` cache of `require_write`)."""
    parent = res.get(_PARENT.get(str(res.get("resourceType")), ""))
    ref = parent.get("reference") if isinstance(parent, dict) else None
    return ref if isinstance(ref, str) else None


def require_write(
    conn: Connection, caller: Caller, res: dict[str, Any], owners: dict[str, set[str]] | None = None
) -> None:
    """Raise 401 for anonymous callers, 403 when the caller holds none of the resource's establishments.
    `owners`: a cache, for one batch of writes, of the establishments found above each parent reference."""
    if caller.kind == "anonymous":
        raise Unauthorized("writing needs an access token (POST /oauth/token)")
    if not caller.can_write:
        raise Forbidden("this client may not write (no establishment granted)")
    key = parent_reference(res)
    if owners is not None and key is not None and key in owners:
        finess = owners[key]
    else:
        finess = establishment_finess(conn, res, caller.feed_set)
        if owners is not None and key is not None:
            owners[key] = finess
    if finess.isdisjoint(caller.feed_set):
        owners = ", ".join(sorted(finess)) or "?"
        raise Forbidden(
            f"{res.get('resourceType')}/{res.get('id')} belongs to establishment(s) {owners}, "
            "which this client may not write",
            expression=str(res.get("resourceType")),
        )
