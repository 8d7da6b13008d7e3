"""Past what the exact duplicate filter holds, intake must not turn into one ClickHouse
lookup per request: the approximate filter vouches for new ids, lookups that remain
are shared by the requests waiting, and resends are still caught."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from quietly_collector.pipeline.dedup import RecentIds
from quietly_collector.pipeline.seenfilter import GENERATIONS, SeenFilter
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import body, event, headers, now
from tests.spool.test_spool_recovery import stats


def _ids(rng: random.Random, n: int) -> list[int]:
    return [rng.getrandbits(128) for _ in range(n)]


def test_the_filter_never_forgets_an_id_it_still_covers() -> None:
    rng = random.Random(1)
    seen = SeenFilter(200_000, horizon=0.0)
    per_generation = seen.capacity
    batches = [_ids(rng, per_generation // 4) for _ in range(4 * (GENERATIONS + 2))]
    for b in batches:
        seen.add_many(b)
    assert seen.horizon > 0  # the oldest generations were let go
    kept = batches[-4 * (GENERATIONS - 1):]  # at least GENERATIONS - 1 full generations
    assert all(seen.might_contain(k) for b in kept for k in b)
    forgotten = sum(not seen.might_contain(k) for k in batches[0])
    assert forgotten > 0.95 * len(batches[0])


def test_exact_memory_keeps_exactly_the_last_ids_and_moves_its_horizon() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    recent = RecentIds(250, start, timedelta(minutes=5))
    batches = [list(range(b * 100, b * 100 + 100)) for b in range(4)]
    for n, keys in enumerate(batches[:3]):
        recent.add_keys(keys, start.timestamp() + n + 1)
    # 300 ids in, 250 kept: the first 50 of the first batch are forgotten, and the
    # horizon moves to that batch's time (all ids since then are still held).
    assert len(recent) == 250
    assert recent.ids == set(range(50, 300))
    assert recent.horizon == start + timedelta(seconds=1)
    # Known ids and repeats within a batch are added once; the rest push out the oldest.
    recent.add_keys([120, 7, 7, 301, 301, 302], start.timestamp() + 10)
    assert len(recent) == 250
    assert recent.ids == set(range(53, 300)) | {7, 301, 302}
    recent.add_keys(batches[3], start.timestamp() + 11)  # 98 new: 301 and 302 are known
    assert recent.ids == set(range(151, 300)) | {7} | set(batches[3])
    assert recent.horizon == start + timedelta(seconds=2)


def test_false_positives_stay_under_half_a_percent_when_full() -> None:
    rng = random.Random(2)
    seen = SeenFilter(200_000, horizon=0.0)
    for _ in range(GENERATIONS):
        seen.add_many(_ids(rng, seen.capacity))
    strangers = _ids(rng, 50_000)
    rate = sum(seen.might_contain(k) for k in strangers) / len(strangers)
    print(f"false positives with {GENERATIONS} full generations: {rate:.3%}")
    assert rate < 0.005


def test_a_filter_turned_off_vouches_for_nothing() -> None:
    seen = SeenFilter(0, horizon=0.0)
    seen.add_many([1, 2, 3])
    assert seen.might_contain(4) and seen.might_contain(1)


async def _post(server: Running, events: list[dict[str, Any]]) -> dict[str, Any]:
    status, result = await server.post("/v1/batch", body(events), headers())
    assert status == 200 and not result["rejected"], result
    return dict(result)


async def _overflow_exact_memory(server: Running) -> list[dict[str, Any]]:
    first = [event() for _ in range(10)]
    await _post(server, first)
    for _ in range(15):  # 150 more ids than the 100 held exactly
        await _post(server, [event() for _ in range(10)])
    await server.settle()
    return first


async def test_new_events_past_the_exact_memory_need_no_lookup_and_resends_are_caught(
    tmp_path: Path, chdb_path: Path
) -> None:
    server = await start(make_settings(tmp_path, chdb_path, dedup_memory_ids=100))
    try:
        first = await _overflow_exact_memory(server)
        before = (await stats(server))["counters"]
        fresh = [event(ts=now() - timedelta(minutes=2)) for _ in range(50)]
        assert (await _post(server, fresh))["accepted"] == 50
        after = (await stats(server))["counters"]
        assert after.get("dedup_lookup_ids", 0) == before.get("dedup_lookup_ids", 0)
        # The first batch left the exact memory: the filter may have seen it, so
        # ClickHouse is asked, and says so.
        result = await _post(server, first)
        assert (result["accepted"], result["duplicates"]) == (0, 10)
        await server.settle()
        assert server.rows("SELECT count(), uniqExact(event_id) FROM events") == [(210, 210)]
    finally:
        await stop(server)


async def test_without_the_filter_the_same_events_are_looked_up(
    tmp_path: Path, chdb_path: Path
) -> None:
    server = await start(make_settings(tmp_path, chdb_path, dedup_memory_ids=100,
                                       dedup_filter_mb=0))
    try:
        first = await _overflow_exact_memory(server)
        before = (await stats(server))["counters"]
        await _post(server, [event(ts=now() - timedelta(minutes=2)) for _ in range(50)])
        after = (await stats(server))["counters"]
        assert after["dedup_lookup_ids"] - before.get("dedup_lookup_ids", 0) == 50
        assert (await _post(server, first))["duplicates"] == 10
    finally:
        await stop(server)


async def test_concurrent_lookups_share_queries_and_each_batch_gets_its_own_answer(
    tmp_path: Path, chdb_path: Path
) -> None:
    server = await start(make_settings(tmp_path, chdb_path, dedup_memory_ids=100))
    try:
        # Stamped days ago: older than any memory covers, so always looked up.
        def old_batch() -> list[dict[str, Any]]:
            return [event(ts=now() - timedelta(days=3)) for _ in range(10)]

        batches = [old_batch() for _ in range(30)]
        results = await asyncio.gather(*(_post(server, b) for b in batches))
        assert all(r["accepted"] == 10 for r in results)
        await server.settle()
        counters = (await stats(server))["counters"]
        assert counters["dedup_lookup_ids"] == 300
        assert counters["dedup_lookup_queries"] < 30
        # Half resent (most of them out of the exact memory), half new, all at once:
        # each answer counts its own duplicates.
        mixed = [b[:5] + old_batch()[:5] for b in batches]
        results = await asyncio.gather(*(_post(server, b) for b in mixed))
        assert [(r["accepted"], r["duplicates"]) for r in results] == [(5, 5)] * 30
        await server.settle()
        assert server.rows("SELECT count(), uniqExact(event_id) FROM events") == [(450, 450)]
    finally:
        await stop(server)
