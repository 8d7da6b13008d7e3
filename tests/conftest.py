"""Fixtures: one embedded ClickHouse directory per test process, one database per test.

chdb allows a single data directory per process for the process's lifetime,
so every in-process collector shares ``chdb_path`` and isolates by database. A
test's databases are dropped when it ends: each database left holding data made
every later client connection in the process slower (9 ms with none, 75 ms with
one, about 2 s after 40 collectors' databases), which was most of the suite's time.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import clickhouse_connect
import pytest
from aiohttp import web

from quietly_collector.pipeline.collector import COLLECTOR, Collector
from quietly_collector.server.app import init_app, start_server
from quietly_collector.settings import Settings, load_settings
from quietly_collector.storage.migrations import migrate
from quietly_collector.storage.store import Store
from tests.helpers import ADMIN_TOKEN, OTHER_KEY, WRITE_KEY

# The databases make_settings named, in order; _drop_the_tests_databases drops those
# named while a test ran (its own), _drop_the_modules_databases those of the module's
# fixtures once they are torn down.
_DATABASES: list[tuple[Path, str]] = []
_ADMIN: list[Any] = []


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture(autouse=True)
def _drop_the_tests_databases() -> Iterator[None]:
    yield from _dropping_what_is_made()


@pytest.fixture(autouse=True, scope="module")
def _drop_the_modules_databases() -> Iterator[None]:
    yield from _dropping_what_is_made()


def _dropping_what_is_made() -> Iterator[None]:
    mark = len(_DATABASES)
    yield
    made, _DATABASES[mark:] = _DATABASES[mark:], []
    for path, database in made:
        # Only what this process's engine made: a database on disk under the
        # worker's directory (a test that never stored anything started no engine).
        if not (path / "metadata" / f"{database}.sql").exists():
            continue
        if not _ADMIN:
            _ADMIN.append(clickhouse_connect.get_client(dsn=f"chdb://{path.resolve()}"))
        _ADMIN[0].command(f"DROP DATABASE IF EXISTS `{database}` SYNC")


@pytest.fixture
def settings(tmp_path: Path, chdb_path: Path) -> Settings:
    return make_settings(tmp_path, chdb_path)


def make_settings(tmp_path: Path, chdb_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "chdb_path": str(chdb_path),
        "database": "t_" + uuid.uuid4().hex[:12],
        "write_keys": {"proj": WRITE_KEY, "other": OTHER_KEY},
        "admin_token": ADMIN_TOKEN,
        "flush_interval_ms": 20,
        # Not the default 10: xdist workers compete for the cores, and storage below
        # their priority took 3x longer (tests/spool/test_priority.py tests the default).
        "storage_nice": 0,
        "port": 0,
        # Small generated datasets: suppression is tested where it is the subject
        # (tests/insights/test_kanonymity.py), not in every metric's answer.
        "min_cell_installs": 0,
    }
    values.update(overrides)
    settings = load_settings(env={}, overrides=values)
    if settings.embedded and Path(values["chdb_path"]) == chdb_path:
        _DATABASES.append((chdb_path, settings.database))
    return settings


@dataclass
class Running:
    url: str
    app: web.Application
    runner: web.AppRunner
    session: aiohttp.ClientSession

    @property
    def collector(self) -> Collector:
        return self.app[COLLECTOR]

    @property
    def store(self) -> Store:
        return self.collector.store

    async def post(self, path: str, data: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async with self.session.post(self.url + path, data=data, headers=headers) as resp:
            try:
                payload = await resp.json(content_type=None)
            except ValueError:
                payload = await resp.text()
            return resp.status, payload

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until everything acknowledged is in ClickHouse."""
        writer = self.collector.writer
        assert writer is not None
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.collector.spool.pending_rows and loop.time() < deadline:
            await asyncio.sleep(0.02)
        assert self.collector.spool.pending_rows == 0, "spool did not drain"

    def rows(self, sql: str) -> list[Any]:
        return self.store.query(sql)[1]


async def start(settings: Settings) -> Running:
    app = init_app(settings)
    runner, port = await start_server(app, "127.0.0.1", 0)
    session = aiohttp.ClientSession(auto_decompress=False)
    return Running(f"http://127.0.0.1:{port}", app, runner, session)


async def stop(running: Running) -> None:
    await running.session.close()
    await running.runner.cleanup()


@pytest.fixture
def single(tmp_path: Path, chdb_path: Path) -> Iterator[Store]:
    """A single-node database with every migration applied, without a collector."""
    settings = make_settings(tmp_path, chdb_path)
    store = Store(settings)
    store.connect()
    migrate(store, settings)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Running]:
    running = await start(settings)
    try:
        yield running
    finally:
        await stop(running)


@pytest.fixture(scope="session")
def ch_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a ClickHouse HTTP endpoint (tests/chserver) over its own embedded
    engine, for this test process: collectors reach it with ``clickhouse_url``."""
    import subprocess
    import sys

    path = tmp_path_factory.mktemp("chserver")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.chserver", "--path", str(path / "db")],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(10)
