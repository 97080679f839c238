"""Indicator snapshots in `quality_indicator` (migration 0007): weekly counts per rule × territory (kind `rule`,
period `2026-W48`, code `<rule>:perimetre` / `<rule>:ecarts`) and quarterly population counts (kind `population`,
period `2026-Q4`, code `perimetre` / `finalise` / `en_cours` / `a_faire`). A re-run in the same period replaces
that period's rows of the scope; earlier periods stay (the history)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, and_, delete, insert, or_, select

from ror.db.tables import quality_indicator
from ror.directory.scope import Scope
from ror.quality.model import RuleResult
from ror.quality.population import A_FAIRE, EN_COURS, FINALISE, EstablishmentPopulation

NATION = ("nation", "FR")


def week(at: datetime) -> str:
    y, w, _ = at.isocalendar()
    return f"{y}-W{w:02d}"


def quarter(at: datetime) -> str:
    return f"{at.year}-Q{(at.month - 1) // 3 + 1}"


def _territories(region: str | None, departement: str | None, scope: Scope) -> list[tuple[str, str]]:
    out = []
    if departement:
        out.append(("departement", departement))
    if region and scope.kind != "departement":
        out.append(("region", region))
    if scope.kind == "national":
        out.append(NATION)
    return out


def _replace(
    engine: Engine,
    kind: str,
    period: str,
    scope: Scope,
    codes: set[str],
    counts: Counter,
    departements: Iterable[str],
    at: datetime,
) -> int:
    q = quality_indicator
    where = [q.c.kind == kind, q.c.period == period, q.c.code.in_(sorted(codes))]
    if scope.kind == "region":
        where.append(
            or_(
                and_(q.c.territory_kind == "region", q.c.territory_code == scope.code),
                and_(q.c.territory_kind == "departement", q.c.territory_code.in_(sorted(set(departements)))),
            )
        )
    elif scope.kind == "departement":
        where.append(and_(q.c.territory_kind == "departement", q.c.territory_code == scope.code))
    rows = [
        {"kind": kind, "period": period, "code": code, "territory_kind": tk, "territory_code": tc, "value": v,
         "computed_at": at}
        for (code, tk, tc), v in sorted(counts.items())
    ]  # fmt: skip
    with engine.begin() as c:
        c.execute(delete(q).where(*where))
        if rows:
            c.execute(insert(q), rows)
    return len(rows)


def store_rule_counts(
    engine: Engine, scope: Scope, results: list[RuleResult], at: datetime, departements: Iterable[str] = ()
) -> int:
    counts: Counter[tuple[str, str, str]] = Counter()
    codes: set[str] = set()
    for r in results:
        if r.status != "ok":
            continue
        codes |= {f"{r.rule.id}:perimetre", f"{r.rule.id}:ecarts"}
        for c in r.checks:
            for tk, tc in _territories(c.region, c.departement, scope):
                counts[(f"{r.rule.id}:perimetre", tk, tc)] += 1
                if not c.ok:
                    counts[(f"{r.rule.id}:ecarts", tk, tc)] += 1
    return _replace(engine, "rule", week(at), scope, codes, counts, departements, at)


def store_population(
    engine: Engine, scope: Scope, egs: list[EstablishmentPopulation], at: datetime, departements: Iterable[str] = ()
) -> int:
    counts: Counter[tuple[str, str, str]] = Counter()
    for e in egs:
        for tk, tc in _territories(e.region, e.departement, scope):
            counts[("perimetre", tk, tc)] += 1
            counts[(e.status, tk, tc)] += 1
    return _replace(engine, "population", quarter(at), scope, {"perimetre", FINALISE, EN_COURS, A_FAIRE}, counts,
                    departements, at)  # fmt: skip


def read(engine: Engine, kind: str, period: str | None = None) -> list[dict]:
    q = quality_indicator
    stmt = select(q).where(q.c.kind == kind)
    if period:
        stmt = stmt.where(q.c.period == period)
    with engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(stmt.order_by(q.c.period, q.c.territory_kind, q.c.territory_code))]
