"""The served OpenAPI file documents every route the collector has."""

from __future__ import annotations

import json
from importlib import resources

from aiohttp import web

from quietly_collector.server.routes import setup_routes


def test_every_route_is_in_openapi() -> None:
    app = web.Application()
    setup_routes(app)
    spec = json.loads((resources.files("quietly_collector.receivers") / "openapi.json").read_text())
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.method != "HEAD"}
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert routes - documented == set()
