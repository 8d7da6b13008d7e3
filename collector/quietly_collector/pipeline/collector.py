"""The collector's state and its one job: accept a batch durably, or say why not."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from quietly_collector.access.credentials import Credentials, load_credentials
from quietly_collector.pipeline.admission import Slots
from quietly_collector.pipeline.decode import BatchError, decode_batch, envelopes
from quietly_collector.pipeline.dedup import RecentIds, StoredLookup, split
from quietly_collector.pipeline.process import (
    Candidate,
    IngestContext,
    Processed,
    Rejection,
    process_events,
    rejected_lines,
)
from quietly_collector.pipeline.pseudonym import Pseudonymizer
from quietly_collector.pipeline.ratelimit import RateLimiter
from quietly_collector.pipeline.spoolshare import ShareFull, SpoolShare
from quietly_collector.settings import Settings
from quietly_collector.spool.hooks import Hooks, count_rejections
from quietly_collector.spool.priority import EngineThreads
from quietly_collector.spool.wal import (
    KIND_DELETIONS,
    KIND_EVENTS,
    KIND_EVENTS_CHECK,
    KIND_REJECTED,
    Pos,
    Spool,
    SpoolFull,
    SpoolUnavailable,
)
from quietly_collector.spool.writer import Writer, line_event_id
from quietly_collector.storage import audit
from quietly_collector.storage.deletion import (
    DeletedInstalls,
    decode_requests,
    deleted_installs,
    event_of,
)
from quietly_collector.storage.maintenance import GcReport, MaintenanceState, run_gc
from quietly_collector.storage.migrations import migrate
from quietly_collector.storage.store import StorageError, Store
from quietly_schemas import Catalog, load_catalog

log = logging.getLogger("quietly.collector")

# How far back recent ids are loaded from ClickHouse at start.
PRELOAD_WINDOW = timedelta(hours=1)
# Allowed drift of a client's clock between a first send and a resend.
DEDUP_SLACK = timedelta(minutes=5)


class TooLarge(Exception):
    pass


@dataclass
class BatchResult:
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


class Collector:
    def __init__(self, settings: Settings, catalog: Catalog | None = None) -> None:
        self.settings = settings
        self.catalog = catalog or load_catalog(settings.schema_dirs)
        self.credentials: Credentials = load_credentials(settings)
        self.counters: Counter[str] = Counter()
        self.store = Store(settings, prepare=migrate)
        self.spool = Spool(settings.spool_path, settings.spool_max_bytes,
                           settings.spool_segment_bytes)
        self.ctx = IngestContext(
            catalog=self.catalog,
            pseudonymize=Pseudonymizer(self.credentials.pseudonym_secret),
            max_event_bytes=settings.max_event_bytes,
            future_tolerance=timedelta(seconds=settings.future_tolerance_s),
        )
        self.recent = RecentIds(settings.dedup_memory_ids, datetime.now(UTC), DEDUP_SLACK,
                                settings.dedup_filter_mb << 20)
        self.lookups = StoredLookup(self.store.existing_ids, self.counters)
        self.deleted = DeletedInstalls()
        self.writer: Writer | None = None
        # Ids of batches not yet acknowledged, each with a future set once it is decided.
        self._inflight: dict[int, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.share = SpoolShare(settings.spool_max_bytes, settings.spool_project_share_pct)
        self.slots = Slots(settings.max_batches_in_flight,
                           settings.max_batches_in_flight_per_project)
        self.limiter = RateLimiter(settings.rate_limit_events_per_s, settings.rate_limit_burst)
        self.maintenance = MaintenanceState()
        self.hooks = Hooks()  # timings and spans for telemetry/ (no-ops without it)

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.store.ensure_ready)
        except StorageError as exc:
            if self.settings.embedded:
                raise  # the embedded store cannot be "down": this is a real error
            # A server that is down must not stop intake: batches wait in the spool
            # and the writer keeps trying to connect.
            log.warning("ClickHouse unreachable at start, spooling until it is: %s", exc)
        recovery = self.spool.open()
        await self._preload_ids()
        self.writer = Writer(
            self.spool,
            self.store,
            self.settings.flush_rows,
            self.settings.flush_interval_ms / 1000,
            self.counters,
            recovery_end=self.spool.write_pos,
            deleted=self.deleted,
            hooks=self.hooks,
            flush_idle=self.settings.flush_idle_ms / 1000,
            nice=self.settings.storage_nice,
            engine_threads=(EngineThreads(self.settings.storage_nice)
                            if self.settings.embedded else None),
        )
        self.counters["spool_damaged_records"] += recovery.damaged
        self.counters["spool_torn_bytes"] += recovery.truncated_bytes
        self._tasks = [
            asyncio.create_task(self.spool.sync_loop(), name="quietly-spool-sync"),
            asyncio.create_task(self.writer.run(), name="quietly-writer"),
        ]
        if recovery.records:
            log.info("spool: %d rows from before the restart will be stored", recovery.rows)

    async def _preload_ids(self) -> None:
        """Fill the duplicate filter from ClickHouse and from the spool after a restart."""
        now = datetime.now(UTC)
        since = now - PRELOAD_WINDOW
        cap = self.settings.dedup_memory_ids
        try:
            rows = await asyncio.to_thread(self.store.recent_ids, since, cap)
        except StorageError:
            rows = []  # unreachable: older resends are caught by lookups once it is back
        try:
            self.deleted.hashes |= await asyncio.to_thread(deleted_installs, self.store)
            self.deleted.loaded = True
        except StorageError:
            pass  # the writer reads them once ClickHouse is back, and filters what came before
        horizon = since if len(rows) < cap else rows[-1][1].replace(tzinfo=UTC)
        self.recent.horizon = horizon
        for event_id, received in reversed(rows):
            self.recent.add(event_id, received.replace(tzinfo=UTC))
        await asyncio.to_thread(self._preload_spool, self.spool.checkpoint, self.spool.write_pos,
                                now)

    def _preload_spool(self, start: Pos, end: Pos, now: datetime) -> None:
        # Record by record: a full spool (1 GiB by default) is never in memory at once.
        # In a thread, before anything else runs: nothing else touches these yet.
        for r in self.spool.records(start, end):
            if r.kind in (KIND_EVENTS, KIND_EVENTS_CHECK):
                for line in r.payload.splitlines():
                    self.recent.add(line_event_id(line), now)
            elif r.kind == KIND_DELETIONS:
                for d in decode_requests(r.payload):
                    self.recent.add(d.request_id, now)
                    self.deleted.hashes.add((d.project, d.install_hash))

    async def stop(self, timeout: float = 10.0) -> None:
        if self.writer is not None:
            drained = await self.writer.drain(timeout)
            if not drained:
                log.warning("shutdown: %d rows stay in the spool for the next start",
                            self.spool.pending_rows)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.writer is not None:
            self.writer.close()
        self.spool.close()
        await asyncio.to_thread(self.store.close)

    @property
    def batches_in_flight(self) -> int:
        return self.slots.used

    @property
    def storage_ok(self) -> bool:
        return self.writer is None or self.writer.stats.storage_ok

    # -- maintenance ----------------------------------------------------------
    async def maintain(self, actor: str, request_id: str = "") -> GcReport:
        """One cycle (storage/maintenance.py), then its audit row. Shielded: a cancelled
        caller (a client that hung up, shutdown) leaves the cycle to finish and release
        the writer's lock."""
        return await asyncio.shield(self._maintain(actor, request_id))

    async def _maintain(self, actor: str, request_id: str) -> GcReport:
        state, store, counters = self.maintenance, self.store, self.counters
        try:
            if self.writer is not None:
                async with self.writer.lock:
                    report = await asyncio.to_thread(run_gc, store)
            else:
                report = await asyncio.to_thread(run_gc, store)
        except Exception as exc:
            state.last_error = str(exc)[:500]
            counters["gc_failures"] += 1
            row = audit.entry(actor, "gc", {"error": audit.clean(str(exc), 500)}, request_id,
                              "error")
            try:
                await asyncio.to_thread(audit.record, store, row)
            except Exception:
                log.exception("could not write the audit row of a failed maintenance cycle")
            raise
        state.runs += 1
        state.last_at = datetime.now(UTC).isoformat()
        state.last = report.as_json()
        state.last_error = ""
        counters["gc_runs"] += 1
        counters["gc_rows_expired"] += sum(report.expired_rows.values())
        counters["deletion_stray_rows_deleted"] += sum(report.stray_rows.values())
        counters["gc_mutations_killed"] += report.mutations_killed
        counters["gc_parts_compacted"] += sum(report.parts_compacted.values())
        await asyncio.to_thread(audit.record, store, audit.entry(actor, "gc", state.last,
                                                                 request_id))
        return report

    # -- ingest ---------------------------------------------------------------
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


# The running collector of an app (server/app.py sets it).
COLLECTOR = web.AppKey("collector", Collector)

__all__ = ["COLLECTOR", "BatchError", "BatchResult", "Collector", "TooLarge"]
