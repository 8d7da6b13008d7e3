"""The ``leader`` lease (storage/lease.py) and what its holder alone runs besides the
alerts and maintenance (which check it themselves): the promotion of staged events
(storage/promote.py). Any collector may hold it; when its holder dies, another
takes it once its heartbeat expires (``lease_ttl_s``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from quietly_collector.pipeline.collector import COLLECTOR, Collector
from quietly_collector.storage.promote import MAX_PARTS, promote_once

log = logging.getLogger("quietly.leader")


async def keep_leader(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx entry: renew or try to take the lease every third of its time to live;
    promote staged events while holding it; give it back at shutdown."""
    collector = app[COLLECTOR]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_keep(collector, stop), name="quietly-leader")]
    if collector.settings.staging:
        tasks.append(asyncio.create_task(_promote(collector, stop), name="quietly-promote"))
    yield
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    if collector.store.connected:
        with contextlib.suppress(Exception):
            # The next holder need not wait out the time to live.
            await asyncio.to_thread(collector.leader.release)


async def _keep(collector: Collector, stop: asyncio.Event) -> None:
    lease, counters = collector.leader, collector.counters
    period = collector.settings.lease_ttl_s / 3
    while not stop.is_set():
        if collector.store.connected:
            was = lease.valid()
            try:
                held = await asyncio.to_thread(lease.acquire)
            except Exception as exc:
                held = lease.valid()
                log.warning("leader lease not renewed: %s", str(exc)[:300])
            if held and not was:
                counters["leader_acquired"] += 1
                log.info("holding the leader lease (epoch %d): alerts, maintenance and"
                         " promotion run here", lease.epoch)
            elif was and not held:
                counters["leader_lost"] += 1
                log.warning("no longer holding the leader lease (another collector took it,"
                            " or ClickHouse could not be reached to renew it)")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)


async def _promote(collector: Collector, stop: asyncio.Event) -> None:
    lease, counters = collector.leader, collector.counters
    interval = collector.settings.promote_interval_ms / 1000
    while not stop.is_set():
        full = False
        if lease.valid() and collector.store.connected:
            try:
                async with collector.promotion:
                    done = await asyncio.to_thread(promote_once, collector.store,
                                                   lease.remaining())
                counters["promote_runs"] += 1 if done.parts else 0
                counters["promote_rows_staged"] += done.staged
                counters["promote_rows_promoted"] += done.promoted
                counters["promote_rows_skipped"] += done.skipped
                full = done.parts >= MAX_PARTS
            except Exception as exc:
                counters["promote_failures"] += 1
                log.warning("promotion of staged events failed (retrying): %s", str(exc)[:300])
        if not full:  # a backlog is worked off without pausing
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
