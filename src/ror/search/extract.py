"""Extract search-index rows from a resource, driven by the registry (no per-parameter code)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ror.search.fhirpath import (
    ANY_EXTENSION,
    ANY_META,
    Evaluator,
    Rest,
    evaluator,
    extension_head,
    extension_key,
    meta_key,
    top_level_keys,
)
from ror.search.normalise import date_range, norm_text
from ror.search.registry import Registry, SearchParam

TEXT_MAX = 500
CODE_MAX = 255  # idx_token.code (String(255))


def departement_of_commune(code: str) -> str:
    """INSEE commune code -> département code (97x/98x overseas are 3 characters; 2A/2B Corsica)."""
    return code[:3] if code[:2] in ("97", "98") else code[:2]


TRANSFORMS = {"departement-of-commune": departement_of_commune}


Row = tuple[Any, ...]


@dataclass
class IndexRows:
    """Index rows as tuples in their table's column order, without the leading `resource_pk` (the store adds
    it): token (res_type, param, grp, system, code, text), string (…, value, exact), number (…, value),
    quantity (…, value, system, code), date (…, low, high), reference (…, target_type, target_id, url),
    geo (res_type, lat, lon). Tuples, not dicts: a national import builds millions of them."""

    token: list[Row] = field(default_factory=list)
    string: list[Row] = field(default_factory=list)
    number: list[Row] = field(default_factory=list)
    quantity: list[Row] = field(default_factory=list)
    date: list[Row] = field(default_factory=list)
    reference: list[Row] = field(default_factory=list)
    geo: list[Row] = field(default_factory=list)


Token = tuple[str | None, str | None, str | None]


def _tokens(value: Any) -> list[Token]:
    """(system, code, text) triples for a token-typed value of any FHIR datatype (a list, not a generator:
    millions of calls in an import, most with one triple)."""
    if type(value) is dict:
        if "coding" in value or ("text" in value and "value" not in value):  # CodeableConcept
            text = value.get("text")
            out: list[Token] = [
                (c.get("system"), c.get("code"), c.get("display") or text) for c in value.get("coding") or ()
            ]
            if text and not out:
                out.append((None, None, text))
            return out
        if "code" in value and ("system" in value or "display" in value):  # Coding
            return [(value.get("system"), value.get("code"), value.get("display"))]
        if "value" in value:  # Identifier, ContactPoint
            return [(value.get("system"), str(value["value"]), None)]
        if "code" in value:
            return [(value.get("system"), value.get("code"), value.get("display"))]
        return []
    if isinstance(value, bool):
        return [(None, "true" if value else "false", None)]
    if isinstance(value, str | int | float):
        return [(None, str(value), None)]
    return []


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        if "family" in value or "given" in value:  # HumanName
            if value.get("family"):
                yield value["family"]
            yield from value.get("given") or []
            if value.get("text"):
                yield value["text"]
        else:  # Address and others: every string leaf
            for key in ("text", "line", "city", "district", "state", "postalCode", "country"):
                v = value.get(key)
                if isinstance(v, list):
                    yield from (x for x in v if isinstance(x, str))
                elif isinstance(v, str):
                    yield v


def _dates(value: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(value, str):
        yield date_range(value)
    elif isinstance(value, dict) and ("start" in value or "end" in value):  # Period
        from datetime import datetime

        low = date_range(value["start"])[0] if value.get("start") else datetime(1, 1, 1)
        high = date_range(value["end"])[1] if value.get("end") else datetime(9999, 12, 31)
        yield low, high


def _reference(value: Any) -> tuple[str | None, str | None, str | None] | None:
    if not isinstance(value, dict) or not value.get("reference"):
        return None
    ref: str = value["reference"]
    parts = ref.split("/")
    if len(parts) >= 2 and not ref.startswith("#"):
        # Type/id, Type/id/_history/v, or an absolute URL ending in Type/id
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        return parts[-2], parts[-1], ref if "://" in ref else None
    return None, None, ref


def _add_token(rows: IndexRows, res_type: str, p: SearchParam, value: Any, grp: int | None) -> None:
    code = p.code
    append = rows.token.append
    if p.transform:
        fn = TRANSFORMS[p.transform]
        for _system, token_code, _text in _tokens(value):
            if token_code:
                append((res_type, code, grp, None, fn(token_code), None))
        return
    for system, token_code, text in _tokens(value):
        append((res_type, code, grp, system, token_code, norm_text(text)[:TEXT_MAX] if text else None))
    if code == "identifier" and type(value) is dict and value.get("type") and value.get("value"):
        # identifier:of-type: the value in `code` (indexed: a unit is found by its idExterneSynchro in one probe),
        # the type's code in `text` and its system in `system` (migration 0013)
        for system, type_code, _ in _tokens(value["type"]):
            append((res_type, "identifier:of-type", grp, system, str(value["value"])[:CODE_MAX], type_code))


def _add_string(rows: IndexRows, res_type: str, p: SearchParam, value: Any, grp: int | None) -> None:
    for s in [value] if p.type == "uri" else _strings(value):
        if isinstance(s, str) and s:
            rows.string.append((res_type, p.code, grp, norm_text(s)[:TEXT_MAX], s[:TEXT_MAX]))


def _add_number(rows: IndexRows, res_type: str, p: SearchParam, value: Any, grp: int | None) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        rows.number.append((res_type, p.code, grp, float(value)))


def _add_quantity(rows: IndexRows, res_type: str, p: SearchParam, value: Any, grp: int | None) -> None:
    if isinstance(value, dict) and isinstance(value.get("value"), int | float):
        unit = value.get("code") or value.get("unit")
        rows.quantity.append((res_type, p.code, grp, float(value["value"]), value.get("system"), unit))


def _add_date(rows: IndexRows, res_type: str, p: SearchParam, value: Any, grp: int | None) -> None:
    for low, high in _dates(value):
        rows.date.append((res_type, p.code, grp, low, high))


def _add_reference(rows: IndexRows, res_type: str, p: SearchParam, value: Any, grp: int | None) -> None:
    ref = _reference(value)
    if ref:
        rows.reference.append((res_type, p.code, grp, ref[0], ref[1], ref[2]))


Adder = Callable[[IndexRows, str, SearchParam, Any, "int | None"], None]
ADDERS: dict[str, Adder] = {
    "token": _add_token,
    "string": _add_string,
    "uri": _add_string,
    "number": _add_number,
    "quantity": _add_quantity,
    "date": _add_date,
    "reference": _add_reference,
}


def _add(rows: IndexRows, res_type: str, p: SearchParam, value: Any, grp: int | None) -> None:
    adder = ADDERS.get(p.type)
    if adder is not None:
        adder(rows, res_type, p, value, grp)


Keys = frozenset[str] | None


def _keys(expr: str, by_extension: bool = False) -> Keys:
    """Top-level keys an expression reads (`Resource.meta.tag` reads `meta` whatever the type). `by_extension`:
    the keys a change is told by (`fhirpath.top_level_keys`: an `extension('u')` read is keyed by its URL)."""
    return top_level_keys(expr, by_extension)


@lru_cache(maxsize=128)
def _plan(registry: Registry, res_type: str) -> tuple[tuple[SearchParam, Keys, Keys], ...]:
    """The parameters extracted for a type, with the top-level keys each needs (a resource without them yields
    no row) and the change keys it depends on (`changes_of`), computed once per registry: extract runs
    millions of times during an import and most optional elements are absent."""
    return tuple(
        (p, _keys(p.group or p.expression), _change_keys(p))
        for p in registry.for_type(res_type).values()
        if p.type != "special"
    )


def _change_keys(p: SearchParam) -> Keys:
    """What a parameter's rows depend on: its group's and its expression's change keys (a grouped expression is
    relative to the group's element: the group's keys), None when it cannot be told."""
    return _keys(p.group or p.expression, by_extension=True)


Head = tuple[str, Rest] | None  # `fhirpath.extension_head` of a grouped parameter's expression
Compiled = tuple[tuple[SearchParam, Keys, Evaluator | None, Evaluator, Adder, Keys, Head], ...]


@lru_cache(maxsize=128)
def _compiled(registry: Registry, res_type: str) -> Compiled:
    """`_plan` with each parameter's group and expression compiled (`fhirpath.evaluator`) and its row adder."""
    return tuple(
        (
            p,
            keys,
            evaluator(p.group) if p.group else None,
            evaluator(p.expression),
            ADDERS[p.type],
            change,
            extension_head(p.expression) if p.group else None,
        )
        for p, keys, change in _plan(registry, res_type)
    )


