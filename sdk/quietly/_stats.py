"""Counters the SDK keeps about itself: what was sent, what was dropped and why."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    """Thread-safe counters; ``dropped`` keys are reasons (``queue_full``, ``invalid`` ...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    def reset_lock(self) -> None:
        # After fork: the parent's lock may have been held by one of its threads.
        self._lock = threading.Lock()

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def drop(self, reason: str, n: int = 1) -> None:
        if n <= 0:
            return
        with self._lock:
            self.dropped[reason] += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self.counts)
            out["dropped"] = dict(self.dropped)
            out["dropped_total"] = sum(self.dropped.values())
        return out
