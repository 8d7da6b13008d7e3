"""URL map (see docs/protocol.md and /openapi.json). Each handler declares who may call
it (``@access``); the auth gate checks before it runs."""

from __future__ import annotations

from aiohttp import web

from quietly_collector.insights import http as insights
from quietly_collector.insights.dashboard import routes as dashboard
from quietly_collector.receivers import admin, native, otlp, posthog, segment
from quietly_collector.selfobs import http as telemetry


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/batch", native.post_batch)
    app.router.add_post("/v1/logs", otlp.post_logs)
    app.router.add_post("/segment/v1/batch", segment.post_batch)
    for path in posthog.ROUTES:
        app.router.add_post(path, posthog.capture)
    app.router.add_post("/v1/sql", admin.post_sql)
    app.router.add_get("/v1/stats", admin.get_stats)
    app.router.add_get("/v1/metrics", insights.get_metrics_list)
    app.router.add_get("/v1/metrics/{name}", insights.get_metric)
    app.router.add_post("/v1/admin/gc", admin.post_gc)
    app.router.add_post("/v1/admin/alerts/check", insights.post_check)
    app.router.add_get("/healthz", admin.healthz)
    app.router.add_get("/readyz", admin.readyz)
    app.router.add_get("/openapi.json", admin.openapi)
    app.router.add_get("/metrics", telemetry.get_metrics)
    dashboard.setup(app)