def changes_of(before: dict[str, Any], after: dict[str, Any], changed: frozenset[str]) -> frozenset[str]:
    """The change keys of an update whose top-level keys `changed` differ: those keys, with `extension` (every
    extension may have changed) told apart as `ANY_EXTENSION` and `extension_key(url)` of each URL whose
    top-level extensions differ, and `meta` as `ANY_META` and `meta_key(name)` of each element of `meta` that
    differs. A capacity PATCH changes the capacity indicators and the version id and date, not the commune or
    equipment extensions nor the tags and profiles: their parameters are not evaluated again."""
    out = changed
    if "extension" in changed:
        old, new = _extensions_by_url(before), _extensions_by_url(after)
        urls = {extension_key(str(u)) for u in old.keys() | new.keys() if old.get(u) != new.get(u)}
        out = (out - {"extension"}) | urls | {ANY_EXTENSION}
    if "meta" in changed:
        was, now = before.get("meta"), after.get("meta")
        if type(was) is dict and type(now) is dict:
            names = {meta_key(str(k)) for k in was.keys() | now.keys() if was.get(k) != now.get(k)}
            out = (out - {"meta"}) | names | {ANY_META}
    return out


def _extensions_by_url(res: dict[str, Any]) -> dict[Any, list[Any]]:
    out: dict[Any, list[Any]] = {}
    for ext in res.get("extension") or ():
        out.setdefault(ext.get("url") if type(ext) is dict else None, []).append(ext)
    return out


