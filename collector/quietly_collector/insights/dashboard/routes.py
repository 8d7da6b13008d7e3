"""The dashboard's URLs (documented in openapi.json and docs/dashboard.md)."""

from __future__ import annotations

from aiohttp import web

from quietly_collector.insights.dashboard import login, pages


def setup(app: web.Application) -> None:
    app.router.add_get("/dashboard", pages.handler("executive"))
    app.router.add_get("/dashboard/product", pages.handler("product"))
    app.router.add_get("/dashboard/engineering", pages.handler("engineering"))
    app.router.add_get("/dashboard/login", login.get_login)
    app.router.add_post("/dashboard/login", login.post_login)
    app.router.add_post("/dashboard/logout", login.post_logout)
