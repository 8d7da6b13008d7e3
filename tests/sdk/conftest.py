"""SDK tests talk to a real collector (embedded ClickHouse) served from a thread.

The SDK is synchronous and blocks in ``flush``; running the collector on its own
event loop in a background thread lets tests call the SDK as product code would.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from quietly_collector.settings import Settings
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import WRITE_KEY

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]


class ThreadedCollector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = 0
        self.running: Running | None = None
        self.write_key = WRITE_KEY

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        s = self.settings
        if self.port:
            s = make_settings_like(s, port=self.port)
        self.running = self.call(_start_on(s, self.port))
        self.port = int(self.running.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.running is not None:
            self.call(stop(self.running))
            self.running = None

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rows(self, sql: str) -> list[Any]:
        assert self.running is not None
        running = self.running
        self.call(running.settle())
        return running.rows(sql)

    def count(self, where: str = "1") -> int:
        return int(self.rows(f"SELECT count() FROM events WHERE {where}")[0][0])


def make_settings_like(settings: Settings, **overrides: Any) -> Settings:
    import msgspec

    return msgspec.structs.replace(settings, **overrides)


async def _start_on(settings: Settings, port: int) -> Running:
    if port:
        settings = make_settings_like(settings, port=port)
        from aiohttp import ClientSession

        from quietly_collector.server.app import init_app, start_server

        app = init_app(settings)
        runner, bound = await start_server(app, "127.0.0.1", port)
        return Running(f"http://127.0.0.1:{bound}", app, runner, ClientSession())
    return await start(settings)


@pytest.fixture
def collector(tmp_path: Path, chdb_path: Path) -> Iterator[ThreadedCollector]:
    c = ThreadedCollector(make_settings(tmp_path, chdb_path))
    c.start()
    try:
        yield c
    finally:
        c.close()


def run_sdk(script: str, *, env: dict[str, str] | None = None, timeout: float = 60.0) -> str:
    """Run SDK code in a fresh interpreter (its own process, exit, fork); return stdout."""
    full_env = dict(os.environ)
    full_env.pop("DO_NOT_TRACK", None)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
