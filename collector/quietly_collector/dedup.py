"""Drop events whose ``event_id`` was already accepted.

Materialized views count every inserted row, so a resent event must be caught
before it is stored. Recent ids are held in memory (bounded), many more in an
approximate filter (seenfilter.py); an event older than what they cover, or that
the filter may have seen, is looked up in the ``events`` table, where a
bloom-filter index on ``event_id`` keeps the lookup cheap, in one query for all
requests waiting (``StoredLookup``).

Ids are kept as plain ints and times as floats: containers of those are not
tracked by Python's cyclic GC, so a million remembered ids add nothing to GC
pauses (UUID objects in tuples would, and pauses show up as request latency).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from quietly_collector.seenfilter import SeenFilter

if TYPE_CHECKING:
    from quietly_collector.ingest import Candidate


class RecentIds:
    """The last ``capacity`` accepted ids, and the time since which they are complete;
    behind them, ``seen``, an approximate memory of many more (seenfilter.py)."""

    def __init__(
        self, capacity: int, horizon: datetime, slack: timedelta, filter_bytes: int = 0
    ) -> None:
        self._capacity = capacity
        self.seen = SeenFilter(filter_bytes, horizon.timestamp())
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
        self.seen.horizon = self._horizon

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

    @property
    def seen_cutoff(self) -> float:
        """Events stamped after this are in ``seen`` if they were ever accepted."""
        return self.seen.horizon + self._slack

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
        self.add_keys([key], when)

    def add_keys(self, keys: list[int], when: float) -> None:
        ids = self._ids
        new = [k for k in keys if k not in ids]
        if not new:
            return
        self.seen.add_many(new)
        order = self._order
        for k in new:
            ids[k] = when
            order.append(k)
        self._when.extend([when] * len(new))
        while len(order) > self._capacity:
            old = order.popleft()
            old_when = self._when.popleft()
            # Only the entry that added the id may remove it (an id can be re-added).
            if ids.get(old) == old_when:
                del ids[old]
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
    generations = recent.seen.generations
    seen_cutoff = recent.seen_cutoff
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
        elif c.ts > seen_cutoff:
            # Inline SeenFilter.might_contain: a call per event costs as much again.
            for generation in generations:
                if key in generation:
                    lookup.append(c)
                    break
            else:
                fresh.append(c)
        else:
            lookup.append(c)
    return Split(fresh, lookup, duplicates, busy)


class StoredLookup:
    """Looks ids up in ClickHouse for many requests at once.

    Every lookup is a query that reads the ``event_id`` bloom filter of the whole
    table, and once more than ``dedup_memory_ids`` ids arrive within the drift slack
    every batch needs one. One query per request at 1,000 requests/s was measured to
    halve intake (docs/performance.md); as with the spool's group commit, requests that
    arrive while a query runs share the next one.
    """

    def __init__(
        self, query: Callable[[Sequence[uuid.UUID]], set[uuid.UUID]], counters: Counter[str]
    ) -> None:
        self._query = query
        self._queue: list[tuple[list[uuid.UUID], asyncio.Future[set[uuid.UUID]]]] = []
        self._task: asyncio.Task[None] | None = None
        self._counters = counters

    async def stored(self, ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``ids`` already stored; raises what the query raises."""
        future: asyncio.Future[set[uuid.UUID]] = asyncio.get_running_loop().create_future()
        self._queue.append((ids, future))
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="quietly-dedup-lookup")
        return await future

    async def _run(self) -> None:
        try:
            while self._queue:
                waiting, self._queue = self._queue, []
                ids = [i for part, _ in waiting for i in part]
                self._counters["dedup_lookup_queries"] += 1
                self._counters["dedup_lookup_ids"] += len(ids)
                try:
                    found = await asyncio.to_thread(self._query, ids)
                except Exception as exc:  # the callers decide; StorageError is expected
                    for _, future in waiting:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for part, future in waiting:
                    if not future.done():
                        future.set_result({i for i in part if i in found})
        finally:
            self._task = None
