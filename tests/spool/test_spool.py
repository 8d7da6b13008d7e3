"""The spool keeps every intact record through torn writes and corruption."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from unittest import mock

import pytest

from quietly_collector.spool.wal import KIND_EVENTS, Pos, Spool, SpoolFull, SpoolUnavailable


def _spool(path: Path, max_bytes: int = 1 << 20, segment: int = 1 << 20) -> Spool:
    return Spool(path, max_bytes, segment)


async def _fill(spool: Spool, n: int) -> list[bytes]:
    payloads = [f'["row-{i}"]\n'.encode() for i in range(n)]
    for p in payloads:
        await spool.wait_durable(spool.append([(KIND_EVENTS, 1, p)]))
    return payloads


async def _with_sync(spool: Spool) -> asyncio.Task[None]:
    return asyncio.create_task(spool.sync_loop())


async def test_records_survive_reopen_and_commit_moves_the_checkpoint(tmp_path: Path) -> None:
    s = _spool(tmp_path)
    s.open()
    task = await _with_sync(s)
    payloads = await _fill(s, 10)
    records = s.read(s.checkpoint, s.write_pos, 4)
    assert [r.payload for r in records] == payloads[:4]
    s.commit(records[-1].end, 4)
    task.cancel()
    s.close()

    again = _spool(tmp_path)
    rec = again.open()
    assert (rec.records, rec.rows, rec.damaged) == (6, 6, 0)
    rest = again.read(again.checkpoint, again.write_pos, 100)
    assert [r.payload for r in rest] == payloads[4:]
    again.close()


async def test_a_torn_last_record_is_cut_and_the_rest_recovered(tmp_path: Path) -> None:
    s = _spool(tmp_path)
    s.open()
    task = await _with_sync(s)
    payloads = await _fill(s, 5)
    task.cancel()
    s.close()
    seg = next(tmp_path.glob("*.wal"))
    os.truncate(seg, seg.stat().st_size - 3)  # the last write was cut short

    again = _spool(tmp_path)
    rec = again.open()
    assert rec.records == 4 and rec.truncated_bytes > 0
    task = await _with_sync(again)
    more = await _fill(again, 1)  # new records follow the intact ones
    got = [r.payload for r in again.read(again.checkpoint, again.write_pos, 100)]
    assert got == payloads[:4] + more
    task.cancel()
    again.close()


async def test_a_corrupted_record_is_skipped_and_counted(tmp_path: Path) -> None:
    s = _spool(tmp_path)
    s.open()
    task = await _with_sync(s)
    payloads = await _fill(s, 5)
    second = s.read(s.checkpoint, s.write_pos, 2)[1]
    task.cancel()
    s.close()
    seg = next(tmp_path.glob("*.wal"))
    data = bytearray(seg.read_bytes())
    data[second.end.off - 2] ^= 0xFF  # flip a byte inside record 2's payload
    seg.write_bytes(bytes(data))

    again = _spool(tmp_path)
    rec = again.open()
    assert (rec.records, rec.damaged) == (4, 1)
    got = [r.payload for r in again.read(again.checkpoint, again.write_pos, 100) if r.kind]
    assert got == [payloads[0], *payloads[2:]]
    again.close()


async def test_concurrent_appends_share_fsyncs(tmp_path: Path) -> None:
    s = _spool(tmp_path)
    s.open()
    task = await _with_sync(s)
    real_fsync = os.fsync
    calls = 0

    def counting(fd: int) -> None:
        nonlocal calls
        calls += 1
        real_fsync(fd)

    with mock.patch("quietly_collector.spool.wal.os.fsync", counting):
        await asyncio.gather(*(
            s.wait_durable(s.append([(KIND_EVENTS, 1, b'["x"]\n')])) for _ in range(200)
        ))
    assert 1 <= calls < 20, calls  # group commit: far fewer fsyncs than appends
    task.cancel()
    s.close()


async def test_full_spool_and_failing_disk_refuse_instead_of_acknowledging(
    tmp_path: Path,
) -> None:
    s = _spool(tmp_path, max_bytes=200)
    s.open()
    task = await _with_sync(s)
    s.append([(KIND_EVENTS, 1, b"x" * 150)])
    before = s.write_pos
    with mock.patch("quietly_collector.spool.wal.os.write", side_effect=OSError(28, "No space")), \
            pytest.raises(SpoolUnavailable, match="No space"):
        s.append([(KIND_EVENTS, 1, b"y")])
    assert s.write_pos == before  # nothing half-written stays behind
    with pytest.raises(SpoolFull):
        s.append([(KIND_EVENTS, 1, b"x" * 150)])
    # At the limit even a record that would fit is refused, until the writer stores some.
    with pytest.raises(SpoolFull):
        s.append([(KIND_EVENTS, 1, b"y")])
    s.commit(s.write_pos, 1)
    s.append([(KIND_EVENTS, 1, b"y")])
    task.cancel()
    s.close()


async def test_segments_rotate_and_committed_ones_are_deleted(tmp_path: Path) -> None:
    s = _spool(tmp_path, segment=100)
    s.open()
    task = await _with_sync(s)
    await _fill(s, 30)
    assert len(list(tmp_path.glob("*.wal"))) > 3
    records = s.read(s.checkpoint, s.write_pos, 1000)
    assert len(records) == 30
    s.commit(records[-1].end, 30)
    assert len(list(tmp_path.glob("*.wal"))) == 1
    assert s.pending_bytes == 0 and s.pending_rows == 0
    assert s.checkpoint == Pos(records[-1].end.seg, records[-1].end.off)
    task.cancel()
    s.close()


async def test_a_flipped_length_field_loses_only_that_record(tmp_path: Path) -> None:
    s = _spool(tmp_path)
    s.open()
    task = await _with_sync(s)
    payloads = await _fill(s, 5)
    middle = s.read(s.checkpoint, s.write_pos, 3)[2]
    task.cancel()
    s.close()
    seg = next(tmp_path.glob("*.wal"))
    data = bytearray(seg.read_bytes())
    data[middle.start.off + 1] ^= 0x40  # the length now points far past the record
    seg.write_bytes(bytes(data))

    again = _spool(tmp_path)
    rec = again.open()
    # The records after it are found again, not lost with it.
    assert (rec.records, rec.damaged, rec.truncated_bytes) == (4, 1, 0)
    got = [r.payload for r in again.read(again.checkpoint, again.write_pos, 100) if r.kind]
    assert got == payloads[:2] + payloads[3:]
    task = await _with_sync(again)
    more = await _fill(again, 1)
    assert again.read(again.checkpoint, again.write_pos, 100)[-1].payload == more[0]
    task.cancel()
    again.close()


async def test_a_segment_cut_in_the_middle_keeps_every_other_segment(tmp_path: Path) -> None:
    s = _spool(tmp_path, segment=40)  # about three records per segment
    s.open()
    task = await _with_sync(s)
    payloads = await _fill(s, 12)
    records = s.read(s.checkpoint, s.write_pos, 100)
    task.cancel()
    s.close()
    segs = sorted(tmp_path.glob("*.wal"))
    assert len(segs) >= 3
    # The second segment loses its end in the middle of its second record.
    in_second = [r for r in records if r.start.seg == int(segs[1].stem)]
    cut = in_second[1].start.off + 5
    os.truncate(segs[1], cut)

    again = _spool(tmp_path, segment=40)
    rec = again.open()
    lost = {r.payload for r in in_second[1:]}
    assert rec.damaged == 1 and rec.records == len(payloads) - len(lost)
    got = [r.payload for r in again.read(again.checkpoint, again.write_pos, 100) if r.kind]
    assert got == [p for p in payloads if p not in lost]
    again.close()


async def test_a_spool_never_committed_is_read_from_its_first_segment(tmp_path: Path) -> None:
    # Storage down since the first start: no checkpoint yet, several segments.
    s = _spool(tmp_path, segment=40)
    s.open()
    task = await _with_sync(s)
    payloads = await _fill(s, 12)
    task.cancel()
    s.close()
    assert len(list(tmp_path.glob("*.wal"))) > 2

    again = _spool(tmp_path, segment=40)
    assert again.open().records == 12
    got = [r.payload for r in again.read(again.checkpoint, again.write_pos, 100)]
    assert got == payloads and again.pending_rows == 12
    again.close()


def test_large_records_in_the_documented_layout_read_back_and_damage_anywhere_is_caught(
    tmp_path: Path,
) -> None:
    # The layout of spoolfile.py's docstring, written by hand with one whole-payload
    # CRC, as earlier versions wrote it: a spool left by them must still replay.
    # Payloads span many of the pieces the CRC is computed in.
    import struct
    import zlib

    from quietly_collector.spool.segments import HEADER, KIND_DAMAGED, scan

    def record(rows: int, payload: bytes) -> bytes:
        want = zlib.crc32(payload, zlib.crc32(struct.pack("<BI", KIND_EVENTS, rows)))
        return HEADER.pack(len(payload), want, KIND_EVENTS, rows) + payload

    payloads = [os.urandom(size).hex().encode() for size in (10, 50_000, 2_048, 70_001)]
    path = tmp_path / "000000000000.wal"
    path.write_bytes(b"".join(record(i + 1, p) for i, p in enumerate(payloads)))
    got = list(scan(path, 0, 0, None, whole=True))
    assert [(r.kind, r.rows, r.payload) for r in got] == [
        (KIND_EVENTS, i + 1, p) for i, p in enumerate(payloads)
    ]
    # One byte flipped deep inside the second payload (past its first pieces).
    data = bytearray(path.read_bytes())
    data[got[1].start.off + HEADER.size + 61_234] ^= 0x01
    path.write_bytes(bytes(data))
    got = list(scan(path, 0, 0, None, whole=True))
    assert [r.kind for r in got] == [KIND_EVENTS, KIND_DAMAGED, KIND_EVENTS, KIND_EVENTS]
    assert [r.payload for r in got if r.kind == KIND_EVENTS] == [
        payloads[0], payloads[2], payloads[3]
    ]
