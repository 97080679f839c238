"""Who may write what: the establishment rights of ror.access.rights, extended to the types that do not point to
an Organization themselves (PractitionerRole → its HealthcareService, Task → its focus). A Practitioner belongs
to no establishment: any caller granted writing may write one."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, select

from ror.access.rights import Forbidden, Unauthorized, require_write
from ror.access.tokens import Caller
from ror.db.tables import resource

ESTABLISHMENT_TYPES = ("Organization", "HealthcareService", "Location")


def _load(conn: Connection, ref: Any) -> dict[str, Any] | None:
    if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
        return None
    parts = ref["reference"].split("/")
    if len(parts) < 2:
        return None
    content = conn.execute(
        select(resource.c.content).where(
            resource.c.res_type == parts[-2], resource.c.res_id == parts[-1], resource.c.deleted.is_(False)
        )
    ).scalar()
    return orjson.loads(content) if content else None


def owner_resource(conn: Connection, res: dict[str, Any]) -> dict[str, Any] | None:
    """The resource whose establishment governs `res` (itself for Organization/HealthcareService/Location)."""
    rt = res.get("resourceType")
    if rt in ESTABLISHMENT_TYPES:
        return res
    if rt == "PractitionerRole":
        services = res.get("healthcareService") or []
        return _load(conn, services[0]) if services else None
    if rt == "Task":
        target = _load(conn, res.get("focus"))
        return owner_resource(conn, target) if target else None
    return None


def authorise(conn: Connection, caller: Caller, res: dict[str, Any], *, creating_task: bool = False) -> None:
    """401 anonymous, 403 not granted. Tasks (anomaly reports) may be created by any caller granted writing."""
    if caller.kind == "anonymous":
        raise Unauthorized("writing needs an access token (POST /oauth/token)")
    if not caller.can_write:
        raise Forbidden("this client may not write (no establishment granted)")
    if creating_task or res.get("resourceType") == "Practitioner":
        return
    owner = owner_resource(conn, res)
    if owner is None:
        if res.get("resourceType") == "Task":
            return  # an anomaly on a resource outside the directory's graph: any writer may handle it
        raise Forbidden(
            f"{res.get('resourceType')} does not lead to an establishment this client may write",
            expression=str(res.get("resourceType")),
        )
    require_write(conn, caller, owner)