def _affected(change: Keys, changed: frozenset[str]) -> bool:
    """Whether a parameter with these change keys may have other rows after a change of `changed` (top-level
    keys, where `extension` means any extension, or `changes_of`)."""
    if change is None or not change.isdisjoint(changed):
        return True
    if "extension" in changed and any(k.startswith("extension(") for k in change):
        return True
    return "meta" in changed and any(k.startswith("meta.") for k in change)


@lru_cache(maxsize=4096)
def _applicable(registry: Registry, res_type: str, present: frozenset[str]) -> Compiled:
    """The parameters that can yield rows for a resource with these top-level keys: the resources of one type
    share a handful of key sets, so the test of each parameter's keys runs once per set, not per resource."""
    return tuple(c for c in _compiled(registry, res_type) if c[1] is None or not c[1].isdisjoint(present))


@lru_cache(maxsize=4096)
def _applicable_after(registry: Registry, res_type: str, present: frozenset[str], changed: frozenset[str]) -> Compiled:
    """`_applicable` restricted to the parameters `_affected` by a change: an update's change keys take a
    handful of values (a feeder's PATCH: the meta and one indicator URL), so the test runs once per set."""
    return tuple(c for c in _applicable(registry, res_type, present) if _affected(c[5], changed))


# index table (by IndexRows field name) of each parameter type
TABLE_OF_TYPE = {
    "token": "token",
    "string": "string",
    "uri": "string",
    "number": "number",
    "quantity": "quantity",
    "date": "date",
    "reference": "reference",
}
GEO_KEYS = frozenset({"position"})  # the geo row of a Location


GroupKey = tuple[str, int | None]  # (param, grp): the rows of one parameter from one repeated element
ROW_FIELDS = ("token", "string", "number", "quantity", "date", "reference")  # IndexRows fields with (param, grp)


@dataclass(frozen=True)
class RowChanges:
    """What an update changes in a resource's index rows: per index table (IndexRows field name) the groups of
    rows (param, grp) whose content differs — to delete —, `rows` the new rows of those groups — to insert —,
    and whether the geo row is replaced. A capacity PATCH that changes one indicator's count touches two groups
    (its count and its update date) and `_lastUpdated`, where rewriting every row of the changed elements meant
    ~30 rows deleted and inserted again."""

    stale: dict[str, list[GroupKey]]
    rows: IndexRows
    geo: bool
    # per index table, the new row of each group that held exactly one row before and after: updated in place
    # (one statement where delete + insert took two; a capacity PATCH changes two such groups)
    replaced: dict[str, list[Row]] = field(default_factory=dict)


def _group_key(k: GroupKey) -> tuple[str, int]:
    return (k[0], -1 if k[1] is None else k[1])


def row_changes(before: IndexRows, after: IndexRows) -> RowChanges:
    """The difference between the index rows of two versions (both extracted for the same changed keys): the
    groups to delete and their new rows, and the groups of one row on both sides, whose row is replaced."""
    rows = IndexRows()
    stale: dict[str, list[GroupKey]] = {}
    replaced: dict[str, list[Row]] = {}
    for name in ROW_FIELDS:
        old, new = getattr(before, name), getattr(after, name)
        if old == new:
            continue
        old_groups: dict[GroupKey, Counter[Row]] = {}
        new_groups: dict[GroupKey, list[Row]] = {}
        for r in old:
            old_groups.setdefault((r[1], r[2]), Counter())[r] += 1
        for r in new:
            new_groups.setdefault((r[1], r[2]), []).append(r)
        keys = sorted(
            (k for k in old_groups.keys() | new_groups.keys() if old_groups.get(k) != Counter(new_groups.get(k, ()))),
            key=_group_key,
        )
        one = [k for k in keys if len(new_groups.get(k, ())) == 1 and old_groups.get(k, Counter()).total() == 1]
        if one:
            replaced[name] = [new_groups[k][0] for k in one]
            in_place = set(one)
            keys = [k for k in keys if k not in in_place]
        if keys:
            stale[name] = keys
            getattr(rows, name).extend(r for k in keys for r in new_groups.get(k, ()))
    geo = before.geo != after.geo
    if geo:
        rows.geo.extend(after.geo)
    return RowChanges(stale, rows, geo, replaced)


