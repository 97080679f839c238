"""Compile a parsed search (query.py) into SQL over the resource table and the index tables.

Every criterion is an EXISTS on an index table correlated to the outer resource, so AND/OR/NOT compose freely;
criteria on parameters of the same `group` (e.g. the capacity indicator) that are AND-ed at the top level are
compiled into one EXISTS joining their index rows on the same group number: they must match the same indicator."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select, true
from sqlalchemy.sql.selectable import FromClause

from ror.db.tables import (
    capacity,
    idx_date,
    idx_geo,
    idx_number,
    idx_quantity,
    idx_reference,
    idx_string,
    idx_token,
    resource,
)
from ror.directory import ids
from ror.errors import InvalidRequest
from ror.search.aliases import alias
from ror.search.extract import CODE_MAX
from ror.search.geo import bounding_box, distance_sql
from ror.search.normalise import date_range, norm_text, utcnow
from ror.search.query import BoolNode, Chain, Criterion, Has, Node, Value
from ror.search.registry import SearchParam

# capacity search parameter → (column of the capacity projection, its code system)
CAPACITY_COLUMNS: dict[str, tuple[str, str | None]] = {
    "capacity-type": ("nature", ids.TRE_R329),
    "capacity-status": ("status", ids.TRE_R330),
    "temporality-capacity": ("temporality", ids.TRE_R331),
    "gender-capacity-available": ("gender", ids.TRE_R332),
    "capacity-closing-type": ("closing_type", ids.TRE_R333),
    "additional-bed-type": ("additional_bed_type", ids.TRE_R334),
    "crisis-type": ("crisis_type", ids.TRE_R336),
    "temporary-assignement": ("temporary_assignment", ids.TRE_R337),
    "capacity-source-type": ("source_type", ids.TRE_R335),
    "nb-capacity": ("nb", None),
    "capacity-update-date": ("updated_at", None),
}

TABLES = {
    "token": idx_token,
    "string": idx_string,
    "uri": idx_string,
    "number": idx_number,
    "quantity": idx_quantity,
    "date": idx_date,
    "reference": idx_reference,
}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def param_rows(table: FromClause, p: SearchParam) -> ColumnElement[bool]:
    """The index rows of parameter `p`: its own, and those of the parameters it includes (`address` reads the
    `address-city` and `address-postalcode` rows, search.registry)."""
    return table.c.param == p.code if not p.includes else table.c.param.in_(p.row_params)


def _param_is(table: FromClause, c: Criterion) -> ColumnElement[bool]:
    """The index rows of criterion `c` (`:of-type` has rows of its own, search.extract)."""
    if c.modifier == "of-type":
        return table.c.param == "identifier:of-type"
    return param_rows(table, c.param) if c.param is not None else table.c.param == c.name


class Compiler:
    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite

    # -- public ------------------------------------------------------------------------------------------------
    def where(
        self, nodes: list[Node], outer: FromClause, res_type: str, *, correlated: bool = False
    ) -> ColumnElement[bool]:
        """The condition for a top-level AND list.

        With criteria, SQLite must drive the query from the (small) `pk IN (…)` sets rather than scan every resource
        of the type: `coalesce(res_type, '')` keeps the type test but stops SQLite from choosing the type index
        (EXPLAIN QUERY PLAN showed a full scan of 120 k Locations for a 177-row answer)."""
        type_test = outer.c.res_type == res_type
        on_resource_columns = all(isinstance(n, Criterion) and n.name in ("_lastUpdated", "_id") for n in nodes)
        if nodes and self.sqlite and not on_resource_columns:
            type_test = func.coalesce(outer.c.res_type, "") == res_type
        return and_(type_test, outer.c.deleted.is_(False), self._and(nodes, outer, res_type, correlated=correlated))

    def _and(
        self, nodes: list[Node], outer: FromClause, res_type: str, *, correlated: bool = False
    ) -> ColumnElement[bool]:
        """AND of nodes, where criteria on one `group` (e.g. capacity) must match the same occurrence, and chains
        through the same reference are merged so that their criteria apply to the same target resource."""
        conds: list[ColumnElement[bool]] = []
        groups: dict[str, list[Criterion]] = {}
        chains: dict[tuple[str, str, bool], list[Chain]] = {}
        for node in nodes:
            if (
                isinstance(node, Criterion)
                and node.param is not None
                and node.param.group
                and node.modifier not in ("missing", "not")
            ):
                groups.setdefault(node.param.group, []).append(node)
            elif isinstance(node, Chain):
                chains.setdefault((node.ref.code, node.target_type, node.above), []).append(node)
            elif isinstance(node, BoolNode) and node.op == "and":
                conds.append(self._and(node.children, outer, res_type, correlated=correlated))
            elif correlated and isinstance(node, Criterion) and node.name == "near":
                conds.append(self._near(node, outer, correlated=True))
            else:
                conds.append(self.node(node, outer, res_type))
        for crits in groups.values():
            if len(crits) == 1 and not correlated:
                conds.append(self.node(crits[0], outer, res_type))
            else:
                conds.append(self._group_exists(crits, outer, res_type, correlated=correlated))
        # On SQLite, a chain next to other criteria is checked per candidate (correlated EXISTS) rather than
        # materialised: "réa beds available now" = 317 offers to check, not the 19k Locations with a free bed.
        driven = self.sqlite and bool(conds)
        for same in chains.values():
            inner = same[0].inner if len(same) == 1 else BoolNode("and", [c.inner for c in same])
            chain = Chain(same[0].ref, same[0].target_type, same[0].above, inner)
            if driven and not chain.above:
                conds.append(self._chain_exists(chain, outer, res_type))
            else:
                conds.append(self._chain(chain, outer, res_type))
        return and_(true(), *conds)

    def node(self, node: Node, outer: FromClause, res_type: str) -> ColumnElement[bool]:
        if isinstance(node, BoolNode):
            if node.op == "and":
                return self._and(node.children, outer, res_type)
            parts = [self.node(c, outer, res_type) for c in node.children]
            if node.op == "or":
                return or_(*parts)
            return not_(parts[0])
        if isinstance(node, Chain):
            return self._chain(node, outer, res_type)
        if isinstance(node, Has):
            return self._has(node, outer, res_type)
        return self._criterion(node, outer, res_type)

    def index_set(self, nodes: list[Node], res_type: str) -> Any | None:
        """The matches of a query made of one plain criterion on an index table, as `SELECT resource_pk FROM
        idx_… WHERE …` (without the `resource` table), else None. Index rows exist only for the live version of a
        resource (a deletion removes them in its transaction) and carry the type, so this set is exactly the
        query's matches: its count needs no probe of `resource` per match (PostgreSQL: `_tag=53`, 6,346
        Locations, 2 ms instead of 20–30 ms)."""
        if len(nodes) != 1 or not isinstance(nodes[0], Criterion):
            return None
        c = nodes[0]
        if c.name in ("_id", "_lastUpdated", "near") or c.modifier in ("missing", "not") or c.type not in TABLES:
            return None
        if c.param is not None and c.param.group:
            return None
        table = alias(TABLES[c.type])
        value_cond = or_(*[self._value_cond(c, v, table) for v in c.values])
        return select(table.c.resource_pk).where(table.c.res_type == res_type, _param_is(table, c), value_cond)

    # -- criteria ----------------------------------------------------------------------------------------------
    def _criterion(self, c: Criterion, outer: FromClause, res_type: str) -> ColumnElement[bool]:
        if c.name == "_id":
            cond = outer.c.res_id.in_([v.code or v.raw for v in c.values])
            return not_(cond) if c.modifier == "not" else cond
        if c.name == "_lastUpdated":
            return or_(*[self._date_cmp(v, outer.c.last_updated, outer.c.last_updated) for v in c.values])
        if c.name == "near":
            return self._near(c, outer)
        table = alias(TABLES[c.type])
        base = and_(table.c.res_type == res_type, _param_is(table, c))
        # `pk IN (uncorrelated sub-select)`: the database computes the matching set once (index scan) and probes
        # it per candidate — robust on both engines, where a correlated EXISTS can degrade to O(n²) on SQLite.
        if c.modifier == "missing":
            present = outer.c.pk.in_(select(table.c.resource_pk).where(base))
            return not_(present) if c.values[0].raw == "true" else present
        value_cond = or_(*[self._value_cond(c, v, table) for v in c.values])
        matched = outer.c.pk.in_(select(table.c.resource_pk).where(base, value_cond))
        return not_(matched) if c.modifier == "not" else matched

    def _value_cond(self, c: Criterion, v: Value, t: FromClause) -> ColumnElement[bool]:
        if c.type == "token":
            return self._token(c, v, t)
        if c.type in ("string", "uri"):
            return self._string(c, v, t)
        if c.type == "number":
            return self._number(v, t.c.value)
        if c.type == "quantity":
            cond = self._number(v, t.c.value)
            if v.system:
                cond = and_(cond, t.c.system.in_(_unit_systems(v.system)))
            if v.code:
                cond = and_(cond, t.c.code == v.code)
            return cond
        if c.type == "date":
            return self._date_cmp(v, t.c.low, t.c.high)
        if c.type == "reference":
            return self._reference(c, v, t)
        raise InvalidRequest(f"{c.name}: unsupported parameter type {c.type}", expression=c.name)

    def _token(self, c: Criterion, v: Value, t: FromClause) -> ColumnElement[bool]:
        if c.modifier == "text":
            return t.c.text.like(f"%{_like_escape(norm_text(v.raw))}%", escape="\\")
        if c.modifier == "of-type":  # the row: value in `code`, type code in `text` (search.extract)
            return and_(
                t.c.code == v.raw[:CODE_MAX],
                t.c.text == v.code,
                *([t.c.system == v.system] if v.system else []),
            )
        conds = []
        if v.code is not None:
            conds.append(t.c.code == v.code)
        if v.system == "":
            conds.append(t.c.system.is_(None))
        elif v.system is not None:
            conds.append(t.c.system == v.system)
        return and_(*conds) if conds else true()

    def _string(self, c: Criterion, v: Value, t: FromClause) -> ColumnElement[bool]:
        if c.modifier == "exact":
            return t.c.exact == v.raw
        norm = norm_text(v.raw)
        if c.modifier == "exact-ci":
            return t.c.value == norm
        if c.modifier == "contains":
            return t.c.value.like(f"%{_like_escape(norm)}%", escape="\\")
        if c.modifier == "ends":
            return t.c.value.like(f"%{_like_escape(norm)}", escape="\\")
        if norm:
            # starts-with as a byte-ordered range of the lookup index (values are normalised already): SQLite's
            # LIKE is case-insensitive and never uses the BINARY index; PostgreSQL's LIKE cannot use an index
            # either, and the column is in the C collation (byte order, migration 0015) for the range.
            return and_(t.c.value >= norm, t.c.value < norm + "\U0010ffff")
        return t.c.value.like(f"{_like_escape(norm)}%", escape="\\")

    @staticmethod
    def _number(v: Value, col: Any) -> ColumnElement[bool]:
        x = float(v.raw)
        # implicit precision: "10" means [9.5, 10.5), "10.5" means [10.45, 10.55)
        decimals = len(v.raw.split(".")[1]) if "." in v.raw else 0
        half = 0.5 * 10**-decimals
        p = v.prefix
        if p == "eq":
            return and_(col >= x - half, col < x + half)
        if p == "ne":
            return or_(col < x - half, col >= x + half)
        if p in ("gt", "sa"):
            return col > x
        if p in ("lt", "eb"):
            return col < x
        if p == "ge":
            return col >= x
        if p == "le":
            return col <= x
        margin = abs(x) * 0.1  # ap: ±10 %
        return and_(col >= x - margin, col <= x + margin)

    @staticmethod
    def _date_cmp(v: Value, low: Any, high: Any) -> ColumnElement[bool]:
        qlow, qhigh = date_range(v.raw)
        p = v.prefix
        if p == "eq":
            return and_(low >= qlow, high <= qhigh)
        if p == "ne":
            return or_(low < qlow, high > qhigh)
        if p == "gt":
            return high > qhigh
        if p == "lt":
            return low < qlow
        if p == "ge":
            return high >= qlow
        if p == "le":
            return low <= qhigh
        if p == "sa":
            return low > qhigh
        if p == "eb":
            return high < qlow
        span = max(qhigh - qlow, (abs(utcnow() - qlow)) * 0.1)  # ap
        return and_(high >= qlow - span, low <= qhigh + span)

    @staticmethod
    def _reference(c: Criterion, v: Value, t: FromClause) -> ColumnElement[bool]:
        raw = v.raw
        parts = [p for p in raw.split("/") if p]
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        target_type = c.modifier if c.modifier and c.modifier[:1].isupper() else None
        if len(parts) >= 2:
            return and_(t.c.target_type == parts[-2], t.c.target_id == parts[-1])
        cond = t.c.target_id == raw
        if target_type:
            cond = and_(cond, t.c.target_type == target_type)
        return cond

    def _near(self, c: Criterion, outer: FromClause, *, correlated: bool = False) -> ColumnElement[bool]:
        lat_s, lon_s, km_s = (c.values[0].code or "").split("|")
        lat, lon, km = float(lat_s), float(lon_s), float(km_s)
        g = alias(idx_geo)
        min_lat, max_lat, min_lon, max_lon = bounding_box(lat, lon, km)
        if correlated:  # one position to test per candidate (idx_geo is keyed by resource_pk)
            return exists().where(
                g.c.resource_pk == outer.c.pk,
                g.c.lat.between(min_lat, max_lat),
                g.c.lon.between(min_lon, max_lon),
                distance_sql(lat, lon, g.c.lat, g.c.lon, self.sqlite) <= km,
            )
        return outer.c.pk.in_(
            select(g.c.resource_pk).where(
                g.c.lat.between(min_lat, max_lat),
                g.c.lon.between(min_lon, max_lon),
                distance_sql(lat, lon, g.c.lat, g.c.lon, self.sqlite) <= km,
            )
        )

    def _group_exists(
        self, crits: list[Criterion], outer: FromClause, res_type: str, *, correlated: bool = False
    ) -> ColumnElement[bool]:
        projected = self._capacity_projection(crits, outer, correlated=correlated)
        if projected is not None:
            return projected
        aliases = [alias(TABLES[c.type]) for c in crits]
        first = aliases[0]
        conds: list[ColumnElement[bool]] = []
        for c, a in zip(crits, aliases, strict=True):
            if a is not first:
                conds += [a.c.resource_pk == first.c.resource_pk, a.c.grp == first.c.grp]
            conds += [
                a.c.res_type == res_type,
                a.c.param == c.name,
                or_(*[self._value_cond(c, v, a) for v in c.values]),
            ]
        return outer.c.pk.in_(select(first.c.resource_pk).select_from(*aliases).where(*conds))

    def _capacity_projection(
        self, crits: list[Criterion], outer: FromClause, *, correlated: bool = False
    ) -> ColumnElement[bool] | None:
        """Capacity criteria of one indicator, answered from the typed `capacity` projection (one row per
        indicator, all its codes in columns: one indexed scan instead of a join of index rows — design decision 4).
        None when a criterion has no column there (the generic index join then applies)."""
        if not all(c.name in CAPACITY_COLUMNS and c.modifier is None for c in crits):
            return None
        cap = alias(capacity)
        conds: list[ColumnElement[bool]] = []
        for c in crits:
            column, system = CAPACITY_COLUMNS[c.name]
            col: Any = cap.c[column]
            if correlated and self.sqlite:
                # probed by location_pk (the primary key's prefix): through coalesce SQLite cannot pick the
                # status index instead (without statistics it did: a scan of every indicator of that status)
                col = func.coalesce(col, col)
            alts: list[ColumnElement[bool]] = []
            for v in c.values:
                if c.type == "number":
                    alts.append(self._number(v, col))
                elif c.type == "date":
                    alts.append(self._date_cmp(v, col, col))
                elif v.system not in (None, system) or v.code is None:
                    alts.append(false())  # another code system, or no code: nothing in the projection matches
                else:
                    alts.append(col == v.code)
            conds.append(or_(*alts))
        if correlated:  # probed per candidate Location (primary-key prefix of the projection)
            return exists().where(cap.c.location_pk == outer.c.pk, *conds)
        return outer.c.pk.in_(select(cap.c.location_pk).where(*conds))

    # -- chains ------------------------------------------------------------------------------------------------
    def _targets(self, chain: Chain) -> Any:
        """Ids of the target resources that satisfy the inner criterion (and, for :above, their descendants)."""
        t = alias(resource)
        base = select(t.c.res_id).where(self.where([chain.inner], t, chain.target_type))
        if not chain.above:
            return base
        tree = base.cte(name="above_tree", recursive=True)
        pr = alias(idx_reference)
        child = alias(resource)
        step = (
            select(child.c.res_id)
            .select_from(pr.join(child, child.c.pk == pr.c.resource_pk))
            .where(
                pr.c.res_type == "Organization",
                pr.c.param == "partof",
                pr.c.target_type == "Organization",
                pr.c.target_id == tree.c.res_id,
            )
        )
        tree = tree.union(step)
        return select(tree.c.res_id)

    def _chain(self, chain: Chain, outer: FromClause, res_type: str) -> ColumnElement[bool]:
        r = alias(idx_reference)
        return outer.c.pk.in_(
            select(r.c.resource_pk).where(
                r.c.res_type == res_type,
                r.c.param == chain.ref.code,
                r.c.target_type == chain.target_type,
                r.c.target_id.in_(self._targets(chain)),
            )
        )

    def _chain_exists(self, chain: Chain, outer: FromClause, res_type: str) -> ColumnElement[bool]:
        """The chain as a correlated EXISTS: the candidate's references, their target, the inner criteria on it."""
        r = alias(idx_reference)
        t = alias(resource)
        return exists().where(
            r.c.resource_pk == outer.c.pk,
            r.c.param == chain.ref.code,
            r.c.target_type == chain.target_type,
            t.c.res_type == chain.target_type,
            t.c.res_id == r.c.target_id,
            self.where([chain.inner], t, chain.target_type, correlated=True),
        )

    def _has(self, has: Has, outer: FromClause, res_type: str) -> ColumnElement[bool]:
        s = alias(resource)
        r = alias(idx_reference)
        return outer.c.res_id.in_(
            select(r.c.target_id)
            .select_from(s.join(r, r.c.resource_pk == s.c.pk))
            .where(
                r.c.res_type == has.source_type,
                r.c.param == has.ref_code,
                r.c.target_type == res_type,
                self.where([has.inner], s, has.source_type),
            )
        )


def _unit_systems(system: str) -> list[str]:
    """UCUM is written with and without https in the wild (the IG's own example uses https)."""
    ucum = {"http://unitsofmeasure.org", "https://unitsofmeasure.org"}
    return sorted(ucum) if system in ucum else [system]


__all__ = ["Compiler", "false"]
