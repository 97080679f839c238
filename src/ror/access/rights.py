"""Write rights: a feeder client (or a person) may write only the establishments (EG) it is granted, and so their
units and Locations. The EG of a resource is found by walking managingOrganization / providedBy / partOf up to
an Organization carrying a FINESS identifier that the caller holds."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select

from ror.access.tokens import Caller
from ror.db.tables import resource
from ror.directory import ids
from ror.errors import RorError

MAX_DEPTH = 6
# built once: looked up on every write (the capacity feed's hot path)
_ORGANIZATION = select(resource.c.content).where(
    resource.c.res_type == "Organization", resource.c.res_id == bindparam("i"), resource.c.deleted.is_(False)
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


def establishment_finess(conn: Connection, res: dict[str, Any], enough: Collection[str] = ()) -> set[str]:
    """FINESS numbers of the Organizations above a resource (itself included when it is an Organization); the walk
    stops at the first level that holds one of `enough` (a writer's establishments: usually the EG, one read)."""
    found: set[str] = set()
    org_id: str | None = None
    rt = res.get("resourceType")
    if rt == "Organization":
        current: dict[str, Any] | None = res
    else:
        key = {"Location": "managingOrganization", "HealthcareService": "providedBy"}.get(str(rt))
        org_id = _ref_id(res.get(key), "Organization") if key else None
        current = None
    for _ in range(MAX_DEPTH):
        if current is None:
            if org_id is None:
                break
            content = conn.execute(_ORGANIZATION, {"i": org_id}).scalar()
            if content is None:
                break
            current = orjson.loads(content)
        for ident in current.get("identifier") or []:
            if ident.get("system") == ids.FINESS and ident.get("value"):
                found.add(str(ident["value"]))
            if ident.get("system") == ids.ID_NAT_STRUCT and str(ident.get("value", "")).startswith("1"):
                found.add(str(ident["value"])[1:])
        if not found.isdisjoint(enough):
            break
        org_id = _ref_id(current.get("partOf"), "Organization")
        current = None
    return found


def require_write(
    conn: Connection, caller: Caller, res: dict[str, Any], owners: dict[str, set[str]] | None = None
) -> None:
    """Raise 401 for anonymous callers, 403 when the caller holds none of the resource's establishments.
    `owners`: a cache, for one batch of writes, of the establishments found above each parent reference."""
    if caller.kind == "anonymous":
        raise Unauthorized("writing needs an access token (POST /oauth/token)")
    if not caller.can_write:
        raise Forbidden("this client may not write (no establishment granted)")
    parent = res.get("managingOrganization") or res.get("providedBy")
    key = parent.get("reference") if isinstance(parent, dict) and res.get("resourceType") != "Organization" else None
    if owners is not None and isinstance(key, str) and key in owners:
        finess = owners[key]
    else:
        finess = establishment_finess(conn, res, caller.feeds)
        if owners is not None and isinstance(key, str):
            owners[key] = finess
    if finess.isdisjoint(caller.feeds):
        owners = ", ".join(sorted(finess)) or "?"
        raise Forbidden(
            f"{res.get('resourceType')}/{res.get('id')} belongs to establishment(s) {owners}, "
            "which this client may not write",
            expression=str(res.get("resourceType")),
        )
