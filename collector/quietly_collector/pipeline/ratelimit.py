"""Per-project rate limit: a token bucket counted in events.

A request is admitted while its project's bucket holds at least one token, and
takes one at once, before its body is read: a flood is refused for the price of
a header check, and concurrent requests cannot all slip through on the same
token. Once the batch is decoded the rest of its events are charged, which may
leave the bucket in debt; the project then waits until it has paid it back.
Buckets are per project, so one noisy key slows no other project.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self.limited: Counter[str] = Counter()  # 429s by project

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def _refill(self, project: str) -> _Bucket:
        now = self._clock()
        b = self._buckets.get(project)
        if b is None:
            b = self._buckets[project] = _Bucket(self.burst, now)
        else:
            b.tokens = min(self.burst, b.tokens + (now - b.updated) * self.rate)
            b.updated = now
        return b

    def admit(self, project: str) -> float:
        """0.0 when the request may go on (one token taken), else seconds to wait."""
        if not self.enabled:
            return 0.0
        b = self._refill(project)
        if b.tokens >= 1:
            b.tokens -= 1
            return 0.0
        self.limited[project] += 1
        return (1 - b.tokens) / self.rate

    def charge(self, project: str, events: int) -> None:
        """Charge a decoded batch's events beyond the token ``admit`` took."""
        if self.enabled and events > 1:
            self._refill(project).tokens -= events - 1
