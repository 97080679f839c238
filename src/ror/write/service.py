"""The write use cases: every write is authorised (establishment rights), validated against the ROR profile,
stored and audited in one transaction; a refused write is audited too (its own transaction)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import Connection, select

from ror.access import audit
from ror.access.tokens import Caller
from ror.db.tables import idx_token, resource
from ror.errors import InvalidRequest, Issue, PreconditionFailed, RorError
from ror.search.normalise import utcnow
from ror.store import ResourceStore, Stored
from ror.validation import ValidationResult, Validator
from ror.write import closure
from ror.write.rights import authorise

WRITABLE = ("Organization", "HealthcareService", "Location", "Practitioner", "PractitionerRole", "Task")
Transform = Callable[[dict[str, Any]], dict[str, Any]]


class MultipleMatches(RorError):
    status, code = 412, "multiple-matches"


@dataclass
class WriteResult:
    stored: Stored
    created: bool = False
    warnings: list[Issue] = field(default_factory=list)
    deleted: bool = False
    unchanged: bool = False  # conditional create that found the resource


def check_writable(res_type: str) -> None:
    if res_type not in WRITABLE:
        raise InvalidRequest(f"{res_type} cannot be written here ({', '.join(WRITABLE)})", expression=res_type)


def parse_identifier_criteria(query: str) -> tuple[str | None, str]:
    """`identifier=system|value` (or `identifier=value`) → (system, value); only identifier is supported."""
    params = parse_qs(query.lstrip("?"), keep_blank_values=True)
    if set(params) != {"identifier"} or len(params["identifier"]) != 1 or not params["identifier"][0]:
        raise InvalidRequest("conditional writes take exactly one criterion: identifier=system|value", expression=query)
    system, sep, value = params["identifier"][0].partition("|")
    if not sep:
        return None, system
    return (system or None), value


class WriteService:
    def __init__(self, store: ResourceStore, validator: Validator) -> None:
        self.store = store
        self.validator = validator

    # -- helpers -----------------------------------------------------------------------------------------------
    @contextmanager
    def _audited(
        self, caller: Caller, action: str, res_type: str, res_id: str | None, remote: str | None
    ) -> Iterator[Connection]:
        try:
            with self.store.write_tx() as conn:
                yield conn
        except RorError as exc:
            audit.failure(
                self.store.engine, caller, exc, action=action, res_type=res_type, res_id=res_id, remote_addr=remote
            )
            raise

    def _validate(self, conn: Connection, res: dict[str, Any], res_id: str | None) -> ValidationResult:
        result = self.validator.validate(res, res_id=res_id, conn=conn)
        result.raise_for_errors()
        return result

    @staticmethod
    def _record(conn: Connection, caller: Caller, action: str, stored: Stored, remote: str | None) -> None:
        audit.record(
            conn,
            actor_type=caller.kind,
            actor_id=caller.subject,
            action=action,
            outcome="success",
            res_type=stored.res_type,
            res_id=stored.res_id,
            version_id=stored.version_id,
            remote_addr=remote,
        )

    def find_by_identifier(self, conn: Connection, res_type: str, system: str | None, value: str) -> list[str]:
        t = idx_token
        q = (
            select(resource.c.res_id)
            .select_from(t.join(resource, resource.c.pk == t.c.resource_pk))
            .where(
                t.c.res_type == res_type, t.c.param == "identifier", t.c.code == value, resource.c.deleted.is_(False)
            )
        )
        if system is not None:
            q = q.where(t.c.system == system)
        return sorted(set(conn.execute(q).scalars()))

    # -- use cases ---------------------------------------------------------------------------------------------
    def create(
        self, caller: Caller, res: Any, *, if_none_exist: str | None = None, remote: str | None = None
    ) -> WriteResult:
        res_type = str(res.get("resourceType")) if isinstance(res, dict) else "Resource"
        with self._audited(caller, "create", res_type, None, remote) as conn:
            self.validator.validate(res, conn=conn, only=set()).raise_for_errors()  # structure first (400)
            check_writable(res_type)
            if if_none_exist:
                system, value = parse_identifier_criteria(if_none_exist)
                found = self.find_by_identifier(conn, res_type, system, value)
                if len(found) > 1:
                    raise MultipleMatches(f"If-None-Exist matches {len(found)} resources", expression="If-None-Exist")
                if found:
                    return WriteResult(self.store.read(res_type, found[0], conn=conn), unchanged=True)
            body = {k: v for k, v in res.items() if k != "id"}
            authorise(conn, caller, body, creating_task=res_type == "Task")
            result = self._validate(conn, body, None)
            stored = self.store.create(body, author=caller.subject, conn=conn)
            self._record(conn, caller, "create", stored, remote)
            return WriteResult(stored, True, result.warning_issues())

    def update(
        self,
        caller: Caller,
        res_type: str,
        res_id: str,
        res: Any,
        *,
        if_match: int | None = None,
        remote: str | None = None,
        method: str = "PUT",
        action: str = "update",
    ) -> WriteResult:
        with self._audited(caller, action, res_type, res_id, remote) as conn:
            self.validator.validate(res, conn=conn, only=set()).raise_for_errors()
            check_writable(res_type)
            current = self._current(conn, res_type, res_id)
            if current is not None:
                if if_match is not None and if_match != current.version_id:
                    raise PreconditionFailed(
                        f"{res_type}/{res_id} is at version {current.version_id}, If-Match asked for {if_match}",
                        expression=res_type,
                    )
                authorise(conn, caller, current.resource())  # the establishment it belongs to now…
            elif if_match is not None:
                raise PreconditionFailed(f"{res_type}/{res_id} does not exist (If-Match given)", expression=res_type)
            authorise(conn, caller, res, creating_task=current is None and res_type == "Task")  # …and after
            result = self._validate(conn, res, res_id)
            stored, created = self.store.update(
                res_type, res_id, res, if_match=if_match, author=caller.subject, conn=conn, method=method
            )
            self._record(conn, caller, "create" if created else action, stored, remote)
            return WriteResult(stored, created, result.warning_issues())

    def conditional_update(
        self, caller: Caller, res_type: str, query: str, res: Any, *, remote: str | None = None
    ) -> WriteResult:
        system, value = parse_identifier_criteria(query)
        with self.store.read_conn() as conn:
            found = self.find_by_identifier(conn, res_type, system, value)
        if len(found) > 1:
            raise MultipleMatches(f"{res_type}?{query} matches {len(found)} resources", expression=query)
        if not found:
            if isinstance(res, dict) and res.get("resourceType") != res_type:
                raise InvalidRequest("resourceType does not match the URL", expression="resourceType")
            return self.create(caller, res, remote=remote)
        if isinstance(res, dict) and res.get("id") not in (None, found[0]):
            raise InvalidRequest(f"id {res.get('id')!r} does not match {res_type}/{found[0]}", expression="id")
        return self.update(caller, res_type, found[0], res, remote=remote)

    def patch(
        self,
        caller: Caller,
        res_type: str,
        res_id: str,
        transform: Transform,
        *,
        if_match: int | None = None,
        remote: str | None = None,
    ) -> WriteResult:
        """Apply `transform` (a FHIRPath Patch or JSON Patch) to the current version and store it as an update."""
        with self._audited(caller, "patch", res_type, res_id, remote) as conn:
            check_writable(res_type)
            current = self.store.read(res_type, res_id, conn=conn)
            authorise(conn, caller, current.resource())  # before applying: a refused caller learns nothing
            if if_match is not None and if_match != current.version_id:
                raise PreconditionFailed(
                    f"{res_type}/{res_id} is at version {current.version_id}, If-Match asked for {if_match}",
                    expression=res_type,
                )
            patched = transform(copy.deepcopy(current.resource()))
            if patched.get("resourceType") != res_type or patched.get("id") != res_id:
                raise InvalidRequest("a patch may not change resourceType or id", expression=f"{res_type}.id")
        return self.update(
            caller,
            res_type,
            res_id,
            patched,
            if_match=current.version_id,
            remote=remote,
            method="PATCH",
            action="patch",
        )

    def delete(
        self, caller: Caller, res_type: str, res_id: str, *, if_match: int | None = None, remote: str | None = None
    ) -> WriteResult:
        """HealthcareService and Location are closed (a new version), other types are deleted (later reads 410)."""
        check_writable(res_type)
        if res_type in closure.CLOSED_TYPES:
            current = self.store.read(res_type, res_id)
            if closure.is_closed(current.resource()):
                return WriteResult(current, unchanged=True)
            closed = closure.close(current.resource(), utcnow().date())
            return self.update(
                caller, res_type, res_id, closed, if_match=if_match, remote=remote, method="DELETE", action="close"
            )
        with self._audited(caller, "delete", res_type, res_id, remote) as conn:
            current = self.store.read(res_type, res_id, conn=conn)
            authorise(conn, caller, current.resource())
            stored = self.store.delete(res_type, res_id, if_match=if_match, author=caller.subject, conn=conn)
            if stored is None:
                stored = current
            self._record(conn, caller, "delete", stored, remote)
            return WriteResult(stored, deleted=True)

    def _current(self, conn: Connection, res_type: str, res_id: str) -> Stored | None:
        try:
            return self.store.read(res_type, res_id, conn=conn)
        except RorError as exc:
            if exc.status in (404, 410):
                return None
            raise
