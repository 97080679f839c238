"""The capacity write use case: find the Location (by id or by `<idNatStruct EG>/<idExterneSynchro>`), check
the caller's rights, apply the patch, validate, and store a new Location version (projection + events in the same
transaction); every outcome audited."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, and_, select

from ror.access import audit
from ror.access.rights import require_write
from ror.access.tokens import Caller
from ror.capacity import patch as fhirpatch
from ror.capacity.model import CAPACITY_URL, indicators_of
from ror.capacity.rules import consistency_warnings, validate_indicators
from ror.db.tables import idx_token, resource
from ror.directory import ids
from ror.errors import Issue, NotFound, PreconditionFailed, RorError
from ror.store import ResourceStore, Stored
from ror.terminology.service import Terminology


class MultipleMatches(RorError):
    status, code = 412, "multiple-matches"


@dataclass
class PatchResult:
    stored: Stored
    warnings: list[Issue]


def _locations_by_external_id(conn: Connection, value: str) -> list[str]:
    t = idx_token
    rows = conn.execute(
        select(resource.c.res_id)
        .select_from(t.join(resource, resource.c.pk == t.c.resource_pk))
        .where(
            t.c.res_type == "Location",
            t.c.param == "identifier:of-type",
            t.c.code == "26",
            t.c.text == value,
            resource.c.deleted.is_(False),
        )
    ).scalars()
    return sorted(set(rows))


def _eg_ids(conn: Connection, id_nat_struct: str) -> set[str]:
    t = idx_token
    rows = conn.execute(
        select(resource.c.res_id)
        .select_from(t.join(resource, resource.c.pk == t.c.resource_pk))
        .where(
            and_(
                t.c.res_type == "Organization",
                t.c.param == "identifier",
                t.c.code == id_nat_struct,
                t.c.system == ids.ID_NAT_STRUCT,
            )
        )
    ).scalars()
    return set(rows)


def resolve_location(conn: Connection, identifier: str) -> str:
    """`<idNatStruct>/<idExterneSynchro>` (or a full stored idExterneSynchro) → the Location id.
    404 (expression Location) when unknown, 412 multiple-matches when duplicated."""
    matches = _locations_by_external_id(conn, identifier)
    if not matches and "/" in identifier:
        nat, _, ward = identifier.partition("/")
        egs = _eg_ids(conn, nat)
        for loc_id in _locations_by_external_id(conn, ward):
            content = conn.execute(
                select(resource.c.content).where(resource.c.res_type == "Location", resource.c.res_id == loc_id)
            ).scalar_one()
            ref = (orjson.loads(content).get("managingOrganization") or {}).get("reference", "")
            if ref.split("/")[-1] in egs:
                matches.append(loc_id)
    if not matches:
        raise NotFound(
            f"La Location avec l'identifiant externe de synchro '{identifier}' n'a pas été trouvée.",
            expression="Location",
        )
    if len(matches) > 1:
        raise MultipleMatches(
            f"La Location recherchée n'est pas unique, il y a '{len(matches)}' résultats", expression="Location"
        )
    return matches[0]


def _lock_location(conn: Connection, location_id: str) -> None:
    """Take the Location's row lock before reading it (PostgreSQL; SQLite writers already hold the database lock
    from BEGIN IMMEDIATE): concurrent feeders without If-Match are then applied one after the other on the latest
    version, instead of the later ones failing the store's version check with a spurious 412."""
    if conn.dialect.name != "sqlite":
        conn.execute(
            select(resource.c.pk)
            .where(resource.c.res_type == "Location", resource.c.res_id == location_id)
            .with_for_update()
        )


class CapacityService:
    def __init__(self, store: ResourceStore, terminology: Terminology | None) -> None:
        self.store = store
        self.terminology = terminology

    def _validate_code(self, vs: str, system: str, code: str) -> object:
        assert self.terminology is not None
        return self.terminology.validate(vs, system, code)

    def patch(
        self,
        caller: Caller,
        body: object,
        *,
        location_id: str | None = None,
        identifier: str | None = None,
        if_match: int | None = None,
        remote_addr: str | None = None,
    ) -> PatchResult:
        ops = fhirpatch.parse_parameters(body)
        try:
            with self.store.write_tx() as conn:
                if location_id is None:
                    assert identifier is not None
                    location_id = resolve_location(conn, identifier)
                _lock_location(conn, location_id)
                current = self.store.read("Location", location_id, conn=conn)
                res = current.resource()
                require_write(conn, caller, res)
                if if_match is not None and if_match != current.version_id:
                    raise PreconditionFailed(
                        f"Location/{location_id} is at version {current.version_id}, If-Match asked for {if_match}",
                        expression="Location",
                    )
                old = indicators_of(res)
                new = fhirpatch.apply(old, ops)
                validate_indicators(new, self._validate_code if self.terminology else None)
                others = [e for e in res.get("extension") or [] if e.get("url") != CAPACITY_URL]
                res["extension"] = others + [i.to_extension() for i in new]
                stored, _ = self.store.update(
                    "Location",
                    location_id,
                    res,
                    if_match=current.version_id,
                    author=caller.subject,
                    conn=conn,
                    method="PATCH",
                )
                audit.record(
                    conn,
                    actor_type=caller.kind,
                    actor_id=caller.subject,
                    action="patch",
                    outcome="success",
                    res_type="Location",
                    res_id=location_id,
                    version_id=stored.version_id,
                    remote_addr=remote_addr,
                )
        except RorError as exc:
            audit.failure(
                self.store.engine,
                caller,
                exc,
                action="patch",
                res_type="Location",
                res_id=location_id or identifier,
                remote_addr=remote_addr,
            )
            raise
        return PatchResult(stored, consistency_warnings(new))
