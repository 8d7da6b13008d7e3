"""Storage down under a steady load: the spool fills, refuses at its limit with
503 + Retry-After (counted as the clients count them), and drains when storage
is back, faster than it filled; memory stays flat meanwhile."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quietly_collector.spool.writer import MAX_BACKOFF_SECONDS
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import body, event, headers
from tests.spool.test_spool_recovery import stats

RATE_BATCHES = 40  # per second, of BATCH events: 4,000 events/s
BATCH = 100


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        line = next(ln for ln in fh if ln.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@dataclass
class SteadyClient:
    """Batches on a fixed schedule, whatever the answers (open loop)."""

    server: Running
    acked: list[str] = field(default_factory=list)
    refused: list[list[dict[str, Any]]] = field(default_factory=list)
    statuses: list[tuple[float, int]] = field(default_factory=list)  # (sent at, status)
    bad_retry_after: int = 0
    first_refusal: float = 0.0  # when the first 503 arrived
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def _send(self, events: list[dict[str, Any]]) -> None:
        sent = time.monotonic()
        async with self.server.session.post(self.server.url + "/v1/batch", data=body(events),
                                            headers=headers()) as resp:
            self.statuses.append((sent, resp.status))
            if resp.status == 503 and not self.first_refusal:
                self.first_refusal = time.monotonic()
            if resp.status == 200:
                self.acked += [e["event_id"] for e in events]
            else:
                assert resp.status == 503, await resp.text()
                self.bad_retry_after += not resp.headers.get("Retry-After", "").isdigit()
                self.refused.append(events)

    async def run(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        start_at = loop.time()
        n = 0
        while loop.time() - start_at < seconds:
            self._tasks.append(asyncio.create_task(self._send([event() for _ in range(BATCH)])))
            n += 1
            await asyncio.sleep(max(0.0, start_at + n / RATE_BATCHES - loop.time()))
        await asyncio.gather(*self._tasks)
        self._tasks.clear()


async def test_an_outage_under_load_fills_refuses_and_drains(
    tmp_path: Path, chdb_path: Path
) -> None:
    settings = make_settings(tmp_path, chdb_path, spool_max_bytes=3_000_000,
                             spool_project_share_pct=100,  # one project: the whole spool
                             dedup_memory_ids=5_000)
    server = await start(settings)
    collector = server.collector
    writer = collector.writer
    assert writer is not None
    try:
        client = SteadyClient(server)
        await client.run(1.0)  # warm up with storage up
        await server.settle()

        server.store.command("DETACH TABLE events")
        outage_started = time.monotonic()
        filling = asyncio.create_task(client.run(4.0))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(collector.recent) < 5_000:  # the duplicate filter reaches its cap
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        rss_at_cap = rss_bytes()
        await filling
        assert len(collector.recent) == 5_000
        outage = time.monotonic() - outage_started
        full_at = client.first_refusal
        assert full_at
        spooled = collector.spool.pending_rows
        fill_rate = spooled / (full_at - outage_started)
        # At the limit, every further request was refused, with Retry-After.
        assert {s for t, s in client.statuses if t > full_at} == {503}
        assert client.bad_retry_after == 0
        counters = (await stats(server))["counters"]
        refused_events = sum(len(b) for b in client.refused)
        assert counters["requests_refused_spool_full"] == len(client.refused) > 10
        assert counters["events_refused_spool_full"] == refused_events
        # The writer kept retrying (with backoff), and says why it cannot store.
        assert writer.stats.insert_failures >= 4
        report = await stats(server)
        assert report["storage_ok"] is False and "events" in report["last_storage_error"]
        grew = rss_bytes() - rss_at_cap
        assert grew < 64 << 20, f"memory grew by {grew >> 20} MiB while the spool filled"

        server.store.command("ATTACH TABLE events")
        back = time.monotonic()
        deadline = loop.time() + 30
        while not writer.stats.storage_ok:
            assert loop.time() < deadline
            await asyncio.sleep(0.005)
        noticed = time.monotonic()
        while collector.spool.pending_rows:
            assert loop.time() < deadline
            await asyncio.sleep(0.005)
        drain_rate = spooled / max(time.monotonic() - noticed, 1e-3)
        print(f"outage {outage:.1f}s: filled {spooled} rows at {fill_rate:.0f}/s,"
              f" noticed after {noticed - back:.2f}s, drained at {drain_rate:.0f}/s;"
              f" refused {refused_events} events in {len(client.refused)} requests;"
              f" RSS {grew / 2**20:+.1f} MiB from the filter's cap to the outage's end")
        assert noticed - back <= MAX_BACKOFF_SECONDS + 1.0
        assert drain_rate >= 2 * fill_rate

        # The clients resend what was refused; everything is stored once.
        for events in client.refused:
            status, result = await server.post("/v1/batch", body(events), headers())
            assert (status, result["accepted"]) == (200, len(events))
        await server.settle()
        stored = server.rows("SELECT count(), uniqExact(event_id) FROM events")
        assert stored == [(len(client.acked) + refused_events,) * 2]
    finally:
        await stop(server)


async def test_refused_batches_do_not_push_accepted_ids_out_of_the_duplicate_filter(
    tmp_path: Path, chdb_path: Path
) -> None:
    settings = make_settings(tmp_path, chdb_path, spool_max_bytes=40_000,
                             dedup_memory_ids=1_000)
    server = await start(settings)
    try:
        server.store.command("DETACH TABLE events")  # lookups in ClickHouse fail too
        first = [event() for _ in range(20)]
        status, _ = await server.post("/v1/batch", body(first), headers())
        assert status == 200
        spool = server.collector.spool
        while spool.pending_bytes < spool.max_bytes - 15_000:  # room for 20 events, not 100
            status, _ = await server.post("/v1/batch", body([event() for _ in range(5)]),
                                          headers())
            assert status == 200
        for _ in range(20):  # 2,000 refused ids, twice what the filter holds
            status, _ = await server.post("/v1/batch", body([event() for _ in range(100)]),
                                          headers())
            assert status == 503
        # A client that missed the first answer resends: it fits, and must be known.
        status, result = await server.post("/v1/batch", body(first), headers())
        assert (status, result["duplicates"]) == (200, 20), result
        server.store.command("ATTACH TABLE events")
        await server.settle()
        assert server.rows("SELECT count() = uniqExact(event_id) FROM events") == [(1,)]
    finally:
        await stop(server)


async def test_a_resend_older_than_the_filter_is_stored_once_even_while_storage_is_down(
    tmp_path: Path, chdb_path: Path
) -> None:
    # More is spooled than the duplicate filter holds: the first batch's ids leave it,
    # and ClickHouse, down (or behind, with them still in the spool), cannot vouch.
    settings = make_settings(tmp_path, chdb_path, dedup_memory_ids=100)
    server = await start(settings)
    try:
        server.store.command("DETACH TABLE events")
        first = [event() for _ in range(10)]
        status, _ = await server.post("/v1/batch", body(first), headers())
        assert status == 200
        for _ in range(20):
            status, _ = await server.post("/v1/batch", body([event() for _ in range(10)]),
                                          headers())
            assert status == 200
        status, result = await server.post("/v1/batch", body(first), headers())
        assert status == 200  # accepted (never lost), to be checked before it is stored
        server.store.command("ATTACH TABLE events")
        await server.settle()
        assert server.rows("SELECT count(), uniqExact(event_id) FROM events") == [(210, 210)]
        counters = (await stats(server))["counters"]
        assert counters["events_duplicate_on_store"] == result["accepted"] == 10
    finally:
        await stop(server)
