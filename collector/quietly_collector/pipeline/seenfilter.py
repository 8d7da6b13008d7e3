"""A compact, approximate memory of accepted event ids, behind the exact one.

The exact duplicate filter (``dedup.RecentIds``, about 90 bytes per id) covers the
last ``dedup_memory_ids`` ids. An event stamped before what it covers (plus the drift
slack) is looked up in ClickHouse, and under a sustained stream that would be every
event, one lookup query after another. This filter remembers far more ids in under 2
bytes each: it
answers "certainly not accepted since ``horizon``" (no lookup needed) or "maybe"
(looked up, as before), so it can save lookups but never change an answer.

It is a ring of Bloom filters (rbloom, in Rust: every event tests and adds, and
Python bytecode for it would cost several times more). Ids go
into the newest; a full one makes the oldest forgotten, and the horizon moves to the
start of the oldest left.
"""

from __future__ import annotations

import time
from typing import Any

from rbloom import Bloom

GENERATIONS = 4
# Per generation; a test looks at all four, so up to 0.4% of new ids are looked up.
FALSE_POSITIVE_RATE = 0.001
BYTES_PER_ID = 1.8  # what rbloom takes at that rate (14.4 bits)


class _Everything:
    def __contains__(self, key: object) -> bool:
        return True


_EVERYTHING: Any = _Everything()


class SeenFilter:
    """Ids accepted since ``horizon`` (epoch seconds): "maybe seen" or "certainly not".

    ``size_bytes`` is the memory of all generations together; 0 turns the filter off
    (every test says "maybe", as if there were none).
    """

    def __init__(self, size_bytes: int, horizon: float) -> None:
        self.capacity = int(size_bytes / GENERATIONS / BYTES_PER_ID)  # ids per generation
        self._ring: list[Bloom] = []
        self._started: list[float] = []  # when each generation of the ring began
        self._count = 0  # ids added to the newest
        self.horizon = horizon
        if self.capacity:
            self._ring.append(self._new())
            self._started.append(horizon)
        self._newest_first = self._ring[::-1]

    def _new(self) -> Bloom:
        # hash() of an int is the int modulo 2**61 - 1: random UUIDs spread well, and
        # an id chosen to collide only costs the lookup an old timestamp costs anyway.
        return Bloom(self.capacity, FALSE_POSITIVE_RATE, hash)

    @property
    def generations(self) -> list[Bloom]:
        """Newest first (it holds most resends); with the filter off, one that holds
        everything, so every test says "maybe"."""
        return self._newest_first if self._ring else [_EVERYTHING]

    def might_contain(self, key: int) -> bool:
        return any(key in generation for generation in self.generations)

    def add_many(self, keys: list[int]) -> None:
        if not self._ring:
            return
        # A batch may overfill a generation a little; its false positives barely move.
        if self._count >= self.capacity:
            self._rotate()
        self._ring[-1].update(keys)
        self._count += len(keys)

    def _rotate(self) -> None:
        if len(self._ring) == GENERATIONS:
            del self._ring[0], self._started[0]
            self.horizon = max(self.horizon, self._started[0])
        self._ring.append(self._new())
        self._started.append(time.time())
        self._newest_first = self._ring[::-1]
        self._count = 0
