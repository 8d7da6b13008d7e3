"""Drop events whose ``event_id`` was already accepted.

Materialized views count every inserted row, so a resent event must be caught
before it is stored. Recent ids are held in memory (bounded); an event older
than what memory covers is looked up in the ``events`` table, where a
bloom-filter index on ``event_id`` keeps the lookup cheap.

Ids are kept as plain ints and times as floats: containers of those are not
tracked by Python's cyclic GC, so a million remembered ids add nothing to GC
pauses (UUID objects in tuples would, and pauses show up as request latency).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from quietly_collector.ingest import Candidate


class RecentIds:
    """The last ``capacity`` accepted ids, and the time since which they are complete."""

    def __init__(self, capacity: int, horizon: datetime, slack: timedelta) -> None:
        self._capacity = capacity
        self._ids: dict[int, float] = {}
        self._order: deque[int] = deque()
        self._when: deque[float] = deque()
        # Every id accepted at or after this instant (epoch seconds) is in memory.
        self._horizon = horizon.timestamp()
        # Clock drift between a first send and a resend of the same event.
        self._slack = slack.total_seconds()

    @property
    def horizon(self) -> datetime:
        return datetime.fromtimestamp(self._horizon, UTC)

    @horizon.setter
    def horizon(self, value: datetime) -> None:
        self._horizon = value.timestamp()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, event_id: uuid.UUID) -> bool:
        return event_id.int in self._ids

    @property
    def ids(self) -> dict[int, float]:
        """``event_id.int`` -> acceptance time; read-only for callers."""
        return self._ids

    @property
    def cutoff(self) -> float:
        """Events stamped after this (epoch seconds) are covered by memory."""
        return self._horizon + self._slack

    def covers(self, ts: datetime) -> bool:
        """True if an event stamped ``ts`` would have been accepted within the horizon.

        An event's corrected timestamp is never later than its acceptance
        (future stamps are clamped), so an event stamped well after the
        horizon can only have been accepted after it, and memory is enough.
        """
        return ts.timestamp() > self._horizon + self._slack

    def add(self, event_id: uuid.UUID, accepted_at: datetime) -> None:
        self.add_key(event_id.int, accepted_at.timestamp())

    def add_key(self, key: int, when: float) -> None:
        if key in self._ids:
            return
        self._ids[key] = when
        self._order.append(key)
        self._when.append(when)
        while len(self._order) > self._capacity:
            old = self._order.popleft()
            old_when = self._when.popleft()
            # Only the entry that added the id may remove it (an id can be re-added).
            if self._ids.get(old) == old_when:
                del self._ids[old]
            if old_when > self._horizon:
                self._horizon = old_when

    def discard(self, event_id: uuid.UUID) -> None:
        """Forget an id whose batch was not acknowledged (it may be sent again)."""
        self._ids.pop(event_id.int, None)


class Split(NamedTuple):
    fresh: list[Candidate]  # new, as far as memory covers them
    lookup: list[Candidate]  # older than memory covers: to look up in ClickHouse
    duplicates: int
    # Requests not yet acknowledged that hold some of these ids.
    busy: set[asyncio.Future[None]]


def split(
    candidates: Sequence[Candidate], recent: RecentIds,
    inflight: dict[int, asyncio.Future[None]],
) -> Split:
    known = recent.ids
    cutoff = recent.cutoff
    duplicates = 0
    fresh: list[Candidate] = []
    lookup: list[Candidate] = []
    in_batch: set[int] = set()
    busy: set[asyncio.Future[None]] = set()
    for c in candidates:
        key = c.key
        if key in in_batch or key in known:
            duplicates += 1
            continue
        in_batch.add(key)
        other = inflight.get(key)
        if other is not None:
            busy.add(other)
        elif c.ts > cutoff:
            fresh.append(c)
        else:
            lookup.append(c)
    return Split(fresh, lookup, duplicates, busy)
