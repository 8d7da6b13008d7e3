"""The collector's state and its one job: accept a batch durably, or say why not."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

from aiohttp import web

from quietly_collector.access.credentials import Credentials, load_credentials
from quietly_collector.pipeline.accept import Acceptor, BatchResult
from quietly_collector.pipeline.admission import Slots
from quietly_collector.pipeline.dedup import RecentIds, StoredLookup
from quietly_collector.pipeline.process import (
    IngestContext,
)
from quietly_collector.pipeline.pseudonym import Pseudonymizer
from quietly_collector.pipeline.ratelimit import RateLimiter
from quietly_collector.pipeline.spoolshare import SpoolShare
from quietly_collector.settings import Settings
from quietly_collector.spool.hooks import Hooks
from quietly_collector.spool.priority import EngineThreads
from quietly_collector.spool.wal import (
    KIND_DELETIONS,
    KIND_EVENTS,
    KIND_EVENTS_CHECK,
    Pos,
    Spool,
)
from quietly_collector.spool.writer import Writer, line_event_id
from quietly_collector.storage import audit
from quietly_collector.storage.deletion import (
    DeletedInstalls,
    decode_requests,
    deleted_installs,
)
from quietly_collector.storage.identity import check_secret
from quietly_collector.storage.lease import Lease, SoleLease, holder_id
from quietly_collector.storage.maintenance import GcReport, MaintenanceState, run_gc
from quietly_collector.storage.migrations import migrate
from quietly_collector.storage.promote import STAGING_TABLE
from quietly_collector.storage.store import StorageError, Store
from quietly_schemas import Catalog, load_catalog

log = logging.getLogger("quietly.collector")

# How far back recent ids are loaded from ClickHouse at start.
PRELOAD_WINDOW = timedelta(hours=1)
# Allowed drift of a client's clock between a first send and a resend.
DEDUP_SLACK = timedelta(minutes=5)


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
        self._tasks: list[asyncio.Task[None]] = []
        self.share = SpoolShare(settings.spool_max_bytes, settings.spool_project_share_pct)
        self.slots = Slots(settings.max_batches_in_flight,
                           settings.max_batches_in_flight_per_project)
        self.limiter = RateLimiter(settings.rate_limit_events_per_s, settings.rate_limit_burst)
        self.maintenance = MaintenanceState()
        # Who runs alerts, maintenance and the promotion of staged events: the holder of
        # this lease, any collector (server/leader.py keeps it).
        self.leader: Lease | SoleLease = (
            SoleLease("leader") if settings.embedded
            else Lease(self.store, "leader", settings.lease_ttl_s))
        # Maintenance and promotion never interleave (both rewrite what the views read).
        self.promotion = asyncio.Lock()
        self.hooks = Hooks()  # timings and spans for selfobs/ (no-ops without it)
        self.acceptor = Acceptor(self.settings, self.ctx, self.recent, self.lookups,
                                 self.deleted, self.spool, self.share, self.counters,
                                 self.hooks)

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
        if not self.settings.embedded and self.store.connected:
            await asyncio.to_thread(check_secret, self.store, self.credentials.pseudonym_secret,
                                    holder_id())
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
            events_table=STAGING_TABLE if self.settings.staging else "events",
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
            async with self.promotion:
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
        """Accept a batch durably, or say why not (accept.py)."""
        return await self.acceptor.ingest(body, project)


# The running collector of an app (server/app.py sets it).
COLLECTOR = web.AppKey("collector", Collector)

__all__ = ["COLLECTOR", "Collector"]
