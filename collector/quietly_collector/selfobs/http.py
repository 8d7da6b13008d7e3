"""Wiring of telemetry into an app, and ``GET /metrics``.

Access to /metrics: the admin token, like /v1/stats, unless ``metrics_public`` is set
(for a scraper on a private network that carries no token). Write keys are refused
either way. The output holds counts and names of counters, never a key or a token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from quietly_collector.access.gate import Level, access
from quietly_collector.access.logcontext import register_secrets
from quietly_collector.pipeline.collector import COLLECTOR
from quietly_collector.selfobs import tracing
from quietly_collector.selfobs.selfmetrics import SelfMetrics

SELF_METRICS = web.AppKey("self_metrics", SelfMetrics)
# What generate_latest writes: the classic text format every Prometheus reads.
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def setup_telemetry(app: web.Application) -> None:
    collector = app[COLLECTOR]
    settings = collector.settings
    register_secrets(settings)
    readers = []
    traces: tracing.Tracing | None = None
    if settings.otlp_endpoint:
        readers.append(tracing.otlp_metric_reader(settings.otlp_endpoint))
        traces = tracing.Tracing(settings.otlp_endpoint)
        collector.hooks.span = traces.insert_span
        # Outermost: the span sees the status the client gets, errors included.
        app.middlewares.insert(0, traces.middleware)
    metrics = SelfMetrics(collector, readers)
    app[SELF_METRICS] = metrics

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        yield
        # Runs after the collector stopped (first in the list, so cleaned up last):
        # the last OTLP export carries the final counts. In a thread: the exporters send
        # synchronously, and must not stall the loop (or a receiver running on it).
        await asyncio.to_thread(metrics.shutdown)
        if traces is not None:
            await asyncio.to_thread(traces.shutdown)

    app.cleanup_ctx.insert(0, lifecycle)


# With metrics_public a request without credentials is let through; one that carries
# credentials is checked as usual (a write key is still no reader's credential).
@access(Level.METRICS)
async def get_metrics(request: web.Request) -> web.Response:
    metrics = request.app.get(SELF_METRICS)
    if metrics is None:
        raise web.HTTPServiceUnavailable(reason="self-metrics are not set up in this app")
    return web.Response(body=metrics.render(), headers={"Content-Type": PROMETHEUS_TEXT})
