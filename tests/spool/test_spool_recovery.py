"""A damaged spool at start-up: intact batches are stored, damage is counted, the
collector serves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from quietly_collector.spool.wal import Record, Spool
from quietly_collector.spool.writer import line_event_id
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import ADMIN_TOKEN, body, event, headers
from tests.spool.test_durability import _stop_without_draining


async def stats(running: Running) -> dict[str, Any]:
    async with running.session.get(running.url + "/v1/stats",
                                   headers=headers(ADMIN_TOKEN)) as resp:
        assert resp.status == 200
        result: dict[str, Any] = await resp.json()
        return result


def _records(spool_dir: Path) -> list[Record]:
    spool = Spool(spool_dir, 1 << 30, 1 << 30)
    spool.open()
    try:
        return spool.read(spool.checkpoint, spool.write_pos, 1 << 30)
    finally:
        spool.close()


async def test_torn_flipped_and_cut_records_are_counted_and_the_rest_stored(
    tmp_path: Path, chdb_path: Path
) -> None:
    # The writer waits (long flush interval) so every batch stays in the spool; small
    # segments put three or four batches in each.
    first = make_settings(tmp_path, chdb_path, flush_interval_ms=600_000,
                          flush_rows=1_000_000, spool_segment_bytes=6_000)
    running = await start(first)
    batches = []
    for _ in range(12):
        events = [event() for _ in range(4)]
        status, _ = await running.post("/v1/batch", body(events), headers())
        assert status == 200
        batches.append({e["event_id"] for e in events})
    await _stop_without_draining(running)

    spool_dir = first.spool_path
    records = _records(spool_dir)
    assert len(records) == 12
    by_seg: dict[int, list[Record]] = {}
    for r in records:
        by_seg.setdefault(r.start.seg, []).append(r)
    segs = sorted(by_seg)
    assert len(segs) >= 3 and all(len(by_seg[s]) >= 2 for s in segs[:2]), by_seg.keys()

    def batch_of(r: Record) -> int:
        eid = str(line_event_id(r.payload.split(b"\n", 1)[0]))
        return next(i for i, ids in enumerate(batches) if eid in ids)

    def path(seg: int) -> Path:
        return spool_dir / f"{seg:012d}.wal"

    lost: set[int] = set()
    # 1. A flipped byte in the length field of a record in the middle of a segment.
    flipped = by_seg[segs[0]][1]
    data = bytearray(path(segs[0]).read_bytes())
    data[flipped.start.off + 2] ^= 0x10
    path(segs[0]).write_bytes(bytes(data))
    lost.add(batch_of(flipped))
    # 2. A segment cut in the middle of its second record (what follows it is gone).
    cut = by_seg[segs[1]][1]
    os.truncate(path(segs[1]), cut.start.off + 40)
    lost.update(batch_of(r) for r in by_seg[segs[1]][1:])
    # 3. The last record torn (a write cut short).
    torn = records[-1]
    os.truncate(path(torn.start.seg), torn.end.off - 3)
    lost.add(batch_of(torn))

    second = make_settings(tmp_path, chdb_path, database=first.database,
                           spool_segment_bytes=6_000)
    running = await start(second)
    try:
        await running.settle()
        stored = {str(r[0]) for r in running.rows("SELECT event_id FROM events")}
        intact = set().union(*(b for i, b in enumerate(batches) if i not in lost))
        assert stored == intact
        counters = (await stats(running))["counters"]
        assert counters["spool_damaged_records"] == 3
        assert counters["spool_torn_bytes"] > 0
        # And it serves: a new batch is acknowledged and stored.
        fresh = [event() for _ in range(3)]
        status, result = await running.post("/v1/batch", body(fresh), headers())
        assert (status, result["accepted"]) == (200, 3)
        await running.settle()
        assert running.rows("SELECT count() FROM events") == [(len(intact) + 3,)]
    finally:
        await stop(running)
