"""Drop events whose ``event_id`` was already accepted.

Materialized views count every inserted row, so a resent event must be caught
before it is stored. Recent ids are held in memory (bounded), many more in an
approximate filter (seenfilter.py); an event older than what they cover, or that
the filter may have seen, is looked up in the ``events`` table, where a
bloom-filter index on ``event_id`` keeps the lookup cheap, in one query for all
requests waiting (``StoredLookup``).

Ids are kept as plain ints in sets and lists: the cyclic GC sees a list and a tuple per
batch, not one object per id, so a million remembered ids add next to nothing to GC pauses
(UUID objects in tuples would, and pauses show up as request latency).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from quietly_collector.pipeline.seenfilter import SeenFilter

if TYPE_CHECKING:
    from quietly_collector.pipeline.process import Candidate


class RecentIds:
    """The last ``capacity`` accepted ids, and the time since which they are complete;
    behind them, ``seen``, an approximate memory of many more (seenfilter.py).

    Ids are kept in one set, and in the order they came as one list per batch: adding
    and forgetting a batch are a few set operations in C, not a few bytecodes per id
    (this runs for every event on the event loop).
    """

    def __init__(
        self, capacity: int, horizon: datetime, slack: timedelta, filter_bytes: int = 0
    ) -> None:
        self._capacity = capacity
        self.seen = SeenFilter(filter_bytes, horizon.timestamp())
        self._ids: set[int] = set()
        # (ids, acceptance time) per add, oldest first; each id is in exactly one.
        self._batches: deque[tuple[list[int], float]] = deque()
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
    def ids(self) -> set[int]:
        """``event_id.int`` of every id in memory; read-only for callers."""
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
        # Distinct and not yet known: one C-level test for the usual case.
        if ids.isdisjoint(keys) and len(set(keys)) == len(keys):
            new = keys
        else:
            new = list(dict.fromkeys(k for k in keys if k not in ids))
        if not new:
            return
        self.seen.add_many(new)
        ids.update(new)
        batches = self._batches
        batches.append((new, when))
        over = len(ids) - self._capacity
        while over > 0:
            old, old_when = batches[0]
            if len(old) <= over:
                batches.popleft()
                gone = old
            else:  # forget only the oldest part of this batch
                gone = old[:over]
                batches[0] = (old[over:], old_when)
            ids.difference_update(gone)
            over -= len(gone)
            if old_when > self._horizon:
                self._horizon = old_when


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
    keys = [c.key for c in candidates]
    if (inflight.keys().isdisjoint(keys) and known.isdisjoint(keys)
            and len(set(keys)) == len(keys)):
        # The usual case, tested in C: no id repeated, known or held by another request.
        return _by_time(candidates, recent, 0, set())
    duplicates = 0
    rest: list[Candidate] = []
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
        else:
            rest.append(c)
    return _by_time(rest, recent, duplicates, busy)


def _by_time(
    candidates: Sequence[Candidate], recent: RecentIds, duplicates: int,
    busy: set[asyncio.Future[None]],
) -> Split:
    """Ids not in memory: new if memory covers their time, else looked up in ClickHouse
    unless the approximate filter is sure it never saw them."""
    cutoff = recent.cutoff
    generations = recent.seen.generations
    seen_cutoff = recent.seen_cutoff
    fresh: list[Candidate] = []
    lookup: list[Candidate] = []
    for c in candidates:
        ts = c.ts
        if ts > cutoff:
            fresh.append(c)
        elif ts > seen_cutoff:
            # Inline SeenFilter.might_contain: a call per event costs as much again.
            key = c.key
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
    every batch needs one: one query per request would make the store, not the
    loop, the limit. As with the spool's group commit, requests that arrive while a
    query runs share the next one.
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
