"""Move spooled records into ClickHouse in large batches, in order, exactly once.

Batches close on size (``flush_rows``), or when ``flush_interval_ms`` has passed since
the previous insert began (so a lone event after a quiet spell, or the first since
start, goes in at once), or at a burst's end: a span of at least a tenth of
``flush_rows`` that stopped growing for ``flush_idle_ms``, once a quarter of the
interval has passed. A batch's insert deduplication token is its spool's identity
and position, and a failed batch is retried with exactly the same records until it
succeeds, so a retry is dropped by ClickHouse (table and aggregates) if the first
attempt landed. The span being stored is noted in the spool first, so after a crash
the next process retries that same span. Other records left from before a crash are
checked against the ``events`` table. Deletion requests in a batch are applied after
its rows are inserted (deletion.py).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from quietly_collector.spool.hooks import Hooks
from quietly_collector.spool.priority import EngineThreads, lower_this_thread
from quietly_collector.spool.wal import (
    KIND_DELETIONS,
    KIND_EVENTS,
    KIND_EVENTS_CHECK,
    KIND_REJECTED,
    Pos,
    Record,
    Spool,
)
from quietly_collector.storage.deletion import (
    DeletedInstalls,
    apply_deletions,
    decode_requests,
    deleted_installs,
    line_install,
)
from quietly_collector.storage.rows import EVENT_COLUMNS, REJECTED_COLUMNS
from quietly_collector.storage.store import StorageError, Store

log = logging.getLogger("quietly.writer")
_T = TypeVar("_T")
# Retries never stop; the cap bounds how late a recovered ClickHouse is noticed.
MAX_BACKOFF_SECONDS = 2.0


def _take_payloads(records: list[Record], kind: int) -> bytearray:
    """The payloads of ``kind``, joined, each record's emptied as it is copied: a span
    of ``flush_rows`` rows is held once in memory, not twice (records and join)."""
    out = bytearray(sum(len(r.payload) for r in records if r.kind == kind))
    view = memoryview(out)
    pos = 0
    for r in records:
        if r.kind == kind:
            view[pos:pos + len(r.payload)] = r.payload
            pos += len(r.payload)
            r.payload = b""
    view.release()
    return out


def line_event_id(line: bytes | bytearray) -> uuid.UUID:
    # Rows are JSON arrays whose first element is the event id: ["<uuid>",...
    return uuid.UUID(line[2:38].decode("ascii"))


@dataclass
class WriterStats:
    inserted_rows: int = 0
    inserted_batches: int = 0
    insert_failures: int = 0
    recovered_duplicates: int = 0
    quarantined_records: int = 0
    last_insert_seconds: float = 0.0
    storage_ok: bool = True
    last_error: str = ""
    insert_latency: list[float] = field(default_factory=list)


class Writer:
    def __init__(
        self,
        spool: Spool,
        store: Store,
        flush_rows: int,
        flush_interval: float,
        counters: Counter[str],
        recovery_end: Pos,
        deleted: DeletedInstalls | None = None,
        hooks: Hooks | None = None,
        flush_idle: float = 0.0,
        nice: int = 0,
        engine_threads: EngineThreads | None = None,
        events_table: str = "events",
    ) -> None:
        self.spool = spool
        self.store = store
        self.flush_rows = flush_rows
        self.flush_interval = flush_interval
        # A burst's end: a span big enough to be worth a part of its own, whose stream
        # paused, goes without waiting out the interval; never more than four inserts a
        # second for it, and a steady stream never pauses that long (0: off).
        self.flush_idle = flush_idle
        self._idle_min_rows = max(1, flush_rows // 10)
        self._idle_min_gap = flush_interval / 4
        self.counters = counters
        self.stats = WriterStats()
        self.hooks = hooks or Hooks()
        self._cursor = spool.checkpoint
        # Records before this position may already be in ClickHouse (crash recovery).
        self._recovery_end = recovery_end
        # The span to store next, exactly: one that failed, or was in flight at a crash.
        inflight = spool.inflight
        self._retry: tuple[Pos, Pos] | None = None
        if inflight and inflight[0] == spool.checkpoint and inflight[1] <= recovery_end:
            self._retry = inflight
        self._resumed = self._retry
        self.deleted = deleted or DeletedInstalls(loaded=True)
        # Records before this were accepted without knowing every deleted install.
        self._unchecked_end = Pos(0, 0)
        self._stopping = False
        self._idle = asyncio.Event()
        # Inserts smaller than flush_rows start at most once per flush_interval: an event
        # after a quiet spell goes in at once, a steady stream in one insert per interval.
        # No insert yet: the first one after start goes at once.
        self._last_flush = time.monotonic() - flush_interval
        # Held while storing; maintenance takes it so no insert interleaves (maintenance.py).
        self.lock = asyncio.Lock()
        # Reading the spool and inserting run on a thread of their own at a lower CPU
        # priority (priority.py); the spool's fsyncs stay on the default executor.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="quietly-writer",
                                            initializer=lower_this_thread, initargs=(nice,))
        self.engine_threads = engine_threads
        # events_staging when several collectors share the store (storage/promote.py).
        self.events_table = events_table

    async def _in_thread(self, fn: Callable[..., _T], *args: object) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def close(self) -> None:
        """Stop the writer's thread once its current call returns (never waits for it)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def backlog_rows(self) -> int:
        return self.spool.pending_rows

    async def run(self) -> None:
        assert self.spool.appended is not None
        appended = self.spool.appended
        backoff = 0.05
        while True:
            if self.spool.write_pos <= self._cursor:
                self._idle.set()
                if self._stopping:
                    return
                appended.clear()
                await appended.wait()
            self._idle.clear()
            # Let a batch fill up unless it is already big enough (or we are draining).
            deadline = self._last_flush + self.flush_interval
            early = self._last_flush + self._idle_min_gap
            while not self._stopping and self.spool.pending_rows < self.flush_rows:
                now = time.monotonic()
                left = deadline - now
                if left <= 0:
                    break
                wait = left
                if self.flush_idle > 0 and self.spool.pending_rows >= self._idle_min_rows:
                    wait = min(left, max(self.flush_idle, early - now))
                appended.clear()
                try:
                    await asyncio.wait_for(appended.wait(), wait)
                except TimeoutError:
                    break
            self._last_flush = time.monotonic()
            try:
                async with self.lock:
                    await self._flush_once()
                backoff = 0.05
            except Exception as exc:
                # Never give up: what is not stored stays in the spool, and is retried.
                self.stats.insert_failures += 1
                self.counters["insert_failures"] += 1
                if isinstance(exc, StorageError):
                    self.stats.storage_ok = False
                    log.warning("insert failed (retrying in %.2fs): %s", backoff, str(exc)[:300])
                else:  # the spool's disk (a full disk) or a bug: retried all the same
                    self.counters["writer_errors"] += 1
                    log.error("writer failed (retrying in %.2fs): %r", backoff, exc)
                self.stats.last_error = str(exc)[:500]
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _flush_once(self) -> None:
        retry = self._retry
        if retry is not None:
            records = await self._in_thread(self.spool.read, retry[0], retry[1], 1 << 62)
        else:
            end = self.spool.write_pos
            records = await self._in_thread(self.spool.read, self._cursor, end, self.flush_rows)
        if not records:
            return
        span = (records[0].start, records[-1].end)
        if not self.deleted.loaded:
            found = await self._in_thread(self._deleted_installs)
            # On the loop, between two batches: later ones are checked against these.
            self.deleted.hashes |= found
            self.deleted.loaded = True
            self._unchecked_end = self.spool.write_pos
        # Until it is stored, this span is what is retried (also by a next process).
        self._retry = span
        await asyncio.to_thread(self.spool.begin, *span)
        await self._in_thread(self._store_records, records, span == self._resumed)
        self.stats.storage_ok = True
        rows = sum(r.rows for r in records)
        self.spool.commit(span[1], rows)
        self._cursor = span[1]
        self._retry = None

    def _store_records(self, records: list[Record], exact: bool) -> None:
        """Store one span; ``exact``: the span a crashed process was storing, retried as it
        was: the token deduplicates what landed, and completes a partial landing (also in
        the aggregates), where a lookup in ``events`` would skip it."""
        if self.engine_threads is not None:
            self.engine_threads.lower_new()  # threads the engine started since the last span
        first, last = records[0].start, records[-1].end
        token = f"{self.spool.identity}:{first.seg}:{first.off}-{last.seg}:{last.off}"
        events: bytes | bytearray = _take_payloads(records, KIND_EVENTS)
        rejected = b"".join(r.payload for r in records if r.kind == KIND_REJECTED)
        events_token = token
        if not exact and records[0].start < self._recovery_end and events:
            kept = self._drop_stored(bytes(events))
            if len(kept) != len(events):
                # Not the rows of any earlier attempt: a token of their own, or ClickHouse
                # could take them for that attempt's blocks and drop them.
                events_token += ":" + hashlib.blake2b(kept, digest_size=8).hexdigest()
                events = kept
        checked = b"".join(r.payload for r in records if r.kind == KIND_EVENTS_CHECK)
        known = 0
        if checked:
            checked, known = self._drop_known(checked, events)
        unchecked = max(self._recovery_end, self._unchecked_end)
        if records[0].start < unchecked and self.deleted.hashes:
            events = self._drop_deleted(bytes(events)) if events else events
            checked = self._drop_deleted(checked) if checked else checked
        # An insert of their own: what the check keeps may differ from one attempt to the
        # next, and must not change the token of the other rows.
        checked_token = f"{token}:checked:{hashlib.blake2b(checked, digest_size=8).hexdigest()}"
        started = time.perf_counter()
        for table, columns, data, tok in (
            (self.events_table, EVENT_COLUMNS, events, events_token),
            (self.events_table, EVENT_COLUMNS, checked, checked_token),
            ("rejected_events", REJECTED_COLUMNS, rejected, token),
        ):
            if not data:
                continue
            began = time.perf_counter()
            try:
                with self.hooks.span("clickhouse.insert", {"db.collection.name": table,
                                                           "quietly.bytes": len(data)}):
                    self.store.insert(table, columns, data, f"{table}:{tok}")
                self.hooks.insert_seconds(time.perf_counter() - began, table)
            except StorageError as exc:
                if not exc.is_data_error:
                    raise
                self._quarantine(table, data, exc)
        requests = [d for r in records if r.kind == KIND_DELETIONS
                    for d in decode_requests(r.payload)]
        if requests:
            applied = apply_deletions(self.store, requests, token)
            self.counters["deletions_applied"] += applied.requests
            self.counters["deletion_rows_deleted"] += applied.rows
            self.counters["deletions_replayed"] += applied.skipped
        elapsed = time.perf_counter() - started
        self.counters["events_duplicate_on_store"] += known
        inserted = events.count(b"\n") + checked.count(b"\n")
        self.stats.inserted_rows += inserted
        self.stats.inserted_batches += 1
        self.stats.last_insert_seconds = elapsed
        self.counters["rows_inserted"] += inserted

    def _drop_stored(self, events: bytes) -> bytes:
        lines = events.splitlines(keepends=True)
        ids = [line_event_id(ln) for ln in lines]
        stored = self.store.existing_ids(ids)
        if not stored:
            return events
        self.stats.recovered_duplicates += len(stored)
        return b"".join(ln for ln, i in zip(lines, ids, strict=True) if i not in stored)

    def _drop_known(self, checked: bytes, events: bytes | bytearray) -> tuple[bytes, int]:
        """Rows accepted without the duplicate filter's word: keep those neither stored
        (earlier spans) nor among this span's other rows, once each."""
        lines = checked.splitlines(keepends=True)
        stored = self.store.existing_ids([line_event_id(ln) for ln in lines])
        seen = {str(i).encode() for i in stored}
        # The id, as in line_event_id (bytes: a bytearray slice is not hashable).
        seen.update(bytes(ln[2:38]) for ln in events.splitlines())
        keep = []
        for ln in lines:
            if ln[2:38] not in seen:
                seen.add(ln[2:38])
                keep.append(ln)
        return b"".join(keep), len(lines) - len(keep)

    def _deleted_installs(self) -> set[tuple[str, int]]:
        self.store.ensure_ready()  # not connected yet if ClickHouse was down at start
        return deleted_installs(self.store)

    def _drop_deleted(self, events: bytes) -> bytes:
        lines = events.splitlines(keepends=True)
        keep = [ln for ln in lines if line_install(ln) not in self.deleted.hashes]
        self.counters["events_dropped_deleted_install"] += len(lines) - len(keep)
        return b"".join(keep)

    def _quarantine(self, table: str, data: bytes | bytearray, exc: StorageError) -> None:
        """Rows ClickHouse cannot parse go aside on disk: kept for the operator, never lost."""
        qdir: Path = self.spool.directory / "quarantine"
        qdir.mkdir(exist_ok=True)
        path = qdir / f"{table}-{int(time.time() * 1000)}.jsonl"
        path.write_bytes(data)
        (path.with_suffix(".error")).write_text(str(exc))
        self.stats.quarantined_records += 1
        self.counters["quarantined_batches"] += 1
        log.error("rows ClickHouse refused as data were set aside in %s: %s", path, exc)

    async def drain(self, timeout: float) -> bool:
        """Stop after storing everything spooled; False if ``timeout`` ran out first."""
        self._stopping = True
        assert self.spool.appended is not None
        self.spool.appended.set()
        try:
            await asyncio.wait_for(self._wait_empty(), timeout)
        except TimeoutError:
            return False
        return self.spool.write_pos <= self._cursor

    async def _wait_empty(self) -> None:
        failures = self.stats.insert_failures
        # Stop at the first failed attempt: what is left is safe in the spool, and
        # waiting on a storage outage would only delay the exit.
        while self.spool.write_pos > self._cursor and self.stats.insert_failures == failures:
            await asyncio.sleep(0.02)
