"""A full disk under the spool, and spools sharing one ClickHouse.

The disk faults are injected at the OS boundary: ``os.write``, ``os.fsync`` and
``os.replace`` fail with ENOSPC for files in the spool directory only. ClickHouse
stays real.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.conftest import Running, make_settings, start, stop
from tests.helpers import body, event, headers, now
from tests.spool.test_spool_recovery import stats


class DiskFull:
    """ENOSPC for the spool's files, from the calls named in ``calls``."""

    def __init__(self, directory: Path, calls: tuple[str, ...]) -> None:
        self.prefix = str(directory.resolve())
        self.calls = calls
        self.hits: Counter[str] = Counter()
        self._write, self._fsync, self._replace = os.write, os.fsync, os.replace

    def _mine(self, fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").startswith(self.prefix)
        except OSError:
            return False

    def _fail(self, call: str) -> None:
        self.hits[call] += 1
        raise OSError(errno.ENOSPC, "No space left on device (injected)")

    def write(self, fd: int, data: Any) -> int:
        if "write" in self.calls and self._mine(fd):
            self._fail("write")
        return self._write(fd, data)

    def fsync(self, fd: int) -> None:
        if "fsync" in self.calls and self._mine(fd):
            self._fail("fsync")
        self._fsync(fd)

    def replace(self, src: Any, dst: Any, **kw: Any) -> None:
        if "replace" in self.calls and str(Path(dst).resolve()).startswith(self.prefix):
            self._fail("replace")
        self._replace(src, dst, **kw)

    @contextmanager
    def on(self) -> Iterator[DiskFull]:
        with mock.patch("os.write", self.write), mock.patch("os.fsync", self.fsync), \
                mock.patch("os.replace", self.replace):
            yield self


async def _post(server: Running, events: list[dict[str, Any]]) -> tuple[int, str, Any]:
    async with server.session.post(server.url + "/v1/batch", data=body(events),
                                   headers=headers()) as resp:
        return resp.status, resp.headers.get("Retry-After", ""), await resp.json()


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _stored(server: Running) -> Counter[str]:
    return Counter(str(r[0]) for r in server.rows("SELECT event_id FROM events"))


async def test_a_full_disk_gets_503s_never_a_false_200_and_loses_nothing(
    tmp_path: Path, chdb_path: Path
) -> None:
    # A slow flush: acknowledged batches are still in the spool when the disk fills.
    settings = make_settings(tmp_path, chdb_path, flush_interval_ms=1_000)
    server = await start(settings)
    try:
        acked: list[str] = []
        for _ in range(4):
            events = [event() for _ in range(10)]
            status, _, _ = await _post(server, events)
            assert status == 200
            acked += [e["event_id"] for e in events]
        refused: list[list[dict[str, Any]]] = []
        disk = DiskFull(settings.spool_path, ("write", "replace"))
        with disk.on():
            for _ in range(6):
                events = [event() for _ in range(7)]
                status, retry_after, result = await _post(server, events)
                assert status == 503 and retry_after.isdigit(), (status, result)
                assert "cannot store" in result["error"]
                refused.append(events)
            # The writer cannot note its progress either; it keeps trying.
            await _until(lambda: disk.hits["replace"] >= 2)
        assert disk.hits["write"] == 6
        counters = (await stats(server))["counters"]
        assert counters["requests_refused_disk"] == 6
        assert counters["events_refused_disk"] == 42
        assert counters["writer_errors"] >= 2
        await server.settle()
        assert _stored(server) == Counter(acked)  # each acknowledged event, once
        # Space is back: the refused batches are accepted, as new events.
        for events in refused:
            status, _, result = await _post(server, events)
            assert (status, result["accepted"]) == (200, 7)
        await server.settle()
        stored = _stored(server)
        assert len(stored) == 82 and set(stored.values()) == {1}
    finally:
        await stop(server)


async def test_a_failed_fsync_refuses_until_restart_and_loses_nothing(
    tmp_path: Path, chdb_path: Path
) -> None:
    settings = make_settings(tmp_path, chdb_path)
    server = await start(settings)
    acked = [event() for _ in range(10)]
    status, _, _ = await _post(server, acked)
    assert status == 200
    failed = [event() for _ in range(5)]
    disk = DiskFull(settings.spool_path, ("fsync",))
    with disk.on():
        status, retry_after, _ = await _post(server, failed)
        assert status == 503 and retry_after.isdigit()
    # The fsync error may have dropped pages: this process acknowledges nothing more.
    status, _, result = await _post(server, [event()])
    assert status == 503 and "disk failed" in result["error"]
    async with server.session.get(server.url + "/readyz") as resp:
        assert resp.status == 503
    await stop(server)

    server = await start(settings)
    try:
        status, _, result = await _post(server, failed)  # the client's resend
        assert status == 200 and result["accepted"] + result["duplicates"] == 5
        await server.settle()
        stored = _stored(server)
        assert set(stored) == {e["event_id"] for e in acked + failed}
        assert set(stored.values()) == {1}
    finally:
        await stop(server)


async def test_two_spools_on_one_clickhouse_do_not_drop_each_others_batches(
    tmp_path: Path, chdb_path: Path
) -> None:
    # A second collector, or one whose disk was replaced, writes to the same database:
    # its spool positions start where the first one's did.
    ts = now().replace(microsecond=123_000)
    database = make_settings(tmp_path, chdb_path).database
    positions = []
    for name in ("first", "second"):
        settings = make_settings(tmp_path / name, chdb_path, database=database,
                                 pseudonym_secret="same-secret-for-both-collectors")
        server = await start(settings)
        try:
            events = [event(ts=ts, session_id=None) for _ in range(3)]
            status, result = await server.post("/v1/batch", body(events), headers())
            assert (status, result["accepted"]) == (200, 3)
            positions.append(server.collector.spool.write_pos)
            await server.settle()
            stored = server.rows("SELECT count() FROM events")
        finally:
            await stop(server)
    assert positions[0] == positions[1]  # the same span in each spool
    assert stored == [(6,)]


async def test_past_the_batches_in_flight_bound_requests_get_503_before_being_read(
    tmp_path: Path, chdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, chdb_path, max_batches_in_flight=3,
                             max_batches_in_flight_per_project=3)
    server = await start(settings)
    real_fsync = os.fsync
    spool_dir = str(settings.spool_path.resolve())

    def slow_fsync(fd: int) -> None:  # a slow disk: batches wait for their fsync
        if os.readlink(f"/proc/self/fd/{fd}").startswith(spool_dir):
            time.sleep(0.3)
        real_fsync(fd)

    try:
        batches = [[event() for _ in range(5)] for _ in range(8)]
        with mock.patch("os.fsync", slow_fsync):
            answers = await asyncio.gather(*(_post(server, b) for b in batches))
        busy = [b for b, (status, _, _) in zip(batches, answers, strict=True) if status == 503]
        assert len(busy) == 5
        assert all(retry.isdigit() and "in progress" in result["error"]
                   for status, retry, result in answers if status == 503)
        counters = (await stats(server))["counters"]
        assert counters["requests_refused_busy"] == 5
        for b in busy:  # resent later, accepted
            status, _, result = await _post(server, b)
            assert (status, result["accepted"]) == (200, 5)
        await server.settle()
        assert server.rows("SELECT count(), uniqExact(event_id) FROM events") == [(40, 40)]
    finally:
        await stop(server)
