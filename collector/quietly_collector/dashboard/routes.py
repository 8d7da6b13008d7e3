"""The dashboard's URLs (documented in openapi.json and docs/dashboard.md)."""

from __future__ import annotations

from aiohttp import web

from quietly_collector.dashboard import login, views


def setup(app: web.Application) -> None:
    app.router.add_get("/dashboard", views.handler("executive"))
    app.router.add_get("/dashboard/product", views.handler("product"))
    app.router.add_get("/dashboard/engineering", views.handler("engineering"))
    app.router.add_get("/dashboard/login", login.get_login)
    app.router.add_post("/dashboard/login", login.post_login)
    app.router.add_post("/dashboard/logout", login.post_logout)
