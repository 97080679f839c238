"""JSON Patch (RFC 6902) on a resource: add, remove, replace, move, copy, test; JSON Pointers (RFC 6901)."""

from __future__ import annotations

import copy
from typing import Any

from ror.errors import InvalidRequest, Unprocessable


def _tokens(pointer: Any, where: str) -> list[str]:
    if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
        raise InvalidRequest(f"{where}: invalid JSON pointer {pointer!r}", expression=where)
    if pointer == "":
        return []
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(container: list[Any], token: str, where: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise Unprocessable(f"{where}: {token!r} is not an array index", expression=where)
    i = int(token)
    if i > len(container) or (i == len(container) and not allow_end):
        raise Unprocessable(f"{where}: index {i} out of range", expression=where)
    return i


def _parent(doc: Any, tokens: list[str], where: str) -> Any:
    node = doc
    for t in tokens[:-1]:
        if isinstance(node, dict) and t in node:
            node = node[t]
        elif isinstance(node, list):
            node = node[_index(node, t, where, allow_end=False)]
        else:
            raise Unprocessable(f"{where}: path not found", expression=where)
    return node


def _get(doc: Any, tokens: list[str], where: str) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, where, allow_end=False)]
    raise Unprocessable(f"{where}: path not found", expression=where)


def _add(doc: Any, tokens: list[str], value: Any, where: str) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, where, allow_end=True), value)
    else:
        raise Unprocessable(f"{where}: cannot add below a primitive value", expression=where)
    return doc


def _remove(doc: Any, tokens: list[str], where: str) -> Any:
    if not tokens:
        raise Unprocessable(f"{where}: the whole document cannot be removed", expression=where)
    parent = _parent(doc, tokens, where)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, where, allow_end=False))
    raise Unprocessable(f"{where}: path not found", expression=where)


def apply(res: dict[str, Any], operations: Any) -> dict[str, Any]:
    """The patched copy of `res` (400 malformed patch, 422 a path that does not exist or a failed `test`)."""
    if not isinstance(operations, list):
        raise InvalidRequest("a JSON Patch body is an array of operations", expression="body")
    doc: Any = copy.deepcopy(res)
    for i, op in enumerate(operations):
        where = f"/{i}"
        if not isinstance(op, dict) or op.get("op") not in ("add", "remove", "replace", "move", "copy", "test"):
            raise InvalidRequest(f"{where}: op must be add|remove|replace|move|copy|test", expression=where)
        path = _tokens(op.get("path"), where)
        kind = op["op"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise InvalidRequest(f"{where}: {kind} needs a value", expression=where)
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]), where)
        elif kind == "remove":
            _remove(doc, path, where)
        elif kind == "replace":
            _get(doc, path, where)
            if not path:
                doc = copy.deepcopy(op["value"])
            else:
                parent = _parent(doc, path, where)
                key: Any = path[-1] if isinstance(parent, dict) else _index(parent, path[-1], where, allow_end=False)
                parent[key] = copy.deepcopy(op["value"])
        elif kind == "test":
            if _get(doc, path, where) != op["value"]:
                raise Unprocessable(f"{where}: test failed at {op.get('path')}", expression=where)
        else:
            source = _tokens(op.get("from"), where)
            if kind == "move":
                if path[: len(source)] == source and path != source:
                    raise InvalidRequest(f"{where}: cannot move a value into itself", expression=where)
                value = _remove(doc, source, where)
            else:
                value = copy.deepcopy(_get(doc, source, where))
            doc = _add(doc, path, value, where)
    if not isinstance(doc, dict):
        raise Unprocessable("the patched document is not a resource", expression="body")
    return doc
