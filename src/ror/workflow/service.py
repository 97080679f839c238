"""Drafts of offer/structure changes and their transitions (tables `offer_change`, `offer_change_transition`).
A draft is a whole FHIR resource; publishing writes it through the write service (rights, profile validation,
store, audit) with If-Match on the version the draft started from, so a concurrent change is not overwritten."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update

from ror.access import audit
from ror.access.people import Person
from ror.db.tables import offer_change, offer_change_transition, resource
from ror.directory import ids
from ror.errors import NotFound, RorError
from ror.search.normalise import utcnow
from ror.store.meta import region_tag
from ror.validation import ValidationResult
from ror.workflow import rules
from ror.write.service import WriteService

ACTIONS = tuple(rules.TARGET)
EDITABLE_TYPES = ("HealthcareService", "Location", "Organization")


class WorkflowError(RorError):
    status, code = 409, "business-rule"


class NotAllowed(RorError):
    status, code = 403, "forbidden"


@dataclass(frozen=True)
class Change:
    pk: int
    res_type: str
    res_id: str
    establishment: str
    status: str
    content: dict[str, Any]
    base_version: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime

    @property
    def label(self) -> str:
        return rules.LABELS[self.status]

    @property
    def name(self) -> str:
        return str(self.content.get("name") or f"{self.res_type}/{self.res_id}")


@dataclass(frozen=True)
class Transition:
    from_status: str | None
    to_status: str
    actor: str
    at: datetime
    comment: str | None


def _change(row: Any) -> Change:
    return Change(
        row.pk,
        row.res_type,
        row.res_id,
        row.establishment or "",
        row.status,
        orjson.loads(row.content),
        row.base_version,
        row.created_by,
        row.created_at,
        row.updated_at,
    )


class WorkflowService:
    def __init__(self, writes: WriteService) -> None:
        self.writes = writes
        self.store = writes.store
        self.engine = writes.store.engine

    # -- reading ---------------------------------------------------------------------------------------------
    def region_of(self, finess: str, conn: Connection | None = None) -> str | None:
        q = select(resource.c.region, resource.c.content).where(
            resource.c.res_type == "Organization", resource.c.res_id == ids.eg_id(finess)
        )
        if conn is None:
            with self.engine.connect() as c:
                row = c.execute(q).first()
        else:
            row = conn.execute(q).first()
        if row is None:
            return None
        return row.region or region_tag(orjson.loads(row.content))

    def get(self, pk: int) -> Change:
        with self.engine.connect() as c:
            row = c.execute(select(offer_change).where(offer_change.c.pk == pk)).first()
        if row is None:
            raise NotFound(f"change {pk} is not known", expression="offer_change")
        return _change(row)

    def transitions(self, pk: int) -> list[Transition]:
        with self.engine.connect() as c:
            rows = c.execute(
                select(offer_change_transition)
                .where(offer_change_transition.c.change_pk == pk)
                .order_by(offer_change_transition.c.pk)
            ).all()
        return [Transition(r.from_status, r.to_status, r.actor, r.at, r.comment) for r in rows]

    def open_changes(self, res_type: str, res_id: str) -> list[Change]:
        with self.engine.connect() as c:
            rows = c.execute(
                select(offer_change).where(
                    offer_change.c.res_type == res_type,
                    offer_change.c.res_id == res_id,
                    offer_change.c.status != rules.PUBLIE,
                )
            ).all()
        return [_change(r) for r in rows]

    def pending_for(self, person: Person) -> dict[str, list[Change]]:
        """What awaits this person, by kind: drafts to finish, changes to review, changes to publish."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(offer_change).where(offer_change.c.status != rules.PUBLIE).order_by(offer_change.c.updated_at)
            ).all()
        out: dict[str, list[Change]] = {"brouillons": [], "relecture": [], "validation": []}
        regions: dict[str, str | None] = {}
        for row in rows:
            ch = _change(row)
            region = regions.setdefault(ch.establishment, self.region_of(ch.establishment))
            if ch.status in (rules.BROUILLON, rules.REJETE) and (
                ch.created_by == person.subject or rules.is_author(person, ch.establishment, region)
            ):
                if rules.is_author(person, ch.establishment, region):
                    out["brouillons"].append(ch)
            elif ch.status == rules.SOUMIS and rules.is_regional_team(person, region):
                out["relecture"].append(ch)
            elif ch.status == rules.VALIDE and rules.is_head(person, ch.establishment):
                out["validation"].append(ch)
        return out

    def companions(self, change: Change) -> list[Change]:
        """Open changes of the places (Location) an offer change delivers at, at the same step: a new place proposed
        with its offer (the offer forms) moves through the workflow with it and is published just before it."""
        if change.res_type != "HealthcareService":
            return []
        refs = [
            ref["reference"].split("/", 1)[1]
            for ref in change.content.get("location") or []
            if isinstance(ref, dict) and str(ref.get("reference", "")).startswith("Location/")
        ]
        if not refs:
            return []
        with self.engine.connect() as c:
            rows = c.execute(
                select(offer_change)
                .where(
                    offer_change.c.res_type == "Location",
                    offer_change.c.res_id.in_(refs),
                    offer_change.c.establishment == change.establishment,
                    offer_change.c.status == change.status,
                )
                .order_by(offer_change.c.pk)
            ).all()
        return [_change(r) for r in rows]

    def validate(self, change: Change) -> ValidationResult:
        """Profile validation of the proposed resource; a reference to a place proposed with the offer (a companion
        change, not yet published) is not an error."""
        result = self.writes.validator.validate(change.content, res_id=change.res_id)
        pending = {c.res_id for c in self.companions(change)}
        if pending:
            refs = change.content.get("location") or []
            excused = {
                f"HealthcareService.location[{i}].reference"
                for i, ref in enumerate(refs)
                if isinstance(ref, dict) and str(ref.get("reference", "")).removeprefix("Location/") in pending
            }
            result.findings = [
                f for f in result.findings if not (f.rule == "reference-resolves" and f.expression in excused)
            ]
        return result

    # -- writing ---------------------------------------------------------------------------------------------
    def create_draft(
        self,
        person: Person,
        finess: str,
        content: dict[str, Any],
        *,
        res_id: str | None = None,
        comment: str | None = None,
    ) -> Change:
        """A draft for a new resource (res_id None) or a change of a published one (starting from its version)."""
        res_type = str(content.get("resourceType"))
        if res_type not in EDITABLE_TYPES:
            raise WorkflowError(f"{res_type} changes are not handled by the workflow", expression="resourceType")
        region = self.region_of(finess)
        if not rules.is_author(person, finess, region):
            raise NotAllowed(f"{person.email} may not propose changes for establishment {finess}")
        base: int | None = None
        if res_id is not None:
            base = self.store.read(res_type, res_id).version_id
        else:
            res_id = str(uuid.uuid4())
        now = utcnow()
        with self.engine.begin() as c:
            pk = c.execute(
                insert(offer_change)
                .values(
                    res_type=res_type,
                    res_id=res_id,
                    establishment=finess,
                    status=rules.BROUILLON,
                    content=orjson.dumps({**content, "id": res_id}).decode(),
                    base_version=base,
                    created_by=person.subject,
                    created_at=now,
                    updated_at=now,
                )
                .returning(offer_change.c.pk)
            ).scalar_one()
            self._transition_row(c, pk, None, rules.BROUILLON, person, comment, res_type, res_id)
        return self.get(pk)

    def edit_draft(self, person: Person, pk: int, content: dict[str, Any]) -> Change:
        ch = self.get(pk)
        if ch.status != rules.BROUILLON:
            raise WorkflowError(f"only a draft can be edited (this change is {ch.status})")
        if not rules.is_author(person, ch.establishment, self.region_of(ch.establishment)):
            raise NotAllowed(f"{person.email} may not edit this draft")
        if content.get("resourceType") != ch.res_type:
            raise WorkflowError("a draft keeps its resource type", expression="resourceType")
        with self.engine.begin() as c:
            c.execute(
                update(offer_change)
                .where(offer_change.c.pk == pk)
                .values(content=orjson.dumps({**content, "id": ch.res_id}).decode(), updated_at=utcnow())
            )
        return self.get(pk)

    def act(self, person: Person, pk: int, action: str, comment: str | None = None) -> Change:
        """Apply a transition. A submission needs a resource without profile errors; a rejection needs a comment;
        publishing writes the resource (If-Match on the starting version: 412 when it changed meanwhile)."""
        ch = self.get(pk)
        if action not in rules.TARGET:
            raise WorkflowError(f"unknown action {action!r}")
        region = self.region_of(ch.establishment)
        if not rules.allowed(person, action, ch.status, ch.establishment, region):
            raise NotAllowed(
                f"{person.role_info.label} may not {rules.ACTION_LABELS[action].lower()} a change that is {ch.status}"
            )
        if action == "reject" and not (comment or "").strip():
            raise WorkflowError("a rejection needs a comment for the author", expression="comment")
        companions = self.companions(ch)
        if action in ("submit", "review"):
            for c in (ch, *companions):
                self.validate(c).raise_for_errors()
        target = rules.TARGET[action]
        for c in companions:  # the places proposed with the offer take the same step first (their own history rows)
            self._step(
                person,
                c,
                action,
                target,
                region,
                f"avec la modification n° {pk}" + (f" — {comment}" if comment else ""),
            )
        if action == "publish":
            caller = person.caller(ch.establishment, region)
            self.writes.update(
                caller, ch.res_type, ch.res_id, ch.content, if_match=ch.base_version, method="PUT", action="publish"
            )
        with self.engine.begin() as c:
            done = c.execute(
                update(offer_change)
                .where(offer_change.c.pk == pk, offer_change.c.status == ch.status)
                .values(status=target, updated_at=utcnow())
            ).rowcount
            if done != 1:
                raise WorkflowError("the change was modified meanwhile; reload the page")
            self._transition_row(c, pk, ch.status, target, person, comment, ch.res_type, ch.res_id)
        return self.get(pk)

    def _step(self, person: Person, ch: Change, action: str, target: str, region: str | None, comment: str) -> None:
        if action == "publish":
            self.writes.update(
                person.caller(ch.establishment, region),
                ch.res_type,
                ch.res_id,
                ch.content,
                if_match=ch.base_version,
                method="PUT",
                action="publish",
            )
        with self.engine.begin() as c:
            done = c.execute(
                update(offer_change)
                .where(offer_change.c.pk == ch.pk, offer_change.c.status == ch.status)
                .values(status=target, updated_at=utcnow())
            ).rowcount
            if done == 1:
                self._transition_row(c, ch.pk, ch.status, target, person, comment, ch.res_type, ch.res_id)

    @staticmethod
    def _transition_row(
        c: Connection,
        pk: int,
        from_status: str | None,
        to_status: str,
        person: Person,
        comment: str | None,
        res_type: str,
        res_id: str,
    ) -> None:
        c.execute(
            insert(offer_change_transition).values(
                change_pk=pk,
                from_status=from_status,
                to_status=to_status,
                actor=person.subject,
                at=utcnow(),
                comment=(comment or "").strip() or None,
            )
        )
        audit.record(
            c,
            actor_type="person",
            actor_id=person.subject,
            action=f"workflow:{to_status}",
            outcome="success",
            res_type=res_type,
            res_id=res_id,
            detail=f"change {pk}: {from_status or '-'} → {to_status}" + (f" — {comment.strip()}" if comment else ""),
        )
