"""A bounded, thread-safe memo (least recently used entry dropped first) for values derived from immutable keys:
query plans per query shape, index rows and capacity indicators per stored content. Callers must not mutate
what they get back: the next caller receives the same object."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def get_or(self, key: K, make: Callable[[], V]) -> V:
        """The value kept for `key`, else `make()` (computed outside the lock: two threads may both compute it;
        either result is kept)."""
        value = self.get(key)
        return value if value is not None else self.put(key, make())

    def __iter__(self) -> Iterator[K]:
        """The keys kept, least recently used first (a snapshot)."""
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)
