"""One small in-process cache: bounded (least recently used evicted first), with an optional
time to live, and explicit invalidation. Core module: imports nothing from Switchboard.

Each use site documents what makes its entries correct: a key that carries the version of the
data (nothing stale can be hit), a pure function of the key (nothing can go stale), or a TTL
(another process's change is seen within ``ttl_s``), plus :meth:`Cache.invalidate` on the
writes made in this process. Not thread-safe: use it from the event loop's thread (every
method is synchronous, quick and never blocks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

from cachetools import LRUCache, TTLCache

K = TypeVar("K")
V = TypeVar("V")


class Cache(Generic[K, V]):
    """At most ``max_size`` entries; when full, a put evicts the least recently used one (a
    ``get`` hit counts as a use). With ``ttl_s``, an entry is a miss once ``ttl_s`` seconds of
    ``clock`` (monotonic by default; injectable for tests) have passed since its ``put``."""

    def __init__(
        self,
        max_size: int,
        *,
        ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        if ttl_s is not None and ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self._max_size = max_size
        self._ttl_s = ttl_s
        self._entries: LRUCache[K, V] | TTLCache[K, V, float] = (
            LRUCache(max_size) if ttl_s is None else TTLCache(max_size, ttl_s, timer=clock)
        )

    @property
    def max_size(self) -> int:
        return self._max_size

    @property
    def ttl_s(self) -> float | None:
        return self._ttl_s

    def get(self, key: K) -> V | None:
        """The cached value, or ``None`` on a miss (absent, evicted, expired or invalidated)."""
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value

    def invalidate(self, key: K) -> None:
        """Forget ``key`` (no error when it is not cached)."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        """Live entries (expired ones are purged first)."""
        return len(self._entries)
