"""Background tasks, each owned by a ``cleanup_ctx`` entry (started and stopped with
the app, after the collector starts and before it stops)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from quietly_collector.access.appkeys import AUTH_FAILURES, KEYS_RELOAD
from quietly_collector.access.keyfile import KeysFileError
from quietly_collector.pipeline.collector import COLLECTOR
from quietly_collector.storage import audit
from quietly_collector.storage.store import StorageError

log = logging.getLogger("quietly.tasks")
KEYS_POLL_SECONDS = 1.0


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
            if not collector.leader.valid():
                continue  # another collector holds the leader lease and runs it
            try:
                await collector.maintain("system")
            except Exception:
                log.exception("maintenance cycle failed; next one in %ss", interval)

    task = asyncio.create_task(loop(), name="quietly-maintenance") if interval > 0 else None
    yield
    stop.set()
    if task is not None:
        await task  # a cycle under way finishes: it holds the writer's lock


async def watch_keys(app: web.Application) -> AsyncIterator[None]:
    collector = app[COLLECTOR]
    hup = app[KEYS_RELOAD]
    watcher = collector.credentials.keys_watch

    async def reload(source: str) -> None:
        if watcher is None:
            log.warning("SIGHUP: no keys_file is configured; nothing to reload")
            return
        try:
            detail = watcher.reload()
            row = audit.entry("system", "key_reload", {"source": source, **detail})
            log.info("keys reloaded from %s (%s): %s", watcher.path, source, detail)
        except KeysFileError as exc:
            log.error("keys file not reloaded, the keys stay as they were: %s", exc)
            row = audit.entry("system", "key_reload", {"source": source,
                                                       "error": audit.clean(str(exc), 500)},
                              outcome="error")
        try:
            await asyncio.to_thread(audit.record, collector.store, row)
        except Exception as exc:
            # The keys changed anyway: revoking a key must not wait for storage.
            collector.counters["audit_write_failures"] += 1
            log.error("audit row of a key reload not written: %s", exc)

    async def loop() -> None:
        while True:
            try:
                await asyncio.wait_for(hup.wait(), KEYS_POLL_SECONDS)
                hup.clear()
                await reload("sighup")
            except TimeoutError:
                if watcher is not None and watcher.changed():
                    await reload("file")

    task = asyncio.create_task(loop(), name="quietly-keys-watch")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


# At most one auth_failures audit row this often, while authentication fails.
AUDIT_INTERVAL_S = 60.0


async def audit_failures(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: one ``auth_failures`` audit row a minute while failures happen."""
    collector = app[COLLECTOR]
    failures = app[AUTH_FAILURES]

    async def write() -> None:
        detail = failures.summary()
        if detail is None:
            return
        row = audit.entry("system", "auth_failures", detail)
        try:
            await asyncio.to_thread(audit.record, collector.store, row)
        except StorageError:
            collector.counters["audit_write_failures"] += 1

    async def loop() -> None:
        while True:
            await asyncio.sleep(AUDIT_INTERVAL_S)
            await write()

    task = asyncio.create_task(loop(), name="quietly-auth-audit")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await write()
