"""A small FHIRPath subset, enough to extract search values from the SearchParameter expressions we declare.

Supported: `Type.path.to.element`, choice elements (`value` finds `valueCodeableConcept`, `valueInteger`…),
`extension('url')`, `where(name='literal')` (several conditions joined by `and`), and unions with `|`.
Anything else raises ValueError at registry load time, so a bad declaration fails loudly, not silently."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

Step = Callable[[list[Any]], list[Any]]

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<func>[A-Za-z_][A-Za-z0-9_]*)\((?P<args>(?:'[^']*'|[^()'])*)\)
    |(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)
    )\s*""",
    re.X,
)
_COND = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*'([^']*)'\s*")


def _children(nodes: Iterable[Any], name: str) -> list[Any]:
    out: list[Any] = []
    for node in nodes:
        if not isinstance(node, dict):
            continue
        if name in node:
            value = node[name]
        else:  # choice type: value -> valueX
            value = None
            for key, v in node.items():
                if key.startswith(name) and len(key) > len(name) and key[len(name)].isupper():
                    value = v
                    break
            if value is None:
                continue
        if isinstance(value, list):
            out.extend(value)
        else:
            out.append(value)
    return out


def _split_top(expr: str, sep: str) -> list[str]:
    parts, depth, quote, cur = [], 0, False, []
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        if not quote and depth == 0 and expr.startswith(sep, i):
            parts.append("".join(cur))
            cur = []
            i += len(sep)
            continue
        cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def _where(args: str) -> Step:
    conds = []
    for part in _split_top(args, " and "):
        m = _COND.fullmatch(part)
        if not m:
            raise ValueError(f"unsupported where() condition: {part!r}")
        conds.append((m.group(1), m.group(2)))

    def step(nodes: list[Any]) -> list[Any]:
        return [n for n in nodes if isinstance(n, dict) and all(n.get(k) == v for k, v in conds)]

    return step


def _extension(args: str) -> Step:
    url = args.strip().strip("'")

    def step(nodes: list[Any]) -> list[Any]:
        return [e for e in _children(nodes, "extension") if isinstance(e, dict) and e.get("url") == url]

    return step


def _field(name: str) -> Step:
    return lambda nodes: _children(nodes, name)


def _split_path(expr: str) -> list[str]:
    return _split_top(expr, ".")


@lru_cache(maxsize=1024)
def compile_path(expr: str) -> tuple[str | None, tuple[Step, ...]]:
    """Compile one path (no union). Returns (root type or None for a relative path, steps)."""
    parts = _split_path(expr)
    steps: list[Step] = []
    root: str | None = None
    for i, part in enumerate(parts):
        m = _TOKEN.fullmatch(part)
        if not m:
            raise ValueError(f"unsupported FHIRPath step {part!r} in {expr!r}")
        if m.group("func"):
            func, args = m.group("func"), m.group("args")
            if func == "extension":
                steps.append(_extension(args))
            elif func == "where":
                steps.append(_where(args))
            else:
                raise ValueError(f"unsupported FHIRPath function {func}() in {expr!r}")
        else:
            name = m.group("name")
            if i == 0 and name[0].isupper():
                root = name
            else:
                steps.append(_field(name))
    return root, tuple(steps)


def evaluate(resource_or_node: Any, expr: str) -> list[Any]:
    """Evaluate `expr` (possibly a `|` union) on a resource (absolute paths) or a node (relative paths)."""
    out: list[Any] = []
    for sub in _split_top(expr, "|"):
        root, steps = compile_path(sub)
        if (
            root not in (None, "Resource")
            and isinstance(resource_or_node, dict)
            and resource_or_node.get("resourceType") not in (root, None)
        ):
            continue
        nodes: list[Any] = [resource_or_node]
        for step in steps:
            nodes = step(nodes)
            if not nodes:
                break
        out.extend(nodes)
    return out
