"""The capacity feeder protocol (docs/ror-fhir-api.md §3.4): a FHIRPath Patch `Parameters` body whose operations
select an indicator by its codes and replace, add or delete it, or replace a Location's whole capacity list.

Accepted paths:
  Location                                                     (add: append the indicator(s) of the value)
  Location.extension.where(url='<CAP>')                        (replace: the complete new list)
  Location.extension.where(url='<CAP>' and extension.where(url='<sub>' and valueCodeableConcept.coding[0].code='<c>')
                                        and …)                 (replace / delete one indicator)
  …that selector followed by .extension.where(url='nbCapacity')  (replace the number only)
Values: `{"name": "value", "part": [{"extension": [<capacity extension>, …]}]}` (ANS production form),
`{"name": "value", "valueInteger": n}`, or the IG draft's `url`/`extension` parts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from ror.capacity.model import CAPACITY_URL, CODED, Indicator, parse_indicator
from ror.capacity.rules import BusinessRuleError
from ror.errors import InvalidRequest, Issue, NotFound
from ror.write.fhirpath_patch import raw_operations

CAP_PATH = f"Location.extension.where(url='{CAPACITY_URL}')"
_WHERE_SUB = re.compile(r"^Location\.extension\.where\((?P<cond>.*)\)\.extension\.where\(url='(?P<sub>\w+)'\)$")
_WHERE = re.compile(r"^Location\.extension\.where\((?P<cond>.*)\)(?P<sub>)$")
_SUB = re.compile(
    r"^extension\.where\(url='(?P<url>\w+)' and value(?:CodeableConcept\.coding(?:\[0\])?\.code|Coding\.code|Code)"
    r"\s*=\s*'(?P<code>[^']*)'\)$"
)
_URL = re.compile(r"^url\s*=\s*'(?P<url>[^']+)'$")


@dataclass
class Selector:
    """The codes an operation path requires (sub-extension url → code) and an optional targeted sub-element."""

    criteria: dict[str, str] = field(default_factory=dict)
    sub: str | None = None
    whole_list: bool = False

    def matches(self, ind: Indicator) -> bool:
        return all((getattr(ind, CODED[url][0]) or "") == code for url, code in self.criteria.items())

    def describe(self) -> str:
        names = [u for u, _ in CODED.items() if u != "capacitySourceType"]
        return " / ".join(f"{u}: {self.criteria.get(u, 'null')}" for u in names)


@dataclass
class Operation:
    type: str  # add | replace | delete
    path: str
    selector: Selector | None
    values: list[Any]  # capacity extensions (dicts) or an int for nbCapacity


def _split_and(text: str) -> list[str]:
    parts, depth, quote, cur = [], 0, False, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        if not quote and depth == 0 and text.startswith(" and ", i):
            parts.append(cur.strip())
            cur, i = "", i + 5
            continue
        cur += ch
        i += 1
    parts.append(cur.strip())
    return parts


def parse_path(path: str) -> Selector | None:
    """None for the bare `Location` path; a Selector otherwise. InvalidRequest on anything else."""
    parsed = _parse_path(path.strip())
    if parsed is None:
        return None
    criteria, sub, whole_list = parsed
    return Selector(dict(criteria), sub, whole_list)


@lru_cache(maxsize=4096)
def _parse_path(p: str) -> tuple[tuple[tuple[str, str], ...], str | None, bool] | None:
    """Parsed once per distinct path (a feeder sends the same few paths for each of its units)."""
    if p == "Location":
        return None
    m = _WHERE_SUB.match(p) or _WHERE.match(p)
    if not m:
        raise InvalidRequest(f"unsupported patch path {p!r}", expression="Parameters.parameter.part.path")
    conds = _split_and(m["cond"])
    url = _URL.match(conds[0])
    if not url or url["url"] != CAPACITY_URL:
        raise InvalidRequest(f"the path must select url='{CAPACITY_URL}'", expression="Parameters.parameter.part.path")
    criteria: dict[str, str] = {}
    for cond in conds[1:]:
        sm = _SUB.match(cond)
        if not sm or sm["url"] not in CODED:
            raise InvalidRequest(
                f"unsupported condition {cond!r} in the patch path", expression="Parameters.parameter.part.path"
            )
        criteria[sm["url"]] = sm["code"]
    sub = m["sub"] or None
    return tuple(criteria.items()), sub, not criteria and sub is None


def _extensions_from_value(part: dict[str, Any]) -> list[Any]:
    if "valueInteger" in part:
        return [part["valueInteger"]]
    if part.get("name") == "valueInteger" and "value" in part:  # IG draft typo, tolerated
        return [part["value"]]
    out: list[Any] = []
    for sub in part.get("part") or []:
        if isinstance(sub.get("extension"), list):
            out += sub["extension"]
        elif sub.get("url") == CAPACITY_URL:
            out.append(sub)
    return out


def operation(kind: str, path: str, extensions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One FHIRPath Patch operation as a feeder sends it (docs/ror-fhir-api.md §3.4): `replace` / `delete` of the
    indicator selected by `path`, or `add` of new ones to `Location`; `extensions` are capacity extensions."""
    parts: list[dict[str, Any]] = [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}]
    if kind == "add":
        parts.append({"name": "name", "valueString": "extension"})
    if extensions:
        parts.append({"name": "value", "part": [{"extension": extensions}]})
    return {"name": "operation", "part": parts}


