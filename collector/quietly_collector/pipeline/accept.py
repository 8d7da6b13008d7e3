"""The collector's one job: accept a batch durably, or say why not.

A batch is decoded and processed (process.py), its events split into new ones,
duplicates and ones to look up in ClickHouse (dedup.py), events of deleted installs
refused, and what remains appended to the spool and fsynced before the answer. An id
enters the duplicate filter only once durable, so a refused batch neither pushes
accepted ids out nor leaves its own behind; a concurrent batch holding the same ids
is waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from quietly_collector.pipeline.decode import decode_batch, envelopes
from quietly_collector.pipeline.dedup import RecentIds, StoredLookup, split
from quietly_collector.pipeline.process import (
    Candidate,
    IngestContext,
    Processed,
    Rejection,
    process_events,
    rejected_lines,
)
from quietly_collector.pipeline.rejections import SDK_DROPPED_PREFIX, count_rejections
from quietly_collector.pipeline.spoolshare import ShareFull, SpoolShare
from quietly_collector.settings import Settings
from quietly_collector.spool.hooks import Hooks
from quietly_collector.spool.wal import (
    KIND_DELETIONS,
    KIND_EVENTS,
    KIND_EVENTS_CHECK,
    KIND_REJECTED,
    Spool,
    SpoolFull,
    SpoolUnavailable,
)
from quietly_collector.storage.deletion import DeletedInstalls, event_of
from quietly_collector.storage.store import StorageError


class TooLarge(Exception):
    pass


@dataclass
class BatchResult:
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


class Acceptor:
    def __init__(self, settings: Settings, ctx: IngestContext, recent: RecentIds,
                 lookups: StoredLookup, deleted: DeletedInstalls, spool: Spool,
                 share: SpoolShare, counters: Counter[str], hooks: Hooks) -> None:
        self.settings = settings
        self.ctx = ctx
        self.recent = recent
        self.lookups = lookups
        self.deleted = deleted
        self.spool = spool
        self.share = share
        self.counters = counters
        self.hooks = hooks
        # Ids of batches not yet acknowledged, each with a future set once it is decided.
        self._inflight: dict[int, asyncio.Future[None]] = {}

    async def ingest(self, body: bytes | bytearray, project: str) -> BatchResult:
        received = datetime.now(UTC)
        batch = decode_batch(body)
        if len(batch.events) > self.settings.max_batch_events:
            raise TooLarge(
                f"batch has {len(batch.events)} events, over the"
                f" {self.settings.max_batch_events}-event limit"
            )
        decoded = envelopes(body, batch, self.ctx.max_event_bytes)
        processed = process_events(batch, project, received, self.ctx, decoded)
        inflight = self._inflight
        while True:
            fresh, lookup, duplicates, busy = split(processed.candidates, self.recent, inflight)
            if not busy:
                break
            # A concurrent request holds some of these ids: whether they are duplicates
            # depends on whether it is acknowledged. Look again once it is decided.
            waited = time.perf_counter()
            await asyncio.wait(busy)
            self.hooks.queue_wait(time.perf_counter() - waited, "inflight_ids")
        # Reserved until decided; an id enters the duplicate filter only once durable, so a
        # refused batch neither pushes accepted ids out nor leaves its own behind.
        held = [c.key for c in fresh] + [c.key for c in lookup]
        decided: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for key in held:
            inflight[key] = decided
        try:
            return await self._accept(processed, project, received, fresh, lookup, duplicates,
                                      len(batch.events))
        finally:
            for key in held:
                del inflight[key]
            decided.set_result(None)

    async def _accept(
        self, processed: Processed, project: str, received: datetime,
        fresh: list[Candidate], lookup: list[Candidate], duplicates: int, sent: int,
    ) -> BatchResult:
        unvouched: set[int] = set()
        if lookup:
            try:
                stored = await self.lookups.stored([c.event_id for c in lookup])
            except StorageError:
                # Storage down: accept (never lose) and count the dedup gap.
                stored = set()
                self.counters["dedup_lookup_failed"] += len(lookup)
            for c in lookup:
                if c.event_id in stored:
                    duplicates += 1
                else:
                    fresh.append(c)
                    # ClickHouse does not see the spool: the writer checks them again.
                    unvouched.add(c.key)
            fresh.sort(key=lambda c: c.position)
        # From here to the append nothing awaits: a deletion accepted by a concurrent
        # batch is either in self.deleted now, or spooled after this batch.
        deletions: list[Candidate] = []
        if self.deleted.hashes or processed.deletions:
            fresh, deletions, gone = self._split_deleted(fresh, project)
            if gone:
                processed.rejected = sorted([*processed.rejected, *gone], key=lambda r: r.index)
        records = []
        check = [c for c in fresh if c.key in unvouched] if unvouched else []
        plain = [c for c in fresh if c.key not in unvouched] if unvouched else fresh
        for kind, part in ((KIND_EVENTS, plain), (KIND_EVENTS_CHECK, check)):
            if part:
                records.append((kind, len(part), b"\n".join([c.line for c in part]) + b"\n"))
        if deletions:
            # After the events record: events sent before the request are deleted too.
            payload = b"\n".join([c.line for c in deletions]) + b"\n"
            records.append((KIND_DELETIONS, len(deletions), payload))
        if processed.rejected:
            lines = rejected_lines(processed.rejected, project, received)
            records.append((KIND_REJECTED, len(lines), b"".join(ln + b"\n" for ln in lines)))
        if records:
            try:
                nbytes = sum(len(p) for _, _, p in records)
                self.share.check(project, nbytes, self.spool.checkpoint)
                pos = self.spool.append(records)
                self.share.added(project, pos, nbytes)
                self.deleted.hashes.update((project, c.install_hash) for c in deletions)
                waited = time.perf_counter()
                await self.spool.wait_durable(pos)
                self.hooks.queue_wait(time.perf_counter() - waited, "fsync")
            except (SpoolFull, SpoolUnavailable) as exc:
                # What the clients see as 503s, counted the same way: whole batches.
                why = ("spool_share" if isinstance(exc, ShareFull) else
                       "spool_full" if isinstance(exc, SpoolFull) else "disk")
                self.counters[f"requests_refused_{why}"] += 1
                self.counters[f"events_refused_{why}"] += sent
                raise
            when = received.timestamp()
            self.recent.add_keys([c.key for c in fresh] + [c.key for c in deletions], when)
        counters = self.counters
        counters.update(processed.counters)
        counters["batches"] += 1
        counters["events_accepted"] += len(fresh) + len(deletions)
        counters["events_duplicate"] += duplicates
        counters["events_rejected"] += len(processed.rejected)
        if processed.rejected:
            count_rejections(counters, processed.rejected)
        counters["deletions_received"] += len(deletions)
        if processed.reports:
            # What SDKs dropped before sending (client_report), counted once stored: a
            # resent report is a duplicate and is not counted again.
            for c in fresh:
                if c.report:
                    for reason, n in c.report.items():
                        counters[SDK_DROPPED_PREFIX + reason] += n
        return BatchResult(
            accepted=len(fresh) + len(deletions),
            duplicates=duplicates,
            rejected=[{"index": r.index, "event_id": r.event_id, "reason": r.reason}
                      for r in processed.rejected],
        )

    def _split_deleted(
        self, fresh: list[Candidate], project: str
    ) -> tuple[list[Candidate], list[Candidate], list[Rejection]]:
        """Events, deletion requests, and refusals of events from installs this project
        deleted (also those after a deletion_request of their install in this batch)."""
        deleted = self.deleted.hashes
        in_batch: set[int] = set()
        events: list[Candidate] = []
        deletions: list[Candidate] = []
        gone: list[Rejection] = []
        for c in fresh:
            if c.deletion:
                deletions.append(c)
                in_batch.add(c.install_hash)
            elif (project, c.install_hash) in deleted or c.install_hash in in_batch:
                event, version = event_of(c.line)
                gone.append(Rejection(
                    c.position, str(c.event_id),
                    "install was deleted by a deletion_request"
                    f" at $.events[{c.position}].install_id",
                    event, version,
                ))
            else:
                events.append(c)
        self.counters["events_rejected_deleted_install"] += len(gone)
        return events, deletions, gone
