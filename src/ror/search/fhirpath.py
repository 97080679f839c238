"""A small FHIRPath subset, enough to extract search values from the SearchParameter expressions we declare.

Supported: `Type.path.to.element`, choice elements (`value` finds `valueCodeableConcept`, `valueInteger`…),
`extension('url')`, `where(name='literal')` or `where(path.to.name='literal')` (several conditions joined by
`and`), and unions with `|`.
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
_COND = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*'([^']*)'\s*")


# FHIR R4 choice elements (`name[x]`) reachable from our expressions: only these names fall back to a scan of
# the node's keys (`value` finds `valueCodeableConcept`, `valueInteger`…); any other absent name is a plain miss.
CHOICE_NAMES = frozenset(
    {"value", "effective", "onset", "abatement", "occurrence", "deceased", "multipleBirth", "timing", "serviced"}
    | {"product", "medication", "item", "born", "age", "performed", "answer", "defaultValue", "fixed", "pattern"}
)


def _choice(node: dict[str, Any], name: str) -> Any:
    for key, v in node.items():
        if key.startswith(name) and len(key) > len(name) and key[len(name)].isupper():
            return v
    return None


def _children(nodes: Iterable[Any], name: str) -> list[Any]:
    choice = name in CHOICE_NAMES
    out: list[Any] = []
    for node in nodes:
        if type(node) is not dict:
            continue
        value = node.get(name)
        if value is None:
            if not choice:
                continue
            value = _choice(node, name)
            if value is None:
                continue
        if type(value) is list:
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

    def holds(node: dict[str, Any], key: str, value: str) -> bool:
        if "." not in key:
            return node.get(key) == value
        return value in evaluate(node, key)  # a relative path such as coding.system

    def step(nodes: list[Any]) -> list[Any]:
        return [n for n in nodes if isinstance(n, dict) and all(holds(n, k, v) for k, v in conds)]

    return step


def _extension(args: str) -> Step:
    url = args.strip().strip("'")

    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for node in nodes:
            if type(node) is dict:
                for e in node.get("extension") or ():
                    if type(e) is dict and e.get("url") == url:
                        out.append(e)
        return out

    return step


def _field(name: str) -> Step:
    if name in CHOICE_NAMES:
        return lambda nodes: _children(nodes, name)

    def step(nodes: list[Any]) -> list[Any]:  # _children without the choice fallback, inlined (hot path)
        out: list[Any] = []
        for node in nodes:
            if type(node) is dict:
                value = node.get(name)
                if value is not None:
                    if type(value) is list:
                        out.extend(value)
                    else:
                        out.append(value)
        return out

    return step


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


@lru_cache(maxsize=1024)
def compile_union(expr: str) -> tuple[tuple[str | None, tuple[Step, ...]], ...]:
    """Compile a `|` union once: evaluate() is called millions of times on the same few expressions."""
    return tuple(compile_path(sub) for sub in _split_top(expr, "|"))


@lru_cache(maxsize=1024)
def top_level_keys(expr: str, by_extension: bool = False) -> frozenset[str] | None:
    """The top-level element names an absolute expression can read (`Location.address.city` -> {address},
    `X.extension('u').value` -> {extension}); None when it cannot be told (relative path, resource root): a
    resource without any of these keys yields nothing, so extraction can skip the evaluation.
    `by_extension`: the finer keys a change is told by (`search.extract.changes_of`): an `extension('u')` step
    is told as `extension_key(u)` — the expression reads only the top-level extensions of that URL — and a plain
    `extension` step, which reads them all, as `ANY_EXTENSION`; `meta.tag` as `meta_key("tag")` — the
    version id and date change at every update, the tags and profiles seldom — and `meta` alone as `ANY_META`."""
    keys: set[str] = set()
    for sub in _split_top(expr, "|"):
        parts = _split_path(sub)
        if len(parts) < 2 or not parts[0][:1].isupper():
            return None
        m = _TOKEN.fullmatch(parts[1])
        if not m:
            return None
        if m.group("func"):
            if m.group("func") != "extension":
                return None
            keys.add(extension_key(m.group("args").strip().strip("'")) if by_extension else "extension")
        elif by_extension and m.group("name") == "extension":
            keys.add(ANY_EXTENSION)
        elif by_extension and m.group("name") == "meta":
            below = _TOKEN.fullmatch(parts[2]) if len(parts) > 2 else None
            keys.add(meta_key(below.group("name")) if below and not below.group("func") else ANY_META)
        else:
            keys.add(m.group("name"))
    return frozenset(keys)


ANY_EXTENSION = "extension(*)"  # the change key of a read of every top-level extension (`X.extension.where(…)`)


ANY_META = "meta.*"  # the change key of a read of the whole `meta` (`top_level_keys(…, by_extension=True)`)


def meta_key(name: str) -> str:
    """The change key of one element of `meta` (`meta.tag`, `meta.profile`…)."""
    return f"meta.{name}"


def extension_key(url: str) -> str:
    """The change key of the top-level extensions with this URL (`top_level_keys(…, by_extension=True)`)."""
    return f"extension({url})"


Evaluator = Callable[[Any], list[Any]]


def _path_evaluator(root: str | None, steps: tuple[Step, ...]) -> Evaluator:
    typed = root not in (None, "Resource")

    def run(node: Any) -> list[Any]:
        if typed and type(node) is dict and node.get("resourceType") not in (root, None):
            return []
        nodes: list[Any] = [node]
        for step in steps:
            nodes = step(nodes)
            if not nodes:
                break
        return nodes

    return run


@lru_cache(maxsize=1024)
def evaluator(expr: str) -> Evaluator:
    """`expr` (possibly a `|` union) compiled into one function of a resource (absolute paths) or a node
    (relative paths): the search-index extraction calls it millions of times during an import."""
    paths = [_path_evaluator(root, steps) for root, steps in compile_union(expr)]
    if len(paths) == 1:
        return paths[0]

    def union(node: Any) -> list[Any]:
        out: list[Any] = []
        for path in paths:
            out.extend(path(node))
        return out

    return union


Rest = Callable[[list[Any]], list[Any]]


@lru_cache(maxsize=1024)
def extension_head(expr: str) -> tuple[str, Rest] | None:
    """A relative path that starts with `extension('u')` — a capacity indicator's `extension('nbCapacity').value`
    — as (u, the rest of the path as a function of the list of those extensions); None for any other
    expression. The parameters of one repeated element each read one of its sub-extensions: extraction finds
    them by URL once per element instead of scanning all of them for every parameter."""
    if len(_split_top(expr, "|")) != 1:
        return None
    m = _TOKEN.fullmatch(_split_path(expr)[0])
    if not m or m.group("func") != "extension":
        return None
    root, steps = compile_path(expr)
    if root is not None:
        return None
    rest = steps[1:]

    def run(nodes: list[Any]) -> list[Any]:
        for step in rest:
            nodes = step(nodes)
            if not nodes:
                break
        return nodes

    return m.group("args").strip().strip("'"), run


def evaluate(resource_or_node: Any, expr: str) -> list[Any]:
    """Evaluate `expr` (possibly a `|` union) on a resource (absolute paths) or a node (relative paths)."""
    return evaluator(expr)(resource_or_node)
