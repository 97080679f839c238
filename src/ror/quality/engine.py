"""Run the rules of a scope: checks, RORTask anomalies (created / updated / closed), weekly indicators, population
status and its quarterly indicators."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ror.directory.scope import Scope
from ror.errors import InvalidRequest
from ror.quality import indicators
from ror.quality.data import QualityData
from ror.quality.model import NotApplicable, Rule, RuleResult
from ror.quality.population import EstablishmentPopulation, population
from ror.quality.rules import ALL_RULES, RULES_BY_ID
from ror.quality.tasks import TaskCounts, sync_tasks
from ror.search.normalise import utcnow
from ror.store import ResourceStore

Progress = Callable[[str], None]  # called with each rule id once it has run


@dataclass
class QualityRun:
    scope: Scope
    results: list[RuleResult]
    tasks: TaskCounts
    population: list[EstablishmentPopulation] = field(default_factory=list)
    indicator_rows: int = 0
    seconds: float = 0.0


def select_rules(ids: Sequence[str] | None) -> list[Rule]:
    if not ids:
        return list(ALL_RULES)
    unknown = [i for i in ids if i not in RULES_BY_ID]
    if unknown:
        raise InvalidRequest(f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(RULES_BY_ID)}")
    return [RULES_BY_ID[i] for i in ids]


def run_rule(rule: Rule, data: QualityData) -> RuleResult:
    t0 = time.perf_counter()
    try:
        checks = list(rule.run(data))
    except NotApplicable as exc:
        return RuleResult(rule, "not-applicable", str(exc), seconds=time.perf_counter() - t0)
    return RuleResult(rule, "ok", checks=checks, seconds=time.perf_counter() - t0)


def run_quality(
    store: ResourceStore,
    scope: Scope,
    reference: Path | None,
    *,
    rules: Sequence[str] | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,  # naive UTC, for tests
) -> QualityRun:
    t0 = time.perf_counter()
    at = now or utcnow()
    data = QualityData(store.engine, scope, reference, now=at)
    results = []
    for rule in select_rules(rules):
        results.append(run_rule(rule, data))
        if progress:
            progress(rule.id)
    ran = {r.rule.id: r.rule for r in results if r.status == "ok"}
    anomalies = [c for r in results if r.status == "ok" for c in r.anomalies]
    tasks = sync_tasks(store, scope, ran, anomalies, at)
    deps = [d for d, reg in data.departement_regions.items() if scope.kind == "region" and reg == scope.code]
    rows = indicators.store_rule_counts(store.engine, scope, results, at, deps)
    egs = population(data)
    rows += indicators.store_population(store.engine, scope, egs, at, deps)
    return QualityRun(scope, results, tasks, egs, rows, time.perf_counter() - t0)
