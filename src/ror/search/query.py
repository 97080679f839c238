"""Parse FHIR search parameters into a typed query tree, checked against the registry.

Every error names the offending parameter (`InvalidRequest(expression=<name>)`), so the API answers 400 with an
OperationOutcome that says what to fix."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ror.errors import InvalidRequest
from ror.search.registry import SPECIAL_PARAMS, Registry, SearchParam

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
RESULT_PARAMS = {
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_elements",
    "_summary",
    "_total",
    "_format",
    "_pretty",
    "_cursor",
    "_totalMethod",
    "_include:iterate",
    "_revinclude:iterate",
    "_include:recurse",
    "_revinclude:recurse",
}
MODIFIERS = {
    "token": {"not", "text", "of-type", "missing", "exact"},
    "string": {"exact", "contains", "missing"},
    "number": {"missing"},
    "date": {"missing"},
    "quantity": {"missing"},
    "reference": {"missing", "above"},
    "uri": {"missing", "exact"},
    "special": set(),
}
MAX_COUNT = 200
DEFAULT_COUNT = 200

SystemResolver = Callable[[str], str]


@dataclass
class Value:
    raw: str
    prefix: str = "eq"  # for number/date/quantity
    system: str | None = None  # token/quantity system; "" = explicitly no system
    code: str | None = None  # token code / quantity unit


@dataclass
class Criterion:
    """One parameter with its OR-ed values (`name=a,b`); repeats of a parameter are AND-ed criteria."""

    name: str
    param: SearchParam | None  # None for _id / _lastUpdated / near / near-insee-code
    type: str
    modifier: str | None
    values: list[Value]


@dataclass
class Chain:
    """`ref.param` (forward chain) — or `ref:above.param` up the partOf tree of the target."""

    ref: SearchParam
    target_type: str
    above: bool
    inner: Node


@dataclass
class Has:
    """`_has:Type:refParam:param=value` (reverse chain)."""

    source_type: str
    ref_code: str
    inner: Node


@dataclass
class BoolNode:
    op: str  # and | or | not
    children: list[Node]


Node = Criterion | Chain | Has | BoolNode


@dataclass
class Near:
    lat: float
    lon: float
    km: float


@dataclass
class Include:
    source_type: str
    param: str
    target_type: str | None
    iterate: bool
    reverse: bool


@dataclass
class SortKey:
    name: str
    param: SearchParam | None
    descending: bool


@dataclass
class SearchQuery:
    res_type: str
    nodes: list[Node] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    sort: list[SortKey] = field(default_factory=list)
    includes: list[Include] = field(default_factory=list)
    elements: list[str] | None = None
    summary: str | None = None
    cursor: str | None = None
    near: Near | None = None  # the point of the first near criterion, for distances and _sort=near
    total: str = "accurate"


class QueryParser:
    def __init__(
        self,
        registry: Registry,
        resolve_system: SystemResolver,
        centroid: Callable[[str], tuple[float, float] | None],
    ) -> None:
        self.registry = registry
        self.resolve_system = resolve_system
        self.centroid = centroid

    # -- entry point -------------------------------------------------------------------------------------------
    def parse(self, res_type: str, items: list[tuple[str, str]]) -> SearchQuery:
        q = SearchQuery(res_type)
        for name, value in items:
            if name in RESULT_PARAMS or name.startswith(("_include", "_revinclude")):
                self._result_param(q, name, value)
            elif name == "_filter":
                from ror.search.filter import parse_filter

                q.nodes.append(parse_filter(value, lambda n, op, v: self._filter_node(q, res_type, n, op, v)))
            elif name.startswith("_has:"):
                q.nodes.append(self._has(q, res_type, name, value))
            elif name in ("_content", "_text", "_query", "_list"):
                raise InvalidRequest(f"parameter {name} is not supported by this server", expression=name)
            else:
                q.nodes.append(self._param(q, res_type, name, value))
        return q

    # -- result parameters -------------------------------------------------------------------------------------
    def _result_param(self, q: SearchQuery, name: str, value: str) -> None:
        if name == "_count":
            if not value.isdigit():
                raise InvalidRequest(f"_count must be a non-negative integer, got {value!r}", expression="_count")
            q.count = min(int(value), MAX_COUNT)
        elif name == "_sort":
            for part in filter(None, (p.strip() for p in value.split(","))):
                desc = part.startswith("-")
                key = part.lstrip("-")
                if key in ("near", "_near", "distance"):
                    q.sort.append(SortKey("near", None, desc))
                elif key in ("_id", "_lastUpdated"):
                    q.sort.append(SortKey(key, None, desc))
                else:
                    p = self.registry.get(q.res_type, key)
                    if p is None or p.type not in ("string", "token", "number", "date", "quantity"):
                        raise InvalidRequest(
                            f"_sort: {key!r} is not a sortable parameter of {q.res_type}", expression="_sort"
                        )
                    q.sort.append(SortKey(key, p, desc))
        elif name.startswith(("_include", "_revinclude")):
            reverse = name.startswith("_revinclude")
            iterate = name.endswith((":iterate", ":recurse"))
            for v in value.split(","):
                q.includes.append(self._include(q.res_type, name, v.strip(), reverse, iterate))
        elif name == "_elements":
            q.elements = [e.strip() for e in value.split(",") if e.strip()]
        elif name == "_summary":
            if value not in ("count", "false"):
                raise InvalidRequest(f"_summary={value} is not supported (use count or false)", expression="_summary")
            q.summary = None if value == "false" else value
        elif name == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise InvalidRequest("_total must be none, estimate or accurate", expression="_total")
            q.total = value
        elif name == "_cursor":
            q.cursor = value
        # _format / _pretty: JSON is the only format served; _totalMethod (sent by the fhirpy client): the total is
        # always exact. Accepted and ignored.

    def _include(self, res_type: str, name: str, spec: str, reverse: bool, iterate: bool) -> Include:
        if spec == "*":
            return Include("*", "*", None, iterate, reverse)
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise InvalidRequest(f"{name}={spec}: expected Type:parameter[:targetType]", expression=name)
        src, code = parts[0], parts[1]
        p = self.registry.get(src, code)
        if p is None or p.type != "reference":
            raise InvalidRequest(f"{name}={spec}: {src} has no reference parameter {code!r}", expression=name)
        target = parts[2] if len(parts) == 3 else (p.target[0] if len(p.target) == 1 else None)
        return Include(src, code, target, iterate, reverse)

    # -- criteria ----------------------------------------------------------------------------------------------
    def _has(self, q: SearchQuery, res_type: str, name: str, value: str) -> Has:
        parts = name.split(":", 3)
        if len(parts) != 4:
            raise InvalidRequest(f"{name}: expected _has:Type:reference:parameter", expression=name)
        _, src, ref_code, inner_name = parts
        ref = self.registry.get(src, ref_code)
        if ref is None or ref.type != "reference":
            raise InvalidRequest(f"{name}: {src} has no reference parameter {ref_code!r}", expression=name)
        if ref.target and res_type not in ref.target:
            raise InvalidRequest(f"{name}: {src}.{ref_code} does not point to {res_type}", expression=name)
        return Has(src, ref_code, self._param(q, src, inner_name, value, label=name))

    def _param(self, q: SearchQuery, res_type: str, name: str, value: str, label: str | None = None) -> Node:
        label = label or name
        base, modifier = name, None
        if "." in name:
            head, rest = name.split(".", 1)
            return self._chain(q, res_type, head, rest, value, label)
        if ":" in name:
            base, modifier = name.split(":", 1)
        return self._node(q, res_type, base, modifier, value, label=label)

    def _chain(self, q: SearchQuery, res_type: str, head: str, rest: str, value: str, label: str) -> Chain:
        above = False
        # also accept the ANS style `organization.identifier:above=…`
        if rest.endswith(":above") and "." not in rest:
            above, rest = True, rest[: -len(":above")]
        ref, target, head_above = self._chain_target(res_type, head, label)
        return Chain(ref, target, above or head_above, self._param(q, target, rest, value, label=label))

    def _chain_target(self, res_type: str, head: str, label: str) -> tuple[SearchParam, str, bool]:
        ref_code, _, mod = head.partition(":")
        above = mod == "above"
        ref = self.registry.get(res_type, ref_code)
        if ref is None or ref.type != "reference":
            raise InvalidRequest(
                f"{label}: {res_type} has no reference parameter {ref_code!r} to chain on", expression=label
            )
        target = mod if mod and mod != "above" else (ref.target[0] if len(ref.target) == 1 else None)
        if target is None:
            raise InvalidRequest(f"{label}: give the target type ({ref_code}:Type.param)", expression=label)
        if above and target != "Organization":
            raise InvalidRequest(f"{label}: :above is supported on Organization references", expression=label)
        return ref, target, above

    def _filter_node(self, q: SearchQuery, res_type: str, path: str, op: str, value: str) -> Node:
        """A `_filter` comparison becomes the equivalent parameter criterion (same semantics as the URL form)."""
        if "." in path:
            head, rest = path.split(".", 1)
            ref, target, above = self._chain_target(res_type, head, "_filter")
            return Chain(ref, target, above, self._filter_node(q, target, rest, op, value))
        code = path
        typ = SPECIAL_PARAMS.get(code) or getattr(self.registry.get(res_type, code), "type", None)
        if typ is None:
            raise InvalidRequest(f"_filter: unknown search parameter {code!r} for {res_type}", expression="_filter")
        if op == "pr":
            return self._node(q, res_type, code, "missing", "false" if value.lower() == "true" else "true")
        if typ in ("number", "date", "quantity"):
            if op not in PREFIXES:
                raise InvalidRequest(f"_filter: operator {op} does not apply to {code} ({typ})", expression="_filter")
            return self._node(q, res_type, code, None, f"{op}{value}")
        if typ == "string":
            modifier = {"eq": "exact-ci", "ne": "exact-ci", "co": "contains", "sw": None, "ew": "ends"}.get(op, "?")
            if modifier == "?":
                raise InvalidRequest(f"_filter: operator {op} does not apply to {code} (string)", expression="_filter")
            node = Criterion(code, self.registry.get(res_type, code), typ, modifier, [Value(value)])
            return BoolNode("not", [node]) if op == "ne" else node
        if op not in ("eq", "ne"):
            raise InvalidRequest(f"_filter: operator {op} does not apply to {code} ({typ})", expression="_filter")
        node = self._node(q, res_type, code, None, value)
        return BoolNode("not", [node]) if op == "ne" else node

    def _node(
        self, q: SearchQuery, res_type: str, code: str, modifier: str | None, value: str, *, label: str | None = None
    ) -> Node:
        label = label or code
        if code in ("near", "near-insee-code") and res_type == "Location":
            return self._near(q, code, value, label)
        if code in SPECIAL_PARAMS:
            typ = SPECIAL_PARAMS[code]
            param = None
        else:
            param = self.registry.get(res_type, code)
            if param is None:
                raise InvalidRequest(f"unknown search parameter {label!r} for {res_type}", expression=label)
            typ = param.type
        if modifier is not None and modifier not in MODIFIERS.get(typ, set()):
            if typ == "reference" and modifier[:1].isupper():
                pass  # a type modifier: reference to that type
            else:
                raise InvalidRequest(f"modifier :{modifier} is not supported on {label} ({typ})", expression=label)
        if modifier == "missing":
            if value not in ("true", "false"):
                raise InvalidRequest(f"{label}:missing must be true or false", expression=label)
            return Criterion(code, param, typ, modifier, [Value(value)])
        values = [self._value(typ, v, label, modifier) for v in _split_or(value)]
        if not values:
            raise InvalidRequest(f"{label}: empty value", expression=label)
        return Criterion(code, param, typ, modifier, values)

    def _near(self, q: SearchQuery, code: str, value: str, label: str) -> Criterion:
        parts = value.split("|")
        try:
            if code == "near":
                if len(parts) < 2:
                    raise ValueError
                lat, lon = float(parts[0]), float(parts[1])
                rest = parts[2:]
            else:
                point = self.centroid(parts[0])
                if point is None:
                    raise InvalidRequest(f"{label}: unknown INSEE commune code {parts[0]!r}", expression=label)
                lat, lon = point
                rest = parts[1:]
            km = float(rest[0]) if rest and rest[0] else 50.0
            unit = rest[1] if len(rest) > 1 and rest[1] else "km"
        except ValueError as exc:
            raise InvalidRequest(
                f"{label}: expected latitude|longitude|distance|km, got {value!r}", expression=label
            ) from exc
        if unit in ("m", "urn:m"):
            km /= 1000
        elif unit not in ("km", "urn:km"):
            raise InvalidRequest(f"{label}: distance unit must be km or m, got {unit!r}", expression=label)
        if not (-90 <= lat <= 90 and -180 <= lon <= 180) or km <= 0:
            raise InvalidRequest(f"{label}: coordinates or distance out of range", expression=label)
        near = Near(lat, lon, km)
        if q.near is None:
            q.near = near
        return Criterion("near", None, "special", None, [Value(value, code=f"{lat}|{lon}|{km}")])

    def _value(self, typ: str, raw: str, label: str, modifier: str | None) -> Value:
        if typ in ("number", "date", "quantity"):
            prefix = "eq"
            if len(raw) > 2 and raw[:2] in PREFIXES and not raw[2].isalpha():
                prefix, raw = raw[:2], raw[2:]
            v = Value(raw, prefix)
            if typ == "number":
                _number(raw, label)
            elif typ == "date":
                from ror.search.normalise import date_range

                try:
                    date_range(raw)
                except ValueError as exc:
                    raise InvalidRequest(f"{label}: {exc}", expression=label) from exc
            else:
                num, _, unit = raw.partition("|")
                _number(num, label)
                v.raw = num
                if unit:
                    system, _, code = unit.partition("|")
                    v.system = system or None
                    v.code = code or None
            return v
        if typ == "token":
            if modifier in ("text",):
                return Value(raw)
            if modifier == "of-type":
                bits = raw.split("|")
                if len(bits) != 3:
                    raise InvalidRequest(f"{label}:of-type expects system|code|value", expression=label)
                return Value(bits[2], system=self._system(bits[0], label) if bits[0] else None, code=bits[1])
            if "|" in raw:
                system, _, code = raw.partition("|")
                return Value(raw, system=self._system(system, label) if system else "", code=code or None)
            return Value(raw, code=raw)
        return Value(raw)

    def _system(self, system: str, label: str) -> str:
        try:
            return self.resolve_system(system)
        except Exception as exc:
            raise InvalidRequest(f"{label}: unknown code system {system!r}", expression=label) from exc


def _number(raw: str, label: str) -> float:
    try:
        return float(raw)
    except ValueError as exc:
        raise InvalidRequest(f"{label}: {raw!r} is not a number", expression=label) from exc


_SPLIT = re.compile(r"(?<!\\),")


def _split_or(value: str) -> list[str]:
    return [v.replace("\\,", ",") for v in _SPLIT.split(value) if v != ""]
