"""FHIRPath Patch (FHIR R4 §2.40): a `Parameters` body of `operation` parameters, each with `type` (add, insert,
delete, replace, move), `path` (a FHIRPath locating the element) and, by type, `name`, `value`, `index`,
`source`, `destination`. Generic over any resource; the capacity feeder protocol (ror.capacity.patch) reads its
operations with `raw_operations`.

Paths: `Type.element`, `element[i]`, `extension('url')`, `where(field='literal' and path.to.field='literal')`,
`first()`, `last()` and choice elements (`value` finds `valueString`…)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from ror.errors import InvalidRequest, Unprocessable
from ror.search.fhirpath import evaluate
from ror.validation.structure import _COMMON, SHAPES

# nested elements that are arrays (top-level ones are known per resource type: ror.validation.structure.SHAPES)
NESTED_ARRAYS = frozenset(
    [
        "extension",
        "modifierExtension",
        "coding",
        "line",
        "given",
        "prefix",
        "suffix",
        "telecom",
        "daysOfWeek",
        "tag",
        "profile",
        "security",
        "part",
    ]
)


def _is_array(target: dict[str, Any], name: str, root: dict[str, Any]) -> bool:
    if target is root:
        shapes = {**_COMMON, **SHAPES.get(str(root.get("resourceType")), {})}
        return shapes.get(name) == "array"
    return name in NESTED_ARRAYS


@dataclass
class RawOperation:
    where: str  # Parameters.parameter[i]
    type: str | None
    path: str | None
    parts: dict[str, dict[str, Any]]


def raw_operations(body: Any) -> list[RawOperation]:
    """The `operation` parameters of a FHIRPath Patch body (400 when it is not one)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidRequest(
            "the PATCH body must be a FHIR Parameters resource (FHIRPath Patch)", expression="Parameters"
        )
    ops: list[RawOperation] = []
    for i, param in enumerate(body.get("parameter") or []):
        where = f"Parameters.parameter[{i}]"
        if not isinstance(param, dict) or param.get("name") != "operation":
            raise InvalidRequest(f"{where}: only 'operation' parameters are accepted", expression=where)
        parts = {
            p["name"]: p for p in param.get("part") or [] if isinstance(p, dict) and isinstance(p.get("name"), str)
        }
        type_part = parts.get("type") or {}
        op_type = type_part.get("valueCode") or type_part.get("valueString")
        path = (parts.get("path") or {}).get("valueString")
        ops.append(RawOperation(where, op_type, path if isinstance(path, str) else None, parts))
    if not ops:
        raise InvalidRequest("no operation in the Parameters body", expression="Parameters.parameter")
    return ops


# --- locating nodes with their parents ------------------------------------------------------------------------
@dataclass
class Slot:
    value: Any
    parent: Any  # dict or list holding the value (None for the root)
    key: str | int | None


_STEP = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\((?P<args>.*)\))?(?:\[(?P<index>\d+)\])?$", re.S)


def _split(path: str) -> list[str]:
    parts, depth, quote, cur = [], 0, False, ""
    for ch in path:
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        if ch == "." and not quote and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def _children(slots: list[Slot], name: str) -> list[Slot]:
    out: list[Slot] = []
    for s in slots:
        node = s.value
        if not isinstance(node, dict):
            continue
        key = name
        if name not in node:
            key = next((k for k in node if k.startswith(name) and len(k) > len(name) and k[len(name)].isupper()), "")
            if not key:
                continue
        value = node[key]
        if isinstance(value, list):
            out += [Slot(item, value, i) for i, item in enumerate(value)]
        else:
            out.append(Slot(value, node, key))
    return out


def locate(res: dict[str, Any], path: str) -> list[Slot]:
    steps = _split(path)
    if not steps or steps[0] != res.get("resourceType"):
        raise InvalidRequest(
            f"the patch path must start with {res.get('resourceType')}: {path!r}", expression="Parameters.parameter"
        )
    slots = [Slot(res, None, None)]
    for step in steps[1:]:
        m = _STEP.match(step)
        if not m:
            raise InvalidRequest(f"unsupported step {step!r} in patch path {path!r}", expression="Parameters.parameter")
        name, args, index = m["name"], m["args"], m["index"]
        if args is not None:
            if name == "extension":
                url = args.strip().strip("'")
                slots = [
                    s for s in _children(slots, "extension") if isinstance(s.value, dict) and s.value.get("url") == url
                ]
            elif name == "where":
                slots = [s for s in slots if evaluate(s.value, f"where({args})")]
            elif name == "first" and not args.strip():
                slots = slots[:1]
            elif name == "last" and not args.strip():
                slots = slots[-1:]
            else:
                raise InvalidRequest(f"unsupported function {name}() in patch path", expression="Parameters.parameter")
        else:
            slots = _children(slots, name)
        if index is not None:
            i = int(index)
            slots = slots[i : i + 1]
    return slots


