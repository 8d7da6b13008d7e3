"""Storing yields the CPU to the loop that acknowledges requests (priority.py)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from quietly_collector.settings import Settings
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import body, event, headers


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def _writer_tids(running: Running) -> set[int]:
    """The thread the writer reads the spool and inserts on."""
    writer = running.collector.writer
    assert writer is not None
    return {t.native_id for t in writer._executor._threads if t.native_id is not None}


def _engine_tids() -> set[int]:
    python = {t.native_id for t in threading.enumerate()}
    return {int(t) for t in os.listdir("/proc/self/task")} - python


@pytest.fixture
def restore_engine_priority() -> Iterator[None]:
    """The engine's threads serve every later test of this process: put them back at
    the loop's priority where allowed (lowering a nice value needs CAP_SYS_NICE)."""
    yield
    for tid in _engine_tids():
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, 0)


async def test_the_writer_and_the_engine_run_below_the_loop(
    tmp_path: Path, chdb_path: Path, restore_engine_priority: None
) -> None:
    default = Settings().storage_nice
    assert default == 10
    # make_settings turns it off for the suite; this test puts the default back.
    server = await start(make_settings(tmp_path, chdb_path, storage_nice=default))
    try:
        engine_before = _engine_tids()
        assert engine_before, "the embedded engine runs threads of its own"
        status, _ = await server.post("/v1/batch", body([event()]), headers())
        assert status == 200
        await server.settle()

        writer = _writer_tids(server)
        assert writer and all(_nice(t) == 10 for t in writer)
        assert _nice(threading.get_native_id()) == 0  # the event loop keeps its priority
        # Every engine thread there before the insert was lowered by it (those that
        # ended meanwhile are skipped).
        alive = _engine_tids() & engine_before
        assert alive and all(_nice(t) >= 10 for t in alive)
    finally:
        await stop(server)


async def test_storage_nice_0_leaves_the_writer_at_the_loops_priority(
    tmp_path: Path, chdb_path: Path
) -> None:
    running = await start(make_settings(tmp_path, chdb_path, storage_nice=0))
    try:
        status, _ = await running.post("/v1/batch", body([event()]), headers())
        assert status == 200
        await running.settle()
        writer = running.collector.writer
        assert writer is not None and writer.engine_threads is not None
        assert writer.engine_threads.nice == 0
        tids = _writer_tids(running)
        assert tids and all(_nice(t) == 0 for t in tids)
    finally:
        await stop(running)