def parameters(*operations: dict[str, Any]) -> dict[str, Any]:
    """The `Parameters` body of a capacity PATCH (built with `operation`)."""
    return {"resourceType": "Parameters", "parameter": list(operations)}


def parse_parameters(body: Any) -> list[Operation]:
    ops: list[Operation] = []
    for raw in raw_operations(body):
        where = raw.where
        if raw.type not in ("add", "replace", "delete") or raw.path is None:
            raise InvalidRequest(f"{where}: needs type add|replace|delete and a path", expression=f"{where}.part")
        value_part = raw.parts.get("value") or raw.parts.get("valueInteger") or {}
        values = _extensions_from_value(value_part) if value_part else []
        if raw.type != "delete" and not values:
            raise InvalidRequest(f"{where}: no value given", expression=f"{where}.part")
        ops.append(Operation(raw.type, raw.path, parse_path(raw.path), values))
    return ops


def is_capacity_patch(body: Any) -> bool:
    """Whether a FHIRPath Patch body only touches the capacity indicators (the feeder protocol): every path is
    the bare `Location` (adding indicators) or starts with the capacity extension selector."""
    try:
        ops = raw_operations(body)
    except InvalidRequest:
        return False
    for raw in ops:
        path = (raw.path or "").strip()
        if path == "Location":
            if raw.type != "add" or (raw.parts.get("name") or {}).get("valueString") not in (None, "extension"):
                return False
            values = _extensions_from_value(raw.parts.get("value") or {})
            if not values or any(not isinstance(v, dict) or v.get("url") != CAPACITY_URL for v in values):
                return False
        elif not path.startswith(CAP_PATH[:-1]):
            return False
    return True


def _not_found(sel: Selector) -> NotFound:
    return NotFound(
        "Les données fournies ne permettent pas de déterminer l'indicateur à mettre à jour: aucun indicateur "
        f"présent ne correspond ({sel.describe()})",
        expression=CAP_PATH,
    )


def apply(indicators: list[Indicator], ops: list[Operation]) -> list[Indicator]:
    """The new indicator list after the operations (in order). Raises NotFound (404, expression = the capacity
    path, so the client sends `add`), BusinessRuleError (ambiguous selector) or InvalidRequest."""
    current = list(indicators)
    for n, op in enumerate(ops):
        where = f"Parameters.parameter[{n}]"
        sel = op.selector
        if sel is not None and sel.whole_list:
            if op.type == "delete":
                current = []
                continue
            current = [parse_indicator(v, f"{where}.part.value") for v in op.values if isinstance(v, dict)]
            continue
        if op.type == "add":
            if sel is not None and sel.criteria:
                raise InvalidRequest(f"{where}: add takes the path Location", expression=f"{where}.part.path")
            current += [parse_indicator(v, f"{where}.part.value") for v in op.values if isinstance(v, dict)]
            continue
        if sel is None:
            raise InvalidRequest(
                f"{where}: {op.type} needs a path selecting an indicator", expression=f"{where}.part.path"
            )
        hits = [i for i, ind in enumerate(current) if sel.matches(ind)]
        if not hits:
            raise _not_found(sel)
        if len(hits) > 1 and op.type == "replace":
            raise BusinessRuleError(
                f"Les critères du FhirPath ne correspondent pas à un indicateur unique ({len(hits)} trouvés) : "
                f"{sel.describe()}",
                issues=[Issue("error", "business-rule", f"the path selects {len(hits)} indicators", [op.path])],
            )
        if op.type == "delete":
            current = [ind for i, ind in enumerate(current) if i not in hits]
            continue
        idx = hits[0]
        if sel.sub == "nbCapacity":
            nb = op.values[0]
            if isinstance(nb, str) and nb.isdigit():
                nb = int(nb)
            if isinstance(nb, bool) or not isinstance(nb, int) or nb < 0:
                raise InvalidRequest(f"{where}: nbCapacity must be an integer ≥ 0", expression=f"{where}.part.value")
            old = current[idx]
            current[idx] = replace(old, nb=nb)
        elif sel.sub is None:
            new = [parse_indicator(v, f"{where}.part.value") for v in op.values if isinstance(v, dict)]
            if len(new) != 1:
                raise InvalidRequest(f"{where}: replace takes exactly one indicator", expression=f"{where}.part.value")
            if not sel.matches(new[0]):
                raise BusinessRuleError(
                    "Les valeurs du nouvel objet ne correspondent pas à l'indicateur ciblé : " + sel.describe(),
                    issues=[
                        Issue(
                            "error", "business-rule", "the new indicator does not match the path criteria", [CAP_PATH]
                        )
                    ],
                )
            current[idx] = new[0]
        else:
            raise InvalidRequest(
                f"{where}: only nbCapacity can be targeted inside an indicator", expression=f"{where}.part.path"
            )
    return current
