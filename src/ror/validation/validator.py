"""Runs the rule table on one resource. Database lookups (references, identifier uniqueness) use the writer's
connection when one is given, so a check sees what the transaction sees."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select

from ror.db.tables import idx_token, resource
from ror.errors import InvalidRequest, UnknownCode
from ror.geo.service import Geography
from ror.search.fhirpath import evaluate
from ror.terminology.service import Terminology
from ror.validation import checks
from ror.validation.model import Finding, ValidationResult
from ror.validation.rules import ALL_RULES, Binding, Cardinality, Check, Rule
from ror.validation.structure import check_structure


class DbLookups:
    def __init__(self, conn: Connection, terminology: Terminology | None, geography: Geography | None) -> None:
        self.conn = conn
        self.terminology = terminology
        self.geography = geography

    def exists(self, res_type: str, res_id: str) -> bool:
        row = self.conn.execute(
            select(resource.c.pk).where(
                resource.c.res_type == res_type, resource.c.res_id == res_id, resource.c.deleted.is_(False)
            )
        ).first()
        return row is not None

    def same_identifier(self, res_type: str, system: str | None, value: str) -> list[dict[str, Any]]:
        t = idx_token
        rows = self.conn.execute(
            select(resource.c.content)
            .select_from(t.join(resource, resource.c.pk == t.c.resource_pk))
            .where(
                t.c.res_type == res_type,
                t.c.param == "identifier",
                t.c.code == value,
                resource.c.deleted.is_(False),
            )
            .distinct()
            .limit(20)
        ).scalars()
        out = []
        for content in rows:
            res = orjson.loads(content)
            if any(
                isinstance(i, dict) and i.get("value") == value and i.get("system") == system
                for i in res.get("identifier") or []
            ):
                out.append(res)
        return out

    def commune_known(self, code: str) -> bool | None:
        if self.geography is None or not self.geography.loaded:
            return None
        return self.geography.commune(code) is not None

    def validate_code(self, value_set: str, system: str | None, code: str) -> object:
        if self.terminology is None:
            return None
        return self.terminology.validate(value_set, system, code)


def _codings(node: Any) -> list[Any]:
    if isinstance(node, dict) and "coding" in node:
        return node.get("coding") or []
    return [node]


class Validator:
    def __init__(self, engine: Engine, terminology: Terminology | None, geography: Geography | None) -> None:
        self.engine = engine
        self.terminology = terminology
        self.geography = geography

    @staticmethod
    def rules(res_type: str | None = None) -> list[Rule]:
        return [r for r in ALL_RULES if res_type is None or r.resource in (res_type, "*")]

    def validate(
        self,
        res: Any,
        *,
        res_id: str | None = None,
        conn: Connection | None = None,
        only: set[str] | None = None,
    ) -> ValidationResult:
        """All findings for `res` (None for `res_id` on a creation). `only` restricts to some rule ids (tests)."""
        structural = check_structure(res)
        if structural:
            return ValidationResult(structural)
        if conn is None:
            with self.engine.connect() as c:
                return self._run(res, res_id, c, only)
        return self._run(res, res_id, conn, only)

    def _run(
        self, res: dict[str, Any], res_id: str | None, conn: Connection, only: set[str] | None
    ) -> ValidationResult:
        rt = res["resourceType"]
        lookups = DbLookups(conn, self.terminology, self.geography)
        ctx = checks.Context(res, rt, res_id, lookups)
        findings: list[Finding] = []
        for rule in self.rules(rt):
            if only is not None and rule.id not in only:
                continue
            if isinstance(rule, Cardinality):
                findings += self._cardinality(rule, res)
            elif isinstance(rule, Binding):
                findings += self._binding(rule, res, lookups)
            elif isinstance(rule, Check):
                findings += checks.FUNCTIONS[rule.function](rule, ctx)
        return ValidationResult(findings)

    @staticmethod
    def _cardinality(rule: Cardinality, res: dict[str, Any]) -> list[Finding]:
        contexts = [res] if rule.context is None else evaluate(res, rule.context)
        out = []
        for i, node in enumerate(contexts):
            n = len(evaluate(node, rule.expression))
            if n < rule.min or (rule.max is not None and n > rule.max):
                where = rule.expression if rule.context is None else f"{rule.context}.{rule.expression}"
                if rule.context is not None and len(contexts) > 1:
                    where = f"{rule.context}[{i}].{rule.expression}"
                card = f"{rule.min}..{'*' if rule.max is None else rule.max}"
                code = "required" if n < rule.min else "structure"
                out.append(Finding(rule.id, rule.severity, code, where, f"{where}: {card} expected, found {n}"))
        return out

    def _binding(self, rule: Binding, res: dict[str, Any], lookups: DbLookups) -> list[Finding]:
        out: list[Finding] = []
        if self.terminology is None:
            return out
        for node in evaluate(res, rule.expression):
            codings = _codings(node)
            if not codings:
                out.append(Finding(rule.id, rule.severity, "required", rule.expression, "a coding is required"))
            for coding in codings:
                if not isinstance(coding, dict) or not coding.get("code"):
                    out.append(Finding(rule.id, rule.severity, "required", rule.expression, "a code is required"))
                    continue
                try:
                    lookups.validate_code(rule.value_set, coding.get("system"), str(coding["code"]))
                except UnknownCode as exc:
                    if "value set" in exc.diagnostics and "is not known" in exc.diagnostics:
                        out.append(
                            Finding(
                                rule.id, "warning", "informational", rule.expression, f"not checked: {exc.diagnostics}"
                            )
                        )
                    else:
                        out.append(Finding(rule.id, rule.severity, "code-invalid", rule.expression, exc.diagnostics))
                except InvalidRequest as exc:
                    out.append(Finding(rule.id, rule.severity, "code-invalid", rule.expression, exc.diagnostics))
        return out
