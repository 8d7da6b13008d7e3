"""URL map (see docs/protocol.md and /openapi.json). Each handler declares who may call
it (``@access``); the auth gate checks before it runs."""

from __future__ import annotations

from aiohttp import web

from quietly_collector.insights.alerts import http as alerts_http
from quietly_collector.insights.dashboard import routes as dashboard
from quietly_collector.receivers import admin as views
from quietly_collector.receivers import admin_actions as admin
from quietly_collector.receivers import otlp, segment
from quietly_collector.selfobs import http as telemetry


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/batch", views.post_batch)
    app.router.add_post("/v1/logs", otlp.post_logs)
    app.router.add_post("/segment/v1/batch", segment.post_batch)
    app.router.add_post("/v1/sql", views.post_sql)
    app.router.add_get("/v1/stats", views.get_stats)
    app.router.add_get("/v1/metrics", views.get_metrics_list)
    app.router.add_get("/v1/metrics/{name}", views.get_metric)
    app.router.add_post("/v1/admin/gc", admin.post_gc)
    app.router.add_post("/v1/admin/alerts/check", alerts_http.post_check)
    app.router.add_get("/healthz", views.healthz)
    app.router.add_get("/readyz", views.readyz)
    app.router.add_get("/openapi.json", views.openapi)
    app.router.add_get("/metrics", telemetry.get_metrics)
    dashboard.setup(app)
