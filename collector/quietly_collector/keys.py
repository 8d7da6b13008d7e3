"""Typed application keys (aiohttp ``web.AppKey``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from quietly_collector.service import Collector
from quietly_collector.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
COLLECTOR = web.AppKey("collector", Collector)
# Set by SIGHUP: re-read the keys file now (tasks.watch_keys).
KEYS_RELOAD = web.AppKey("keys_reload", asyncio.Event)
# The X-Request-Id of a request (middlewares.errors), for audit rows.
REQUEST_ID = web.RequestKey("request_id", str)
