"""Delivering the same events more than once changes nothing: raw counts and every
metric equal those of a single clean delivery into another database.

Replays of a whole batch, a lost answer to an insert that landed (the writer retries
it), events resent inside new batches, and a crash between an insert and its
checkpoint (the next process retries the span).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from quietly_collector.insights import metrics
from quietly_collector.settings import Settings
from quietly_collector.storage.store import StorageError, Store
from tests import metrics_truth as truth
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import headers
from tests.spool.test_durability import _stop_without_draining

SECRET = "idempotency-test-pseudonym-secret"


def _body(events: Sequence[truth.Ev]) -> bytes:
    # No sent_at: stored times are the clients' own, the same in every delivery.
    return json.dumps({"events": [e.wire() for e in events]}).encode()


async def _send(server: Running, events: Sequence[truth.Ev]) -> dict[str, Any]:
    status, result = await server.post("/v1/batch", _body(events), headers())
    assert status == 200 and not result["rejected"], result
    return dict(result)


def _snapshot(store: Store) -> dict[str, Any]:
    """Raw counts and every metric (funnel takes steps, and reads the raw events)."""
    out: dict[str, Any] = {
        "events": store.query("SELECT count(), uniqExact(event_id) FROM events")[1],
        "rejected": store.query("SELECT count() FROM rejected_events")[1],
    }
    # The metrics built at query time need their own options.
    options = {"paths": {"start": "session_start"},
               "experiment": {"name": "onboarding_tour", "goal": "job_completed"}}
    for name in metrics.METRICS:
        if name != "funnel":
            q = metrics.parse_query(name, truth.START.isoformat(), truth.END.isoformat(),
                                    **options.get(name, {}))
            out[name] = sorted(map(repr, metrics.run(store, q)[1]))
    return out


def _settings(tmp_path: Path, chdb_path: Path, name: str) -> Settings:
    return make_settings(tmp_path / name, chdb_path, pseudonym_secret=SECRET)


async def _clean(tmp_path: Path, chdb_path: Path, events: list[truth.Ev]) -> dict[str, Any]:
    server = await start(_settings(tmp_path, chdb_path, "clean"))
    try:
        for i in range(0, len(events), 300):
            await _send(server, events[i:i + 300])
        await server.settle(30)
        return _snapshot(server.store)
    finally:
        await stop(server)


def _lose_one_answer(store: Store) -> tuple[threading.Event, threading.Event]:
    """The next events insert lands, then fails as a timeout would (after the test says
    so): ClickHouse has the rows, the writer does not know it."""
    landed, release = threading.Event(), threading.Event()
    real = store.insert

    def insert(table: str, columns: Sequence[str], data: bytes | bytearray, token: str) -> None:
        real(table, columns, data, token)
        if table == "events" and not landed.is_set():
            landed.set()
            release.wait(10)
            raise StorageError("Read timed out (injected: the insert landed, the answer was lost)")

    store.insert = insert  # type: ignore[method-assign]
    return landed, release


async def test_replays_a_lost_insert_answer_and_resends_change_no_count_or_metric(
    tmp_path: Path, chdb_path: Path
) -> None:
    events = truth.generate()
    clean = await _clean(tmp_path, chdb_path, events)

    rng = random.Random(3)
    shuffled = events[:]
    rng.shuffle(shuffled)
    batches = [shuffled[i:i + 150] for i in range(0, len(shuffled), 150)]
    server = await start(_settings(tmp_path, chdb_path, "messy"))
    try:
        landed, release = _lose_one_answer(server.store)
        await _send(server, batches[0])
        assert await asyncio.to_thread(landed.wait, 10)
        # While the writer waits for its lost answer: the client gave up waiting and
        # replays the batch, once with a timeout too short to hear back.
        short = aiohttp.ClientTimeout(total=0.001)
        try:
            async with server.session.post(server.url + "/v1/batch", data=_body(batches[0]),
                                           headers=headers(), timeout=short):
                pass
        except TimeoutError:
            pass
        assert (await _send(server, batches[0]))["duplicates"] == 150
        # A new batch is spooled meanwhile; the writer's retry must not take it along.
        sent = list(batches[0])
        await _send(server, batches[1])
        sent += batches[1]
        release.set()
        resent = 0
        for b in batches[2:]:
            again = rng.sample(sent, len(b) // 10)  # 10% resent inside new batches
            result = await _send(server, b + again)
            assert result["duplicates"] == len(again)
            resent += len(again)
            sent += b
        assert (await _send(server, batches[0]))["duplicates"] == 150  # the third replay
        await server.settle(30)
        writer = server.collector.writer
        assert writer is not None and writer.stats.insert_failures >= 1
        assert resent >= len(events) // 12
        assert _snapshot(server.store) == clean
    finally:
        await stop(server)


async def test_a_crash_between_insert_and_checkpoint_counts_nothing_twice(
    tmp_path: Path, chdb_path: Path
) -> None:
    events = truth.generate()
    clean = await _clean(tmp_path, chdb_path, events)

    settings = _settings(tmp_path, chdb_path, "crash")
    first = await start(settings)
    half = len(events) // 2
    spool = first.collector.spool
    committed = asyncio.Event()

    def crash(*args: object) -> None:
        committed.set()  # the insert is done; the process "dies" before the checkpoint
        raise asyncio.CancelledError

    spool.commit = crash  # type: ignore[method-assign,assignment]
    for i in range(0, half, 300):
        await _send(first, events[i:min(i + 300, half)])
    await asyncio.wait_for(committed.wait(), 10)
    assert first.rows("SELECT count() FROM events")[0][0] > 0  # it had landed
    await _stop_without_draining(first)

    second = await start(settings)
    try:
        for i in range(half, len(events), 300):
            await _send(second, events[i:i + 300])
        await second.settle(30)
        assert _snapshot(second.store) == clean
    finally:
        await stop(second)
