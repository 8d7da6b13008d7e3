"""A real webhook receiver for the alert tests: an aiohttp server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web


class Receiver:
    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.requests = 0
        self.fail_next = 0  # answer 500 to this many requests first
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        data = await request.json()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500, text="down")
        self.got.append(data)
        return web.json_response({"ok": True})

    def kinds(self) -> list[tuple[str, str, str]]:
        # The tests' data is all project proj's (tests/alert_data.py sends it).
        return [(m["rule"], m["scope"].removeprefix("project=proj "), m["kind"])
                for m in self.got]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    r.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield r
    finally:
        await runner.cleanup()
