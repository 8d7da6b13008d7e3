"""Acknowledged means durable: storage outages, spool limits and restarts lose nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from tests.conftest import Running, make_settings, start, stop
from tests.helpers import ADMIN_TOKEN, body, event, headers, now


async def _wait(predicate: object, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_batches_wait_in_the_spool_while_storage_is_down(server: Running) -> None:
    server.store.command("DETACH TABLE events")  # ClickHouse loses the table: inserts fail
    sent = []
    for _ in range(5):
        events = [event() for _ in range(10)]
        status, result = await server.post("/v1/batch", body(events), headers())
        assert (status, result["accepted"]) == (200, 10)
        sent += [e["event_id"] for e in events]
    writer = server.collector.writer
    assert writer is not None
    await _wait(lambda: writer.stats.insert_failures >= 2)
    assert server.collector.spool.pending_rows == 50
    async with server.session.get(server.url + "/readyz") as resp:
        assert resp.status == 503 and (await resp.json())["storage"] is False

    server.store.command("ATTACH TABLE events")
    await server.settle()
    stored = {str(r[0]) for r in server.rows("SELECT event_id FROM events")}
    assert stored == set(sent)
    async with server.session.get(server.url + "/readyz") as resp:
        assert resp.status == 200


async def test_past_the_spool_limit_the_collector_answers_503(
    tmp_path: Path, chdb_path: Path
) -> None:
    settings = make_settings(tmp_path, chdb_path, spool_max_bytes=20_000)
    running = await start(settings)
    try:
        running.store.command("DETACH TABLE events")
        statuses = []
        for _ in range(12):
            status, result = await running.post(
                "/v1/batch", body([event() for _ in range(5)]), headers()
            )
            statuses.append(status)
            if status == 503:
                assert "buffer limit" in result["error"]
        assert statuses[0] == 200 and statuses[-1] == 503
        accepted = statuses.count(200) * 5
        async with running.session.post(
            running.url + "/v1/batch", data=body([event() for _ in range(5)]), headers=headers()
        ) as resp:
            assert resp.status == 503 and resp.headers["Retry-After"].isdigit()
        running.store.command("ATTACH TABLE events")
        await running.settle()
        assert running.rows("SELECT count() FROM events") == [(accepted,)]
        # Drained: new batches are accepted again.
        status, _ = await running.post("/v1/batch", body([event()]), headers())
        assert status == 200
    finally:
        await stop(running)


async def test_spooled_events_survive_a_restart_and_duplicates_are_still_caught(
    tmp_path: Path, chdb_path: Path
) -> None:
    settings = make_settings(tmp_path, chdb_path)
    first = await start(settings)
    old = event(ts=now() - timedelta(days=3))  # older than what memory covers after restart
    recent = [event() for _ in range(10)]
    await first.post("/v1/batch", body([old, *recent]), headers())
    await first.settle()
    # Storage goes away, more batches arrive, then the collector stops with them spooled.
    first.store.command("DETACH TABLE events")
    waiting = [event() for _ in range(10)]
    status, _ = await first.post("/v1/batch", body(waiting), headers())
    assert status == 200
    first.collector.store.command("ATTACH TABLE events")  # back for the next process
    await _stop_without_draining(first)

    second = await start(settings)
    try:
        await second.settle()
        assert second.rows("SELECT count() FROM events") == [(21,)]
        # Resends of every kind are recognised: recent, spooled before restart, and old.
        status, result = await second.post(
            "/v1/batch", body([old, recent[0], waiting[0], event()]), headers()
        )
        assert (result["accepted"], result["duplicates"]) == (1, 3)
        await second.settle()
        assert second.rows("SELECT count(), uniqExact(event_id) FROM events") == [(22, 22)]
    finally:
        await stop(second)


async def _stop_without_draining(running: Running) -> None:
    writer = running.collector.writer
    assert writer is not None
    # Stop the writer before it can store the spooled batch (as a crash would).
    for task in running.collector._tasks:
        task.cancel()
    await asyncio.gather(*running.collector._tasks, return_exceptions=True)
    running.collector._tasks = []
    running.collector.writer = None
    await stop(running)



async def test_a_clickhouse_server_down_at_start_does_not_stop_intake(
    tmp_path: Path, chdb_path: Path
) -> None:
    # Nothing listens on port 1: every connection is refused.
    settings = make_settings(tmp_path, chdb_path, clickhouse_url="http://u:p@127.0.0.1:1/db")
    running = await start(settings)
    try:
        status, result = await running.post("/v1/batch", body([event(), event()]), headers())
        assert (status, result["accepted"]) == (200, 2)
        assert running.collector.spool.pending_rows == 2
        async with running.session.get(running.url + "/readyz") as resp:
            ready = await resp.json()
            assert resp.status == 503 and ready["storage"] is False and ready["spool_rows"] == 2
    finally:
        await stop(running)


async def test_a_lone_event_is_stored_at_once_and_a_stream_waits_for_the_flush_interval(
    tmp_path: Path, chdb_path: Path
) -> None:
    # flush_interval_ms spaces small inserts (ClickHouse wants about one a second), but an
    # event after a quiet spell, or the first since start, must not wait for it: a
    # newcomer's first curl, sent the moment the collector is up, shows up at once.
    running = await start(make_settings(tmp_path, chdb_path, flush_interval_ms=2_000))
    try:
        loop = asyncio.get_running_loop()
        first, second = event(), event()

        def stored() -> set[str]:
            return {str(r[0]) for r in running.rows("SELECT event_id FROM events")}

        sent = loop.time()
        assert (await running.post("/v1/batch", body([first]), headers()))[0] == 200
        await _wait(lambda: first["event_id"] in stored(), timeout=1.5)
        assert loop.time() - sent < 1.5  # did not wait for the 2 s interval

        assert (await running.post("/v1/batch", body([second]), headers()))[0] == 200
        await asyncio.sleep(0.4)
        assert second["event_id"] not in stored()  # the next insert waits its turn
        await _wait(lambda: second["event_id"] in stored(), timeout=3.0)
    finally:
        await stop(running)


async def test_a_burst_that_stops_is_stored_before_the_interval_and_a_trickle_waits(
    tmp_path: Path, chdb_path: Path
) -> None:
    # A burst's end (at least flush_rows/10 waiting, no new batch for flush_idle_ms) goes
    # in a quarter of the interval after the previous insert, not a whole interval; a
    # few events still wait out the interval, so a trickle adds no inserts.
    running = await start(make_settings(tmp_path, chdb_path, flush_interval_ms=4_000,
                                        flush_rows=100, flush_idle_ms=50))
    try:
        loop = asyncio.get_running_loop()

        def stored() -> set[str]:
            return {str(r[0]) for r in running.rows("SELECT event_id FROM events")}

        first = event()
        assert (await running.post("/v1/batch", body([first]), headers()))[0] == 200
        await _wait(lambda: first["event_id"] in stored(), timeout=2.0)  # the first, at once
        burst = [event() for _ in range(20)]
        sent = loop.time()
        assert (await running.post("/v1/batch", body(burst), headers()))[0] == 200
        await _wait(lambda: {e["event_id"] for e in burst} <= stored(), timeout=6.0)
        assert loop.time() - sent < 2.8  # about 1 s, where the interval alone gives 4 s

        few = [event() for _ in range(3)]
        sent = loop.time()
        assert (await running.post("/v1/batch", body(few), headers()))[0] == 200
        await asyncio.sleep(1.8)
        assert not {e["event_id"] for e in few} & stored()  # under flush_rows/10: waits
        await _wait(lambda: {e["event_id"] for e in few} <= stored(), timeout=6.0)
        assert loop.time() - sent > 2.0
        writer = running.collector.writer
        assert writer is not None
        await _wait(lambda: writer.stats.inserted_batches >= 3)  # counted after the insert
        async with running.session.get(running.url + "/v1/stats",
                                       headers=headers(ADMIN_TOKEN)) as resp:
            assert (await resp.json())["inserts"] == 3  # first, burst, the few
    finally:
        await stop(running)
