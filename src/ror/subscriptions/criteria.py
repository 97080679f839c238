"""Which writes a subscription's criteria select.

* Store types (Location, HealthcareService, Organization): the criteria is a FHIR search; it is compiled by the
  search compiler and run, inside the writing transaction, against the resources just written (`pk IN (…)`):
  every search parameter of `/fhir/metadata` works, capacity criteria included (the capacity projection observer
  runs first). A deletion matches when the criteria holds nothing but the region tag.
* Module types (Flag from ror.tension, MeasureReport from ror.urgences): the writer gives the facts of the event
  (region, subject, code…) and each criteria parameter must match one of them."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy import Connection, and_, select

from ror.access.context import hide_sensitive
from ror.access.policy import RULES, Profile
from ror.db.tables import resource
from ror.errors import InvalidRequest
from ror.search.query import SearchQuery
from ror.search.sql import Compiler
from ror.store.meta import REGION_SYSTEM
from ror.subscriptions.model import MODULE_TYPES, Subscription, criteria_items

ParseFn = Callable[[str, list[tuple[str, str]]], SearchQuery]
RESULT_PARAMS = ("_count", "_sort", "_include", "_revinclude", "_elements", "_summary", "_total", "_cursor")
MODULE_PARAMS: dict[str, tuple[str, ...]] = {
    "Flag": ("_tag", "subject", "code", "status", "escalation", "departement"),
    "MeasureReport": ("_tag", "subject", "departement"),
}
Facts = Mapping[str, set[str]]


def region_facts(region: str | None) -> set[str]:
    return {region, f"{REGION_SYSTEM}|{region}"} if region else set()


class Matcher:
    def __init__(self, parse: ParseFn, sqlite: bool) -> None:
        self.parse = parse
        self.compiler = Compiler(sqlite)
        self._cache: dict[str, SearchQuery] = {}

    def check(self, res_type: str, criteria: str) -> None:
        """Raise InvalidRequest (400) when the criteria cannot be served."""
        items = criteria_items(criteria)
        for name, _ in items:
            if name in RESULT_PARAMS:
                raise InvalidRequest(f"{name} has no meaning in a criteria", expression="Subscription.criteria")
        if res_type in MODULE_TYPES:
            for name, _ in items:
                if name not in MODULE_PARAMS[res_type]:
                    allowed = ", ".join(MODULE_PARAMS[res_type])
                    raise InvalidRequest(
                        f"{res_type} criteria accept {allowed}; not {name!r}", expression="Subscription.criteria"
                    )
            return
        self.query(criteria)

    def query(self, criteria: str) -> SearchQuery:
        q = self._cache.get(criteria)
        if q is None:
            res_type = criteria.partition("?")[0]
            q = self.parse(res_type, criteria_items(criteria))
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[criteria] = q
        return q

    def store_matches(self, conn: Connection, sub: Subscription, pks: list[int]) -> set[int]:
        """Which of the live resources `pks` (just written) the criteria selects, as the subscriber may see them."""
        q = self.query(sub.criteria)
        outer = resource.alias("r")
        cond = and_(self.compiler.where(q.nodes, outer, sub.res_type), outer.c.deleted.is_(False))
        if not RULES[Profile(sub.profile)].sensitive_units:
            cond = and_(cond, hide_sensitive(outer, sub.res_type))
        found: set[int] = set()
        for start in range(0, len(pks), 500):
            chunk = pks[start : start + 500]
            found.update(conn.execute(select(outer.c.pk).where(cond, outer.c.pk.in_(chunk))).scalars())
        return found


def facts_match(items: list[tuple[str, str]], facts: Facts) -> bool:
    """Every criteria parameter must match one of the event's facts (comma = OR)."""
    for name, value in items:
        wanted = {v for v in value.split(",") if v}
        if wanted and not wanted & facts.get(name, set()):
            return False
    return True


def deletion_matches(sub: Subscription, region: str | None) -> bool:
    items = sub.items
    return all(name == "_tag" for name, _ in items) and facts_match(items, {"_tag": region_facts(region)})


__all__ = ["Facts", "Matcher", "ParseFn", "deletion_matches", "facts_match", "region_facts"]
