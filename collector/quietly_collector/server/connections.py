"""Connections that hold the collector without using it: closed.

aiohttp bounds a request's head (``keepalive_timeout_s``) and its body is bounded by
the receivers (``body_timeout_s``), but nothing bounds an answer that the client
never reads: a connection that pipelines requests and reads nothing keeps its
answers, and its file descriptor, for ever. Twice a second this guard looks at every
open connection and closes

- one whose answers have waited unread for ``write_timeout_s``;
- the newest ones of an address past ``max_connections_per_address`` (behind a
  proxy every client has the proxy's address: raise it, or 0 turns it off).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

INTERVAL_S = 0.5


class ConnectionGuard:
    def __init__(self, counters: Counter[str], write_timeout_s: int, per_address: int) -> None:
        self.counters = counters
        self.write_timeout_s = write_timeout_s
        self.per_address = per_address
        self.server: web.Server | None = None
        # Transport -> when its unread answers were first seen.
        self._stalled: dict[int, float] = {}

    def sweep(self) -> None:
        if self.server is None:
            return
        now = time.monotonic()
        by_address: dict[str, list[Any]] = {}
        stalled: dict[int, float] = {}
        for handler in self.server.connections:
            transport = handler.transport
            if transport is None or transport.is_closing():
                continue
            if self.write_timeout_s and transport.get_write_buffer_size() > 0:
                since = self._stalled.get(id(transport), now)
                if now - since >= self.write_timeout_s:
                    transport.abort()
                    self.counters["connections_closed_unread"] += 1
                    continue
                stalled[id(transport)] = since
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            by_address.setdefault(address, []).append(transport)
        self._stalled = stalled
        if self.per_address:
            for transports in by_address.values():
                # Oldest first (the server keeps them in the order they came): the
                # newest ones over the cap go.
                for transport in transports[self.per_address:]:
                    transport.abort()
                    self.counters["connections_closed_address_cap"] += 1


GUARD = web.AppKey("connection_guard", ConnectionGuard)


async def guard_connections(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the guard's sweep, twice a second."""
    guard = app[GUARD]

    async def loop() -> None:
        while True:
            await asyncio.sleep(INTERVAL_S)
            guard.sweep()

    task = asyncio.create_task(loop(), name="quietly-connection-guard")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
