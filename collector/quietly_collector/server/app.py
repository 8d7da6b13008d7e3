"""Application factory and runner (aiohttp-demos layout)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from quietly_collector.access.appkeys import AUTH_FAILURES, CREDENTIALS, KEYS_RELOAD, SETTINGS
from quietly_collector.access.gate import gate
from quietly_collector.access.throttle import AuthFailures
from quietly_collector.insights.alerts import rules
from quietly_collector.insights.alerts.scheduler import run_alerts
from quietly_collector.insights.http import READING
from quietly_collector.insights.report import target_plan
from quietly_collector.pipeline.collector import COLLECTOR, Collector
from quietly_collector.receivers.errors import errors
from quietly_collector.selfobs.http import setup_telemetry
from quietly_collector.server.connections import GUARD, ConnectionGuard, guard_connections
from quietly_collector.server.leader import keep_leader
from quietly_collector.server.routes import setup_routes
from quietly_collector.server.tasks import audit_failures, run_maintenance, watch_keys
from quietly_collector.settings import Settings

log = logging.getLogger("quietly")
SHUTDOWN_DRAIN_SECONDS = 10.0
GC_GEN0_THRESHOLD = 20_000


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    collector = app[COLLECTOR]
    await collector.start()
    # Long-lived start-up objects (catalog, decoders, preloaded ids) move out of
    # the GC's reach, and young collections run less often: full collections
    # otherwise stall the event loop for tens of milliseconds under load.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)
    yield
    await collector.stop(SHUTDOWN_DRAIN_SECONDS)


def init_app(settings: Settings, collector: Collector | None = None) -> web.Application:
    rules.check(settings)
    target_plan.check(settings)
    # The body limit is enforced by read_body; aiohttp's own check would answer
    # before we can give a JSON reason.
    # errors outside gate: a refusal by the gate leaves as JSON with a reason too.
    app = web.Application(middlewares=[errors, gate],
                          client_max_size=settings.max_batch_bytes + 1)
    app[SETTINGS] = settings
    app[COLLECTOR] = collector or Collector(settings)
    app[KEYS_RELOAD] = asyncio.Event()
    app[CREDENTIALS] = app[COLLECTOR].credentials
    app[AUTH_FAILURES] = AuthFailures(app[COLLECTOR].counters, settings.auth_failure_burst,
                                      settings.auth_failures_per_minute)
    # In this order: the tasks stop (reverse order) before the collector does.
    app[READING] = Counter()
    app[GUARD] = ConnectionGuard(app[COLLECTOR].counters, settings.write_timeout_s,
                                 settings.max_connections_per_address)
    app.cleanup_ctx.extend([_lifecycle, keep_leader, run_maintenance, watch_keys, run_alerts,
                            audit_failures, guard_connections])
    setup_routes(app)
    setup_telemetry(app)  # /metrics, and OTLP export when configured
    return app


async def start_server(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner and the bound port (useful with port 0)."""
    # auto_decompress=False: read_body inflates gzip itself, within limits.
    # keepalive_timeout: aiohttp arms it when a connection opens and after each answer,
    # and closes a connection still without a whole request when it fires: the deadline
    # for request headers and for an idle keep-alive connection alike.
    settings = app.get(SETTINGS)  # None for a plain app (tests' receivers)
    keepalive = settings.keepalive_timeout_s if settings is not None else 75.0
    runner = web.AppRunner(app, auto_decompress=False, access_log=None,
                           keepalive_timeout=keepalive)
    await runner.setup()
    guard = app.get(GUARD)
    if guard is not None:
        guard.server = runner.server
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    for address in runner.addresses:  # the real port when asked for port 0
        if isinstance(address, tuple):
            bound = int(address[1])
            break
    return runner, bound


async def serve(settings: Settings, on_ready: Callable[[int], None] | None = None) -> None:
    app = init_app(settings)
    runner, port = await start_server(app, settings.host, settings.port)
    if on_ready is not None:
        on_ready(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, app[KEYS_RELOAD].set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: storing what is buffered")
        await runner.cleanup()
