"""Run a parsed search: filter, sort, keyset paging, total, _include/_revinclude.

Paging uses a keyset cursor (the last row's sort values + its primary key), never OFFSET: a page costs the same
wherever it is, and rows inserted or deleted meanwhile never shift the pages (no duplicates, no gaps for the rows
that did not change)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from sqlalchemy import (
    ColumnElement,
    Engine,
    LargeBinary,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    event,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.selectable import FromClause

from ror.db.engine import is_sqlite
from ror.db.tables import idx_date, idx_geo, idx_number, idx_quantity, idx_reference, idx_string, idx_token, resource
from ror.errors import InvalidRequest
from ror.memo import Lru
from ror.search.aliases import alias, statement_scope
from ror.search.geo import distance_sql
from ror.search.query import Chain, Criterion, Has, Include, Node, SearchQuery, SortKey
from ror.search.sql import Compiler, param_rows
from ror.store.rawsql import fetch_all

MAX_INCLUDE_ROUNDS = 4
MAX_PLANS = 512  # query plans kept per engine (least recently used dropped)
_OUTER = resource.alias("r")  # the matched resources (one alias object, reused by every search)
Restrict = Callable[[FromClause, str], ColumnElement[bool]]


@dataclass(slots=True)
class Row:
    pk: int
    res_type: str
    res_id: str
    content: bytes  # the stored JSON, UTF-8: served as is (orjson.Fragment), parsed only when filtered


def _row(x: Any) -> Row:
    content = x[3]
    return Row(x[0], x[1], x[2], content if isinstance(content, bytes) else content.encode())


def _content(col: Any, pg: bool) -> Any:
    """The content column as UTF-8 bytes, never decoded to str and re-encoded by orjson (that round trip cost
    ~3 ms on SQLite and ~5 ms on PostgreSQL for C1's 775 resources): a BLOB on SQLite; on PostgreSQL the statement
    is marked and its `text` columns are loaded as bytes (`_raw_text`; res_type and res_id are varchar)."""
    return col if pg else cast(col, LargeBinary)


RAW_TEXT = "ror_raw_text"  # execution option: load PostgreSQL `text` values as bytes


def _raw_text(_conn: Any, cursor: Any, _stmt: Any, _params: Any, context: Any, _many: bool) -> None:
    if context is not None and context.execution_options.get(RAW_TEXT):
        cursor.adapters.register_loader("text", _BytesLoader)


class _BytesLoader(Loader):
    def load(self, data: Buffer) -> bytes:
        return bytes(data)


@dataclass
class SearchResult:
    matches: list[Row]
    included: list[Row] = field(default_factory=list)
    total: int | None = None
    next_cursor: str | None = None
    prev_cursor: str | None = None


@dataclass
class _SortExpr:
    flag: Any  # 0 when the value exists, 1 when missing (missing values sort last in both directions)
    value: Any
    descending: bool
    kind: str  # str | num | date


@dataclass(frozen=True)
class _Plan:
    """The SQL of one query: the match condition, the sort, the count and the first page (no cursor)."""

    where: Any
    exprs: list[_SortExpr]
    kinds: list[str]  # of the cursor values
    order_cols: list[Any]
    count: Any
    first_page: Any
    matches: Any = None  # the index set of a one-criterion query with nothing to hide (`Compiler.index_set`)
    raw_count: _Raw | None = None  # SQLite, kept plans without a sort: `count` and `first_page` at driver level
    raw_first: _Raw | None = None


@dataclass(frozen=True)
class _Raw:
    """A prebuilt statement as the SQLite driver takes it: SQL with `?` marks and its parameters."""

    sql: str
    params: tuple[Any, ...]


def _raw_sqlite(stmt: Any, dialect: Any) -> _Raw | None:
    """`stmt` compiled once for the SQLite driver, or None when a parameter needs SQLAlchemy's conversion (only
    str, int and float are passed as they are). Reading the page's 200 rows through SQLAlchemy's result layer
    (Row objects, the BLOB processor) and executing two statements cost ~0.5 ms of a 5 ms search (`H`)."""
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    values = tuple(compiled.params[name] for name in compiled.positiontup or ())
    if not all(type(v) in (str, int, float) for v in values):
        return None
    return _Raw(compiled.string, values)


def _in_key_order(q: SearchQuery) -> bool:
    """Whether the index set of a one-criterion query comes out of its lookup index in `resource_pk` order: one
    token value, no modifier (`(res_type, param, code, system, resource_pk)`)."""
    c = q.nodes[0] if len(q.nodes) == 1 else None
    return isinstance(c, Criterion) and c.type == "token" and not c.modifier and len(c.values) == 1


def _encode_cursor(direction: str, values: list[Any]) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v.decode() if isinstance(v, bytes) else v for v in values]
    payload = [direction, values]
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def _decode_cursor(cursor: str, kinds: list[str]) -> tuple[str, list[Any]]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        direction, values = orjson.loads(raw)
        if direction not in ("a", "b") or len(values) != len(kinds):
            raise ValueError
        out = [
            datetime.fromisoformat(v) if k == "date" and v is not None else v
            for v, k in zip(values, kinds, strict=True)
        ]
        return direction, out
    except Exception as exc:
        raise InvalidRequest(
            "_cursor is invalid or belongs to another search; restart from the first page", expression="_cursor"
        ) from exc


class SearchEngine:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self._pg = engine.dialect.name == "postgresql"
        self.compiler = Compiler(self.sqlite)
        raw_text = self._pg and engine.dialect.driver == "psycopg"  # other drivers: str, encoded by `_row`
        if raw_text and not event.contains(engine, "before_cursor_execute", _raw_text):
            event.listen(engine, "before_cursor_execute", _raw_text)
        self._statements: dict[tuple[Any, ...], Any] = {}
        self._plans: Lru[tuple[Any, ...], _Plan] = Lru(MAX_PLANS)

    # -- sorting -----------------------------------------------------------------------------------------------
    def _sort_exprs(self, q: SearchQuery, outer: FromClause) -> list[_SortExpr]:
        exprs: list[_SortExpr] = []
        for key in q.sort:
            exprs.append(self._sort_expr(q, key, outer))
        return exprs

    def _sort_expr(self, q: SearchQuery, key: SortKey, outer: FromClause) -> _SortExpr:
        if key.name == "_id":
            return _SortExpr(literal(0), outer.c.res_id, key.descending, "str")
        if key.name == "_lastUpdated":
            return _SortExpr(literal(0), outer.c.last_updated, key.descending, "date")
        if key.name == "near":
            if q.near is None:
                raise InvalidRequest("_sort=near needs a near or near-insee-code criterion", expression="_sort")
            g = alias(idx_geo)
            dist = (
                select(distance_sql(q.near.lat, q.near.lon, g.c.lat, g.c.lon, self.sqlite))
                .where(g.c.resource_pk == outer.c.pk)
                .scalar_subquery()
            )
            if q.res_type != "Location":
                dist = self._chained_location_distance(q, outer)
            return self._nullable(dist, key.descending, "num")
        p = key.param
        assert p is not None
        table, col, kind = {
            "string": (idx_string, "value", "str"),
            "token": (idx_token, "code", "str"),
            "number": (idx_number, "value", "num"),
            "quantity": (idx_quantity, "value", "num"),
            "date": (idx_date, "low", "date"),
        }[p.type]
        t = alias(table)
        agg = func.max if key.descending else func.min
        sub = (
            select(agg(t.c[col]))
            .where(t.c.resource_pk == outer.c.pk, t.c.res_type == q.res_type, param_rows(t, p))
            .scalar_subquery()
        )
        return self._nullable(sub, key.descending, kind)

    def _chained_location_distance(self, q: SearchQuery, outer: FromClause) -> Any:
        """Distance of the nearest Location the resource points to (HealthcareService.location)."""
        assert q.near is not None
        g = alias(idx_geo)
        r = alias(idx_reference)
        loc = alias(resource)
        return (
            select(func.min(distance_sql(q.near.lat, q.near.lon, g.c.lat, g.c.lon, self.sqlite)))
            .select_from(
                r.join(loc, and_(loc.c.res_type == r.c.target_type, loc.c.res_id == r.c.target_id)).join(
                    g, g.c.resource_pk == loc.c.pk
                )
            )
            .where(r.c.resource_pk == outer.c.pk, r.c.target_type == "Location")
            .scalar_subquery()
        )

    @staticmethod
    def _nullable(expr: Any, descending: bool, kind: str) -> _SortExpr:
        neutral: Any = {"str": "", "num": 0.0, "date": datetime(1900, 1, 1)}[kind]
        return _SortExpr(case((expr.is_(None), 1), else_=0), func.coalesce(expr, neutral), descending, kind)

    # -- keyset ------------------------------------------------------------------------------------------------
    @staticmethod
    def _after(exprs: list[_SortExpr], pk_col: Any, values: list[Any], backwards: bool) -> ColumnElement[bool]:
        """Rows strictly after (or before) the cursor row in the sort order."""
        cols: list[tuple[Any, bool]] = []
        for e in exprs:
            cols.append((e.flag, False))
            cols.append((e.value, e.descending))
        cols.append((pk_col, False))
        cond: ColumnElement[bool] | None = None
        for (col, desc), val in reversed(list(zip(cols, values, strict=True))):
            forward = desc == backwards  # ascending & forwards, or descending & backwards → greater
            beyond = col > val if forward else col < val
            cond = beyond if cond is None else or_(beyond, and_(col == val, cond))
        assert cond is not None
        return cond

    # -- run ---------------------------------------------------------------------------------------------------
    def search(self, q: SearchQuery, restrict: Restrict | None = None) -> SearchResult:
        """Run `q`. `restrict(outer, res_type)` adds a condition every match and include must satisfy (access
        control: resources the caller may not see never count in totals or pages)."""
        with statement_scope():
            return self._search(q, restrict)

    def _plan(self, q: SearchQuery, restrict: Restrict | None) -> _Plan:
        """The statements of `q`, built once per query (parsed values included) and reused: building the
        condition tree is a quarter of a small search's time. The plan holds no data, only SQL: every execution
        reads the database. Queries whose SQL depends on the clock (`ap` on dates) are built every time."""
        key = _plan_key(q, restrict)
        if key is None:
            return self._build_plan(q, restrict)
        return self._plans.get_or(key, lambda: self._with_raw(self._build_plan(q, restrict)))

    def _with_raw(self, plan: _Plan) -> _Plan:
        """A kept plan with its driver-level count and first page on SQLite, when it has no sort (whose values
        would come from the driver untyped: the cursor encodes them)."""
        if self._pg or plan.exprs:
            return plan
        return replace(
            plan,
            raw_count=_raw_sqlite(plan.count, self.engine.dialect),
            raw_first=_raw_sqlite(plan.first_page, self.engine.dialect),
        )

    def _build_plan(self, q: SearchQuery, restrict: Restrict | None) -> _Plan:
        outer = _OUTER
        where = self.compiler.where(q.nodes, outer, q.res_type)
        if restrict is not None:
            where = and_(where, restrict(outer, q.res_type))
        exprs = self._sort_exprs(q, outer)
        kinds: list[str] = []
        for e in exprs:
            kinds += ["num", e.kind]
        kinds.append("num")
        order_cols: list[Any] = []
        for e in exprs:
            order_cols += [e.flag.label(None), e.value.label(None)]
        count = select(func.count()).select_from(outer).where(where)
        matches = self.compiler.index_set(q.nodes, q.res_type) if restrict is None else None
        if matches is not None:  # one criterion, nothing to hide: counted on its index table alone
            sub = matches.subquery()
            count = select(func.count(sub.c.resource_pk.distinct())).select_from(sub)
        if matches is not None and not exprs:
            first = self._keyed_page(q, matches, None, False)
            return _Plan(where, exprs, kinds, order_cols, count, first, matches)
        return _Plan(where, exprs, kinds, order_cols, count, self._page(q, where, exprs, order_cols, False))

    def _keyed_page(self, q: SearchQuery, matches: Any, after_pk: int | None, backwards: bool) -> Any:
        """A page in primary-key order of a one-criterion query: the page's keys taken from the index set first
        (its `count + 1` smallest beyond the cursor), then only their rows read — not every matching row read
        and sorted to keep 200 (PostgreSQL, `_tag=53`, 6,346 Locations: 87 ms → a few ms).

        On PostgreSQL, when the index set is not read in key order (`_in_key_order`: ranges, several values),
        the keys are sorted as `resource_pk + 0`: otherwise the planner may walk `ix_idx_*_pk` in key order and
        filter, betting that matches are spread evenly — they are not (`address-postalcode=35,22,29,56`: the
        Breton postcodes sit together; 31,376 rows read and dropped, 25 ms, instead of the 6,346 matches
        fetched and top-N sorted, 6–9 ms). SQLite plans it well either way; a single token value reads its
        lookup index in key order and stops after the page (1 ms instead of 4.6 ms with the sort)."""
        outer = _OUTER
        sub = matches.subquery()
        key = sub.c.resource_pk
        if self._pg and not _in_key_order(q):
            key = (key + 0).label("resource_pk")
        keys = select(key).distinct()
        if after_pk is not None:
            keys = keys.where(key < after_pk if backwards else key > after_pk)
        keys = keys.order_by(key.desc() if backwards else key.asc()).limit(q.count + 1)
        return (
            select(outer.c.pk, outer.c.res_type, outer.c.res_id, _content(outer.c.content, self._pg))
            .where(outer.c.pk.in_(keys))
            .order_by(outer.c.pk.desc() if backwards else outer.c.pk.asc())
            .limit(q.count + 1)
            .execution_options(**{RAW_TEXT: True})
        )

    def _page(self, q: SearchQuery, where: Any, exprs: list[_SortExpr], order_cols: list[Any], backwards: bool) -> Any:
        outer = _OUTER
        order_by: list[Any] = []
        for e in exprs:
            order_by.append(e.flag.desc() if backwards else e.flag.asc())
            order_by.append(e.value.desc() if e.descending != backwards else e.value.asc())
        order_by.append(outer.c.pk.desc() if backwards else outer.c.pk.asc())
        return (
            select(outer.c.pk, outer.c.res_type, outer.c.res_id, _content(outer.c.content, self._pg), *order_cols)
            .where(where)
            .order_by(*order_by)
            .limit(q.count + 1)
            .execution_options(**{RAW_TEXT: True})
        )

    def _search(self, q: SearchQuery, restrict: Restrict | None) -> SearchResult:
        plan = self._plan(q, restrict)
        with self.engine.connect() as conn:
            conn.begin()  # one read transaction (snapshot) for the count, the page and the includes

            def count() -> int:
                if plan.raw_count is not None:
                    return int(fetch_all(conn, plan.raw_count.sql, plan.raw_count.params)[0][0])
                return int(conn.execute(plan.count).scalar_one())

            if q.summary == "count" or q.count == 0:
                total = None
                if q.total != "none" or q.summary == "count":
                    total = count()
                return SearchResult([], total=total)
            backwards = False
            page = plan.first_page
            if q.cursor:
                direction, values = _decode_cursor(q.cursor, plan.kinds)
                backwards = direction == "b"
                if plan.matches is not None and not plan.exprs:
                    if type(values[-1]) is not int:
                        raise InvalidRequest("_cursor is invalid or belongs to another search", expression="_cursor")
                    page = self._keyed_page(q, plan.matches, values[-1], backwards)
                else:
                    after = and_(plan.where, self._after(plan.exprs, _OUTER.c.pk, values, backwards))
                    page = self._page(q, after, plan.exprs, plan.order_cols, backwards)
            if page is plan.first_page and plan.raw_first is not None:
                rows: list[Any] = fetch_all(conn, plan.raw_first.sql, plan.raw_first.params)
            else:
                rows = list(conn.execute(page).all())
            more = len(rows) > q.count
            rows = rows[: q.count]
            total = None
            if q.total != "none":
                # a first page that holds every match is the total: the match set is not evaluated a second time
                complete = not q.cursor and not more
                total = len(rows) if complete else count()
            if backwards:
                rows.reverse()
            result = SearchResult([_row(r) for r in rows], total=total)
            if rows:
                first_vals = [*rows[0][4:], rows[0][0]]
                last_vals = [*rows[-1][4:], rows[-1][0]]
                has_next = more if not backwards else True
                has_prev = bool(q.cursor) if not backwards else more
                if has_next:
                    result.next_cursor = _encode_cursor("a", last_vals)
                if has_prev:
                    result.prev_cursor = _encode_cursor("b", first_vals)
            if q.includes and result.matches:
                result.included = self._includes(conn, q.includes, result.matches, restrict)
        return result

    # -- includes ----------------------------------------------------------------------------------------------
    def _includes(self, conn: Any, includes: list[Include], matches: list[Row], restrict: Restrict | None) -> list[Row]:
        seen = {(m.res_type, m.res_id) for m in matches}
        everything: list[Row] = list(matches)
        included: list[Row] = []
        frontier = list(matches)
        # each include follows each source once: an :iterate include in the next round only looks at what it has
        # not followed yet (re-reading the parents of the page's Organizations cost a whole hop on C1)
        followed: list[set[int]] = [set() for _ in includes]
        order = sorted(range(len(includes)), key=lambda n: not includes[n].reverse)
        for round_no in range(MAX_INCLUDE_ROUNDS):
            # round 0 also applies non-iterate includes to what earlier includes brought (e.g. the IG's
            # _revinclude=PractitionerRole:service&_include=PractitionerRole:practitioner).
            sources = everything if round_no == 0 else frontier
            new_rows: list[Row] = []
            for n in order:
                inc = includes[n]
                if round_no and not inc.iterate:
                    continue
                done = followed[n]
                # the sources an include can start from: its target type (reverse) or its source type (forward)
                want = inc.target_type if inc.reverse else None if inc.source_type == "*" else inc.source_type
                todo = [s for s in sources + new_rows if (want is None or s.res_type == want) and s.pk not in done]
                done.update([s.pk for s in todo])
                for row in self._apply(conn, inc, todo, restrict) if todo else ():
                    key = (row.res_type, row.res_id)
                    if key not in seen:
                        seen.add(key)
                        new_rows.append(row)
            if not new_rows:
                break
            included += new_rows
            everything += new_rows
            frontier = new_rows
        return included

    def _apply(self, conn: Any, inc: Include, sources: list[Row], restrict: Restrict | None) -> list[Row]:
        # the base tables, not fresh aliases: building an alias's column collection cost ~0.4 ms per include hop
        rows = self._apply_unrestricted(conn, inc, sources, resource, idx_reference)
        if restrict is None or not rows:
            return rows
        by_type: dict[str, list[Row]] = {}
        for row in rows:
            by_type.setdefault(row.res_type, []).append(row)
        kept: set[int] = set()
        for rt, group in by_type.items():
            v = alias(resource)
            kept.update(
                conn.execute(select(v.c.pk).where(v.c.pk.in_([g.pk for g in group]), restrict(v, rt))).scalars()
            )
        return [row for row in rows if row.pk in kept]

    def _apply_unrestricted(self, conn: Any, inc: Include, sources: list[Row], t: Any, r: Any) -> list[Row]:
        """One statement per hop (and target type): the resources whose keys the reference index gives, as a
        semi-join (`IN (SELECT …)`) — each resource once, never a DISTINCT over contents. Statements built once
        per shape; the key lists bound as one array on PostgreSQL (`= ANY(…)`: no per-value parameters)."""
        param = inc.param if inc.param != "*" else None
        if inc.reverse:
            targets = [s for s in sources if inc.target_type in (None, s.res_type)]
            ids_by_type: dict[str, list[str]] = {}
            for s in targets:
                ids_by_type.setdefault(s.res_type, []).append(s.res_id)
            source_type = inc.source_type if inc.source_type != "*" else None
            stmt = self._statement("rev", param is not None, source_type is not None)
            found: dict[int, Row] = {}
            for target_type, target_ids in ids_by_type.items():
                values = {"tt": target_type, "ids": self._keys(target_ids), "p": param, "st": source_type}
                for x in conn.execute(stmt, values).all():
                    found[x[0]] = _row(x)
            return [found[pk] for pk in sorted(found)]
        pks = [s.pk for s in sources if inc.source_type in ("*", s.res_type)]
        if not pks:
            return []
        stmt = self._statement("fwd", param is not None, inc.target_type is not None)
        rows = conn.execute(stmt, {"pks": self._keys(pks), "p": param, "tt": inc.target_type}).all()
        return sorted(map(_row, rows), key=lambda row: row.pk)

    def _keys(self, keys: list[Any]) -> Any:
        """A key list as the one parameter `_member` expects: an array on PostgreSQL, a JSON array on SQLite."""
        return keys if self._pg else orjson.dumps(keys).decode()

    def _statement(self, kind: str, *flags: bool) -> Any:
        key = (kind, *flags)
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = _include_statement(kind, flags, self._pg)
        return stmt


def _member(col: Any, name: str, pg: bool) -> ColumnElement[bool]:
    """`col IN (keys)` with the keys as one parameter: an array on PostgreSQL (`= ANY(…)`), a JSON array read by
    `json_each` on SQLite (an expanding `IN (?, ?, …)` cost SQLAlchemy ~1 ms to render for a page's 775 keys)."""
    if pg:
        return col == any_(bindparam(name, type_=ARRAY(col.type)))
    return col.in_(select(column("value")).select_from(func.json_each(bindparam(name))))


def _include_statement(kind: str, flags: tuple[bool, ...], pg: bool) -> Any:
    """On SQLite the tests that must not drive the plan are wrapped in `coalesce` (SQLite cannot use an index
    through it): the key list drives — `resource_pk` on the reference index, `(res_type, res_id)` on resources —
    whatever the planner statistics say (without them SQLite preferred the (param, target_type) index, a scan of
    every reference of that name)."""
    t, r = resource, idx_reference

    def plain(col: Any) -> Any:
        return col if pg else func.coalesce(col, "")

    live = t.c.deleted.is_(False) if pg else func.coalesce(t.c.deleted, False).is_(False)
    rows = select(t.c.pk, t.c.res_type, t.c.res_id, _content(t.c.content, pg)).where(live)
    rows = rows.execution_options(**{RAW_TEXT: True})
    with_param, with_type = flags
    if kind == "rev":  # resources whose reference (param) points to one of the sources
        cond = [r.c.target_type == bindparam("tt"), _member(r.c.target_id, "ids", pg)]
        if with_param:
            cond.append(r.c.param == bindparam("p"))
        if with_type:
            cond.append(plain(r.c.res_type) == bindparam("st"))
        return rows.where(t.c.pk.in_(select(r.c.resource_pk).where(*cond)))
    cond = [_member(r.c.resource_pk, "pks", pg), r.c.target_id.is_not(None)]
    if with_param:
        cond.append(plain(r.c.param) == bindparam("p"))
    if with_type:  # the resources of one type the sources point to
        cond.append(plain(r.c.target_type) == bindparam("tt"))
        return rows.where(t.c.res_type == bindparam("tt"), t.c.res_id.in_(select(r.c.target_id).where(*cond)))
    return rows.where(tuple_(t.c.res_type, t.c.res_id).in_(select(r.c.target_type, r.c.target_id).where(*cond)))


def _plan_key(q: SearchQuery, restrict: Restrict | None) -> tuple[Any, ...] | None:
    """What the statements of `q` depend on (type, criteria with their values, sort, page size, the access
    restriction); None when they also depend on the clock (`ap` compares dates with now)."""
    try:
        nodes = tuple(_node_key(n) for n in q.nodes)
    except _ClockDependent:
        return None
    sort = tuple((k.name, k.descending) for k in q.sort)
    return (q.res_type, nodes, sort, q.count, restrict)


class _ClockDependent(Exception):
    pass


def _node_key(node: Node) -> tuple[Any, ...]:
    if isinstance(node, Criterion):
        if any(v.prefix == "ap" for v in node.values):
            raise _ClockDependent
        values = tuple((v.raw, v.prefix, v.system, v.code) for v in node.values)
        return ("c", node.name, node.type, node.modifier, values)
    if isinstance(node, Chain):
        return ("chain", node.ref.code, node.target_type, node.above, _node_key(node.inner))
    if isinstance(node, Has):
        return ("has", node.source_type, node.ref_code, _node_key(node.inner))
    return ("bool", node.op, tuple(_node_key(c) for c in node.children))
