"""Anomalies as RORTask resources (docs/ror-fhir-api.md §1, IG example RORTaskExemple): one Task per rule × object,
with a deterministic id so that a re-run updates instead of duplicating, and closed (completed, « Corrigé ») when
its anomaly disappears. Searchable through `GET /fhir/Task` (identifier, status, code, focus, `_tag` = région,
département or rule)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select

from ror.db.tables import resource
from ror.directory import ids
from ror.directory.scope import Scope
from ror.quality.model import Check, Rule
from ror.search.normalise import fhir_instant
from ror.store import ResourceStore
from ror.store.meta import REGION_SYSTEM

PROFILE = ids.SD + "ror-task"
ANOMALY_SYSTEM = "https://ror.invalid/fhir/quality/anomaly"  # Task.identifier: <rule>/<type>/<id>
RULE_TAG = "https://ror.invalid/fhir/CodeSystem/quality-rule"
DEPARTEMENT_TAG = "https://ror.invalid/fhir/CodeSystem/departement"
INPUT_SYSTEM = ids.IG + "/CodeSystem/input-task-ror-codesystem"
TRE_R349 = ids.nos("TRE_R349-ActionAnomalie")
TRE_R350 = ids.nos("TRE_R350-ThematiqueAnomalie")
TRE_R352 = ids.nos("TRE_R352-StatutMetierAnomalie")
THEMES = {"01": "Complétude", "02": "Exhaustivité", "03": "Cohérence", "04": "Récence", "05": "Structuration",
          "06": "Exactitude"}  # fmt: skip
ACTIONS = {"AJO": "Ajout", "COR": "Correction", "SUP": "Suppression"}
OPEN, CLOSED = "ready", "completed"
TO_PROCESS, CORRECTED = ("02", "A traiter"), ("08", "Corrigé")
REQUESTER = "ROR-QUALITE"
BATCH = 500


def task_id(rule: str, focus_type: str, focus_id: str) -> str:
    return "qa-" + hashlib.sha1(f"{rule}|{focus_type}|{focus_id}".encode()).hexdigest()[:32]


@dataclass
class TaskCounts:
    opened: int = 0  # new anomalies (or reopened)
    kept: int = 0  # still there, unchanged
    updated: int = 0  # still there, details changed
    closed: int = 0  # gone since the last run


def _input(code: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": {"coding": [{"system": INPUT_SYSTEM, "code": code}]}, **value}


def _focus(c: Check) -> dict[str, Any]:
    if c.focus_id.startswith("finess:"):
        return {"type": c.focus_type, "identifier": {"system": ids.FINESS, "value": c.focus_finess or c.focus_id[7:]}}
    return {"reference": f"{c.focus_type}/{c.focus_id}"}


def build_task(c: Check, rule: Rule, status: str, authored: str, modified: str) -> dict[str, Any]:
    business = TO_PROCESS if status == OPEN else CORRECTED
    tags = [{"system": RULE_TAG, "code": rule.id, "display": rule.title}]
    if c.region:
        tags.insert(0, {"system": REGION_SYSTEM, "code": c.region})
    if c.departement:
        tags.append({"system": DEPARTEMENT_TAG, "code": c.departement})
    inputs = [_input("ruleErrorId", {"valueString": rule.id})]
    if c.error_value is not None:
        inputs.append(_input("errorValue", {"valueString": c.error_value}))
    if c.proposed_value is not None:
        inputs.append(_input("proposedValue", {"valueString": c.proposed_value}))
    if c.path:
        inputs.append(
            _input("pathElementError", {"valueExpression": {"language": "text/fhirpath", "expression": c.path}})
        )
    inputs.append(_input("systemRequester", {"valueString": REQUESTER}))
    return {
        "resourceType": "Task",
        "id": task_id(c.rule, c.focus_type, c.focus_id),
        "meta": {"profile": [PROFILE], "tag": tags},
        "identifier": [{"system": ANOMALY_SYSTEM, "value": f"{c.rule}/{c.focus_type}/{c.focus_id}"}],
        "status": status,
        "businessStatus": {"coding": [{"system": TRE_R352, "code": business[0], "display": business[1]}]},
        "intent": "order",
        "code": {"coding": [{"system": TRE_R350, "code": rule.theme, "display": THEMES[rule.theme]}]},
        "reasonCode": {"coding": [{"system": TRE_R349, "code": rule.action, "display": ACTIONS[rule.action]}]},
        "description": f"{rule.id} — {rule.title} : {c.message}".strip(),
        "focus": _focus(c),
        "authoredOn": authored,
        "lastModified": modified,
        "input": inputs,
    }


def _existing(store: ResourceStore, scope: Scope, rules: set[str]) -> dict[str, dict[str, Any]]:
    """Tasks this engine wrote for `rules` in `scope` (id -> content)."""
    q = select(resource.c.res_id, resource.c.region, resource.c.content).where(
        resource.c.res_type == "Task", resource.c.res_id.like("qa-%"), resource.c.deleted.is_(False)
    )
    if scope.kind == "region":
        q = q.where(resource.c.region == scope.code)
    out: dict[str, dict[str, Any]] = {}
    with store.read_conn() as conn:
        for rid, _region, content in conn.execute(q.execution_options(yield_per=2000)):
            task = orjson.loads(content)
            tags = {(t.get("system"), t.get("code")) for t in (task.get("meta") or {}).get("tag") or []}
            rule = next((code for system, code in tags if system == RULE_TAG), None)
            if rule not in rules:
                continue
            if scope.kind == "departement" and (DEPARTEMENT_TAG, scope.code) not in tags:
                continue
            out[rid] = task
    return out


def sync_tasks(
    store: ResourceStore, scope: Scope, rules: dict[str, Rule], anomalies: Iterable[Check], now: datetime
) -> TaskCounts:
    """Write the anomalies of the rules that ran (`rules`) and close their tasks that no longer apply."""
    stamp = fhir_instant(now)
    existing = _existing(store, scope, set(rules))
    counts = TaskCounts()
    batch: list[dict[str, Any]] = []
    seen: set[str] = set()

    def flush() -> None:
        if batch:
            store.bulk_upsert(batch, author="quality", method="PUT")
            batch.clear()

    for c in anomalies:
        tid = task_id(c.rule, c.focus_type, c.focus_id)
        if tid in seen:
            continue
        seen.add(tid)
        old = existing.get(tid)
        if old is None or old.get("status") != OPEN:
            authored = stamp if old is None else old.get("authoredOn", stamp)
            batch.append(build_task(c, rules[c.rule], OPEN, authored, stamp))
            counts.opened += 1
        else:
            task = build_task(c, rules[c.rule], OPEN, old["authoredOn"], old["lastModified"])
            same = {k: v for k, v in task.items() if k != "meta"} == {k: v for k, v in old.items() if k != "meta"}
            if not same:
                task["lastModified"] = stamp
                counts.updated += 1
                batch.append(task)
            else:
                counts.kept += 1
        if len(batch) >= BATCH:
            flush()
    for tid, old in existing.items():
        if tid in seen or old.get("status") != OPEN:
            continue
        closed = {k: v for k, v in old.items() if k != "meta"}
        closed["meta"] = {"profile": [PROFILE], "tag": (old.get("meta") or {}).get("tag") or []}
        closed["status"] = CLOSED
        closed["businessStatus"] = {"coding": [{"system": TRE_R352, "code": CORRECTED[0], "display": CORRECTED[1]}]}
        closed["lastModified"] = stamp
        batch.append(closed)
        counts.closed += 1
        if len(batch) >= BATCH:
            flush()
    flush()
    return counts