def _value(part: dict[str, Any] | None, where: str) -> Any:
    if not part:
        raise InvalidRequest(f"{where}: a value is required", expression=f"{where}.part")
    for key, v in part.items():
        if key.startswith("value") and len(key) > 5:
            return copy.deepcopy(v)
    if isinstance(part.get("part"), list):  # an anonymous (backbone) type given as parts
        out: dict[str, Any] = {}
        for sub in part["part"]:
            out[sub.get("name")] = _value(sub, where)
        return out
    raise InvalidRequest(f"{where}: the value part has no value[x]", expression=f"{where}.part")


def _single(slots: list[Slot], op: RawOperation) -> Slot:
    if len(slots) != 1:
        raise Unprocessable(
            f"{op.where}: the path {op.path!r} selects {len(slots)} elements, exactly one is required",
            expression=op.path or op.where,
        )
    return slots[0]


def _remove(slot: Slot) -> None:
    if isinstance(slot.parent, list):
        del slot.parent[slot.key]  # type: ignore[arg-type]
    elif isinstance(slot.parent, dict):
        del slot.parent[slot.key]


def _prune(node: Any) -> None:
    """Drop the empty arrays and objects a deletion leaves behind."""
    if isinstance(node, dict):
        for k in list(node):
            _prune(node[k])
            if node[k] in ([], {}):
                del node[k]
    elif isinstance(node, list):
        for item in node:
            _prune(item)
        node[:] = [i for i in node if i not in ([], {})]


def apply(res: dict[str, Any], body: Any) -> dict[str, Any]:
    """The patched copy of `res`. 400 on a malformed patch, 422 when a path does not select what it must."""
    out = copy.deepcopy(res)
    for op in raw_operations(body):
        if op.type not in ("add", "insert", "delete", "replace", "move") or op.path is None:
            raise InvalidRequest(
                f"{op.where}: needs a type (add|insert|delete|replace|move) and a path", expression=f"{op.where}.part"
            )
        slots = locate(out, op.path)
        if op.type == "delete":
            if len(slots) > 1:
                _single(slots, op)
            if slots:
                _remove(slots[0])
        elif op.type == "replace":
            slot = _single(slots, op)
            if slot.parent is None:
                raise InvalidRequest(f"{op.where}: the resource itself cannot be replaced", expression=op.path)
            slot.parent[slot.key] = _value(op.parts.get("value"), op.where)
        elif op.type == "add":
            target = _single(slots, op).value
            name = (op.parts.get("name") or {}).get("valueString")
            if not isinstance(target, dict) or not isinstance(name, str) or not name:
                raise InvalidRequest(f"{op.where}: add needs an element path and a name", expression=op.where)
            value = _value(op.parts.get("value"), op.where)
            if isinstance(target.get(name), list):
                target[name].append(value)
            elif name in target:
                raise Unprocessable(f"{op.where}: {op.path}.{name} already has a value", expression=op.path)
            else:
                target[name] = [value] if _is_array(target, name, out) else value
        else:  # insert / move: within the array the path selects
            if not slots or not isinstance(slots[0].parent, list):
                raise InvalidRequest(f"{op.where}: {op.type} needs a path to array elements", expression=op.path)
            array = slots[0].parent
            if op.type == "insert":
                index = (op.parts.get("index") or {}).get("valueInteger")
                if not isinstance(index, int) or not 0 <= index <= len(array):
                    raise InvalidRequest(f"{op.where}: invalid index", expression=f"{op.where}.part")
                array.insert(index, _value(op.parts.get("value"), op.where))
            else:
                src = (op.parts.get("source") or {}).get("valueInteger")
                dst = (op.parts.get("destination") or {}).get("valueInteger")
                if (
                    not isinstance(src, int)
                    or not isinstance(dst, int)
                    or not (0 <= src < len(array) and 0 <= dst < len(array))
                ):
                    raise InvalidRequest(f"{op.where}: invalid source/destination", expression=f"{op.where}.part")
                array.insert(dst, array.pop(src))
    _prune(out)
    return out
