"""The capacity write use case: find the Location (by id or by `<idNatStruct EG>/<idExterneSynchro>`), check
the caller's rights, apply the patch, validate, and store a new Location version (projection + events in the same
transaction); every outcome audited."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, and_, select
from sqlalchemy.exc import DBAPIError

from ror.access import audit
from ror.access.rights import establishments, organization_id, require_write
from ror.access.tokens import Caller
from ror.capacity import patch as fhirpatch
from ror.capacity.model import CAPACITY_URL, Indicator, indicators_of
from ror.capacity.projection import content_facts
from ror.capacity.rules import consistency_warnings, validate_indicators
from ror.db.tables import idx_token, resource
from ror.directory import ids
from ror.errors import Issue, NotFound, RorError
from ror.search.extract import CODE_MAX
from ror.store import ResourceStore, Stored
from ror.store.rawsql import Batch
from ror.store.store import check_version
from ror.terminology.service import Terminology


class MultipleMatches(RorError):
    status, code = 412, "multiple-matches"


@dataclass
class PatchResult:
    stored: Stored
    warnings: list[Issue]
    rendered: object = None  # what `render` made of the new version in the write's transaction (or its RorError)


Render = Callable[[Connection, Stored], object]


@dataclass(frozen=True)
class PatchRequest:
    """One capacity patch of a bulk feed or of a group of concurrent single PATCHes: the Parameters body, its
    target (Location id or identifier), the version it requires (If-Match), where it came from (audit; None:
    the call's `remote_addr`) and how to render the new version in the write's transaction (`patch`'s
    `render`)."""

    body: object
    location_id: str | None = None
    identifier: str | None = None
    if_match: int | None = None
    remote_addr: str | None = None
    render: Render | None = field(default=None, compare=False)


def _locations_by_external_id(conn: Connection, value: str) -> list[str]:
    t = idx_token
    rows = conn.execute(
        select(resource.c.res_id)
        .select_from(t.join(resource, resource.c.pk == t.c.resource_pk))
        .where(
            t.c.res_type == "Location",
            t.c.param == "identifier:of-type",  # the value in `code` (indexed), the type in `text`
            t.c.code == value[:CODE_MAX],
            t.c.text == "26",
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


class CapacityService:
    def __init__(self, store: ResourceStore, terminology: Terminology | None) -> None:
        self.store = store
        self.terminology = terminology

    def _validate_code(self, vs: str, system: str, code: str) -> object:
        assert self.terminology is not None
        return self.terminology.validate(vs, system, code)

    def _changed(
        self,
        conn: Connection,
        caller: Caller,
        current: Stored,
        ops: list[fhirpatch.Operation],
        owners: dict[str, set[str]] | None = None,
    ) -> tuple[dict[str, Any], list[Indicator]]:
        """The Location after the patch, and its indicators: the caller's rights checked, the indicators
        validated (codes and combinations); raises when refused."""
        res = current.resource()
        require_write(conn, caller, res, owners)
        known = content_facts(current.content).strict  # parsed once per content (memo), in order
        before = list(known) if known is not None else indicators_of(res)
        new = fhirpatch.apply(before, ops)
        validate_indicators(new, self._validate_code if self.terminology else None, kept=before)
        others = [e for e in res.get("extension") or [] if e.get("url") != CAPACITY_URL]
        res["extension"] = others + [i.to_extension() for i in new]
        return res, new

    def patch(
        self,
        caller: Caller,
        body: object,
        *,
        location_id: str | None = None,
        identifier: str | None = None,
        if_match: int | None = None,
        remote_addr: str | None = None,
        render: Render | None = None,
    ) -> PatchResult:
        """`render(conn, stored)`: the adapter's representation of the new version, made in the write's own
        transaction (no second connection); a RorError it raises is returned in `rendered`, the write stands."""
        ops = fhirpatch.parse_parameters(body)
        rendered: object = None
        outcome: list[Indicator] = []

        def change(current: Stored) -> dict[str, Any]:
            res, outcome[:] = self._changed(conn, caller, current, ops)
            return res

        audited: list[Stored] = []

        def audit_with_write(batch: Batch, stored: Stored) -> None:  # the audit row joins the write's pipeline
            audit.add(batch, [self._success_row(caller, stored, remote_addr)])
            audited.append(stored)

        try:
            with self.store.write_tx() as conn:
                if location_id is None:
                    assert identifier is not None
                    location_id = resolve_location(conn, identifier)
                stored = self.store.modify(
                    "Location",
                    location_id,
                    change,
                    if_match=if_match,
                    author=caller.subject,
                    conn=conn,
                    method="PATCH",
                    also=audit_with_write,
                )
                if not audited:  # nothing changed, no version written: audited on its own
                    audit.record_many(conn, [self._success_row(caller, stored, remote_addr)])
                if render is not None:
                    try:
                        rendered = render(conn, stored)
                    except RorError as exc:
                        rendered = exc
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
        return PatchResult(stored, consistency_warnings(outcome), rendered)

    def patch_many(
        self, caller: Caller, requests: Sequence[PatchRequest | RorError], *, remote_addr: str | None = None
    ) -> list[PatchResult | RorError]:
        """The bulk feed: every request answered at its position (a RorError given in `requests` — an entry the
        adapter could not read — is passed through). One transaction, the Locations written together
        (`ResourceStore.modify_many`), the establishment rights read once per establishment, one audit row per
        entry. A bad entry writes nothing and never blocks the others; should the database refuse the batch as
        a whole, each entry is retried on its own so that only the offending one fails. An entry's `if_match` is
        checked against the version its change sees (a second entry of the same Location sees the first one's);
        its `render` runs in the transaction once every entry is written."""
        out: list[PatchResult | RorError | None] = [r if isinstance(r, RorError) else None for r in requests]
        ops: dict[int, list[fhirpatch.Operation]] = {}
        for i, r in enumerate(requests):
            if isinstance(r, PatchRequest):
                try:
                    ops[i] = fhirpatch.parse_parameters(r.body)
                except RorError as exc:
                    out[i] = exc
        outcomes: dict[int, list[Indicator]] = {}
        owners: dict[str, set[str]] = {}
        try:
            with self.store.write_tx() as conn:

                def change_for(i: int) -> Callable[[Stored], dict[str, Any]]:
                    wanted = requests[i].if_match if isinstance(requests[i], PatchRequest) else None

                    def change(current: Stored) -> dict[str, Any]:
                        res, outcomes[i] = self._changed(conn, caller, current, ops[i], owners)
                        check_version("Location", current.res_id, current.version_id, wanted)
                        return res

                    return change

                targets: list[tuple[int, str]] = []
                for i in ops:
                    r = requests[i]
                    assert isinstance(r, PatchRequest)
                    try:
                        targets.append((i, r.location_id or resolve_location(conn, r.identifier or "")))
                    except RorError as exc:
                        out[i] = exc

                def read_owners(conn: Connection, current: list[Stored]) -> None:
                    """The establishments of all the Locations, in one query per level (not one per entry)."""
                    refs = {ref for ref in (content_facts(s.content).parent for s in current) if ref}
                    by_ref = {ref: org for ref in refs if (org := organization_id(ref)) is not None}
                    found = establishments(conn, set(by_ref.values()), caller.feed_set)
                    owners.update({ref: found[org] for ref, org in by_ref.items()})

                written = self.store.modify_many(
                    "Location",
                    [(loc, change_for(i)) for i, loc in targets],
                    author=caller.subject,
                    conn=conn,
                    method="PATCH",
                    prepare=read_owners,
                )
                for (i, _), res in zip(targets, written, strict=True):
                    if isinstance(res, RorError):
                        out[i] = res
                        continue
                    out[i] = result = PatchResult(res, consistency_warnings(outcomes[i]))
                    r = requests[i]
                    assert isinstance(r, PatchRequest)  # a target comes from a parsed request
                    if r.render is not None:
                        try:
                            result.rendered = r.render(conn, res)
                        except RorError as exc:
                            result.rendered = exc
                audit.record_many(
                    conn, [self._audit_row(caller, r, o, remote_addr) for r, o in zip(requests, out, strict=True)]
                )
        except DBAPIError as exc:
            if exc.connection_invalidated or len(requests) == 1:
                raise
            return [self._one(caller, r, remote_addr) for r in requests]
        return [o if o is not None else RorError("not processed") for o in out]

    def patch_one(self, caller: Caller, r: PatchRequest, remote_addr: str | None = None) -> PatchResult:
        """`patch` of one PatchRequest (its own address, else `remote_addr`)."""
        return self.patch(
            caller,
            r.body,
            location_id=r.location_id,
            identifier=r.identifier,
            if_match=r.if_match,
            remote_addr=r.remote_addr or remote_addr,
            render=r.render,
        )

    def _one(self, caller: Caller, r: PatchRequest | RorError, remote_addr: str | None) -> PatchResult | RorError:
        if isinstance(r, RorError):
            return r
        try:
            return self.patch_one(caller, r, remote_addr)
        except RorError as exc:
            return exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            return RorError(f"the database refused this entry: {exc.orig}", status=500, code="exception")

    @staticmethod
    def _success_row(caller: Caller, stored: Stored, remote_addr: str | None) -> dict[str, object]:
        return audit.success_entry(
            caller,
            action="patch",
            res_type="Location",
            res_id=stored.res_id,
            version_id=stored.version_id,
            remote_addr=remote_addr,
        )

    @staticmethod
    def _audit_row(
        caller: Caller, r: PatchRequest | RorError, o: PatchResult | RorError | None, remote_addr: str | None
    ) -> dict[str, object]:
        target = (r.location_id or r.identifier) if isinstance(r, PatchRequest) else None
        if isinstance(r, PatchRequest) and r.remote_addr:
            remote_addr = r.remote_addr
        if isinstance(o, PatchResult):
            return CapacityService._success_row(caller, o.stored, remote_addr)
        exc = o if isinstance(o, RorError) else RorError("not processed")
        return audit.failure_entry(
            caller, exc, action="patch", res_type="Location", res_id=target, remote_addr=remote_addr
        )
