"""Typed application and request keys (aiohttp ``web.AppKey``) of the access layer:
what the auth gate reads from the app, and what it leaves on a request. The
collector's own key (COLLECTOR) is beside its type in pipeline/collector.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from quietly_collector.access.credentials import Credentials
from quietly_collector.access.throttle import AuthFailures
from quietly_collector.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
# The keys in effect (a keys file reload changes them in place) and the secret.
CREDENTIALS = web.AppKey("credentials", Credentials)
# Set by SIGHUP: re-read the keys file now (tasks.watch_keys).
KEYS_RELOAD = web.AppKey("keys_reload", asyncio.Event)
# The X-Request-Id of a request (receivers/errors.py), for audit rows.
REQUEST_ID = web.RequestKey("request_id", str)


@dataclass(frozen=True)
class Principal:
    """Who a request comes from, as the auth gate (gate.py) decided."""

    kind: str  # "admin", "read", "write" or "anonymous"
    project: str | None = None

    @property
    def scope(self) -> str | None:
        """The one project this caller may read, or None for every project (admin)."""
        return self.project if self.kind == "read" else None


PRINCIPAL = web.RequestKey("principal", Principal)
AUTH_FAILURES = web.AppKey("auth_failures", AuthFailures)
