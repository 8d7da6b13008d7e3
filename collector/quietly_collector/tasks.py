"""Background tasks, each owned by a ``cleanup_ctx`` entry (started and stopped with
the app, after the collector starts and before it stops)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from quietly_collector.keys import COLLECTOR
from quietly_collector.maintenance import maintain

log = logging.getLogger("quietly.tasks")


async def run_maintenance(app: web.Application) -> AsyncIterator[None]:
    collector = app[COLLECTOR]
    interval = collector.settings.maintenance_interval_s
    stop = asyncio.Event()

    async def loop() -> None:
        while True:
            try:
                await asyncio.wait_for(stop.wait(), interval)
                return
            except TimeoutError:
                pass
            try:
                await maintain(collector, "system")
            except Exception:
                log.exception("maintenance cycle failed; next one in %ss", interval)

    task = asyncio.create_task(loop(), name="quietly-maintenance") if interval > 0 else None
    yield
    stop.set()
    if task is not None:
        await task  # a cycle under way finishes: it holds the writer's lock
