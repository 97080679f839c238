"""Table aliases reused across search statements.

Building an alias builds its column collection (one proxy per column): ~0.1–0.4 ms each, and a search statement
takes several (the outer resource, one per criterion, per chain, per include hop) — a quarter of the server time of
a small search. Inside `statement_scope()`, the n-th alias of a table asked for by the statement being built is
always the same object, created once per process: distinct within one statement (so no accidental correlation),
shared between statements (so no rebuild). Outside a scope, `alias()` is a plain fresh alias."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_local = threading.local()
_POOL: dict[tuple[str, int], Any] = {}
_LOCK = threading.Lock()


@contextmanager
def statement_scope() -> Iterator[None]:
    """Aliases handed out until the scope ends belong to one statement (nested scopes share the outer one)."""
    depth = getattr(_local, "depth", 0)
    if depth == 0:
        _local.used = {}
    _local.depth = depth + 1
    try:
        yield
    finally:
        _local.depth = depth


def alias(table: Any) -> Any:
    if getattr(_local, "depth", 0) == 0:
        return table.alias()
    used: dict[str, int] = _local.used
    n = used.get(table.name, 0)
    used[table.name] = n + 1
    key = (table.name, n)
    found = _POOL.get(key)
    if found is None:
        with _LOCK:
            found = _POOL.setdefault(key, table.alias(f"{table.name}_a{n}"))
    return found
