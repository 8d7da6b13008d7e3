"""Typed application keys (aiohttp ``web.AppKey``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from quietly_collector.access.throttle import AuthFailures
from quietly_collector.pipeline.collector import Collector
from quietly_collector.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
COLLECTOR = web.AppKey("collector", Collector)
# Set by SIGHUP: re-read the keys file now (tasks.watch_keys).
KEYS_RELOAD = web.AppKey("keys_reload", asyncio.Event)
# The X-Request-Id of a request (middlewares.errors), for audit rows.
REQUEST_ID = web.RequestKey("request_id", str)


@dataclass(frozen=True)
class Principal:
    """Who a request comes from, as the auth gate (auth.py) decided."""

    kind: str  # "admin", "read", "write" or "anonymous"
    project: str | None = None

    @property
    def scope(self) -> str | None:
        """The one project this caller may read, or None for every project (admin)."""
        return self.project if self.kind == "read" else None


PRINCIPAL = web.RequestKey("principal", Principal)
AUTH_FAILURES = web.AppKey("auth_failures", AuthFailures)