Skip = dict[str, frozenset[int]]  # per group expression, the positions of the elements left out


def extract(
    registry: Registry,
    resource: dict[str, Any],
    changed: frozenset[str] | None = None,
    skip: Skip | None = None,
    groups: dict[str, list[Any]] | None = None,
) -> IndexRows:
    """The index rows of one resource (without `resource_pk`, which the store adds): all of them, or with
    `changed` (top-level keys, or the finer `changes_of`), only those of the parameters that depend on them;
    `skip`: repeated elements (groups) whose rows are not wanted, `groups`: group elements already read
    (`update_rows`)."""
    res_type = resource["resourceType"]
    rows = IndexRows()
    present = resource.keys()
    # a group shared by several parameters (capacity indicators) is read once
    groups = dict(groups) if groups else {}
    keys = frozenset(present)
    if changed is None:
        plan = _applicable(registry, res_type, keys)
    else:
        plan = _applicable_after(registry, res_type, keys, changed)
    subs: dict[str, list[dict[str, list[Any]] | None]] = {}  # per group, each element's sub-extensions by URL
    for p, _present, group, expression, add, _change, head in plan:
        try:
            if group is not None:
                nodes = groups.get(p.group)
                if nodes is None:
                    nodes = groups[p.group] = group(resource)
                left_out = skip.get(p.group, ()) if skip else ()
                if head is None:
                    for grp, node in enumerate(nodes):
                        if grp not in left_out:
                            for value in expression(node):
                                add(rows, res_type, p, value, grp)
                    continue
                url, rest = head
                by_url = subs.get(p.group)
                if by_url is None:
                    by_url = subs[p.group] = [None] * len(nodes)
                for grp, node in enumerate(nodes):
                    if grp in left_out:
                        continue
                    found = by_url[grp]
                    if found is None:
                        found = by_url[grp] = _sub_extensions(node)
                    values = found.get(url)
                    if values:
                        for value in rest(values):
                            add(rows, res_type, p, value, grp)
            else:
                for value in expression(resource):
                    add(rows, res_type, p, value, None)
        except ValueError:
            continue  # an unparsable value (e.g. a malformed date) is not indexed; validation reports it
    if res_type == "Location" and (changed is None or not GEO_KEYS.isdisjoint(changed)):
        pos = resource.get("position") or {}
        lat, lon = pos.get("latitude"), pos.get("longitude")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            rows.geo.append((res_type, float(lat), float(lon)))
    return rows


def _sub_extensions(node: Any) -> dict[str, list[Any]]:
    """The extensions of one element by URL (what `extension('u')` selects)."""
    out: dict[str, list[Any]] = {}
    if type(node) is dict:
        for e in node.get("extension") or ():
            if type(e) is dict:
                url = e.get("url")
                if type(url) is str:
                    out.setdefault(url, []).append(e)
    return out


def update_rows(
    registry: Registry, before: dict[str, Any], after: dict[str, Any], changed: frozenset[str]
) -> RowChanges:
    """`row_changes` between two versions of a resource whose top-level keys `changed` differ, without extracting
    the rows of the repeated elements (groups) that are equal in both at the same position: their rows are the
    same on both sides (a group's rows depend on its element and position only). A capacity PATCH changes one
    indicator of a Location that has several: the others are compared as dicts, not evaluated parameter by
    parameter twice (the extraction was a third of the write's Python time)."""
    changed = changes_of(before, after, changed)
    same: Skip = {}
    old_groups: dict[str, list[Any]] = {}
    new_groups: dict[str, list[Any]] = {}
    for p, _present, group, _expression, _add, change, _head in _compiled(registry, after["resourceType"]):
        if group is None or p.group in same or not _affected(change, changed):
            continue
        try:
            old, new = group(before), group(after)
        except ValueError:
            continue  # extracted (and skipped) as `extract` does
        same[p.group] = frozenset(i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a == b)
        old_groups[p.group], new_groups[p.group] = old, new
    return row_changes(
        extract(registry, before, changed, same, old_groups), extract(registry, after, changed, same, new_groups)
    )
