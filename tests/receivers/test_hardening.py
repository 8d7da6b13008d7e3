"""Input limits at the edge: exactly at each limit is accepted, one byte over is refused.

Covers what test_ingest_http.py does not: the exact boundaries of ``max_event_bytes``,
``max_batch_bytes`` (with and without a Content-Length), ``max_decompressed_bytes``
and ``max_batch_events``, and a real gzip bomb (1 GiB of zeros) measured for memory.
Malformed bodies are in test_malformed_input.py.
"""

from __future__ import annotations

import gzip
import json
import struct
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

from tests.conftest import Running
from tests.helpers import batch, event, headers

# A loose sanity bound, not a performance target (those live in bench/).
QUICK_S = 2.0


def compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def sized_event(size: int) -> dict[str, Any]:
    """A valid event whose JSON is exactly ``size`` bytes, padded by an undeclared
    property (dropped at ingest, so the event is stored if it is within the limit)."""
    ev = event(props={"feature": "debugging", "padding": ""})
    ev["props"]["padding"] = "x" * (size - len(compact(ev)))
    assert len(compact(ev)) == size
    return ev


def padded_body(size: int, events: list[dict[str, Any]]) -> bytes:
    """A batch padded with trailing whitespace (valid JSON) to exactly ``size`` bytes."""
    data = compact(batch(events))
    assert len(data) <= size
    return data + b" " * (size - len(data))


async def timed_post(server: Running, data: bytes, hdrs: dict[str, str]) -> tuple[int, Any]:
    started = time.perf_counter()
    status, result = await server.post("/v1/batch", data, hdrs)
    assert time.perf_counter() - started < QUICK_S, "answered too slowly"
    return status, result


async def stored_ids(server: Running) -> set[str]:
    await server.settle()
    return {str(r[0]) for r in server.rows("SELECT event_id FROM events")}


async def test_event_exactly_at_the_limit_is_stored_one_byte_over_is_rejected_alone(
    server: Running,
) -> None:
    limit = server.collector.settings.max_event_bytes
    before, at_limit, over, after = event(), sized_event(limit), sized_event(limit + 1), event()
    # Compact JSON: an event's size is the bytes of its object in the batch, as sent.
    status, result = await timed_post(
        server, compact(batch([before, at_limit, over, after])), headers()
    )
    assert status == 200
    assert result["accepted"] == 3
    assert result["rejected"] == [{
        "index": 2, "event_id": over["event_id"],
        "reason": f"event is {limit + 1} bytes, over the {limit}-byte limit at $.events[2]",
    }]
    assert await stored_ids(server) == {
        before["event_id"], at_limit["event_id"], after["event_id"]
    }


async def test_batch_exactly_at_the_byte_limit_is_accepted_one_byte_over_is_413(
    server: Running,
) -> None:
    limit = server.collector.settings.max_batch_bytes
    ev = event()
    status, result = await timed_post(server, padded_body(limit, [ev]), headers())
    assert (status, result["accepted"]) == (200, 1)
    status, result = await timed_post(server, padded_body(limit + 1, [event()]), headers())
    assert status == 413
    assert result["error"] == f"body is {limit + 1} bytes, over the {limit}-byte limit"


async def _chunks(data: bytes, size: int = 64 << 10) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_batch_limit_holds_without_content_length(server: Running) -> None:
    # Chunked transfer: the size is only known while reading, which stops past the limit.
    limit = server.collector.settings.max_batch_bytes
    for size, want in ((limit, 200), (limit + 1, 413)):
        body = padded_body(size, [event()])
        async with server.session.post(
            server.url + "/v1/batch", data=_chunks(body), headers=headers()
        ) as resp:
            assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
            result = await resp.json()
        assert resp.status == want, result
        if want == 413:
            assert result["error"] == f"body is over the {limit}-byte limit"
        else:
            assert result["accepted"] == 1


async def test_decompressed_body_exactly_at_the_limit_is_accepted_one_byte_over_is_413(
    server: Running,
) -> None:
    s = server.collector.settings
    limit = s.max_decompressed_bytes
    assert limit > s.max_batch_bytes  # so that only inflation can reach it
    ev = event()
    at_limit = gzip.compress(padded_body(limit, [ev]))
    status, result = await timed_post(server, at_limit, headers(gz=True))
    assert (status, result["accepted"]) == (200, 1)
    over = gzip.compress(padded_body(limit + 1, [event()]))
    status, result = await timed_post(server, over, headers(gz=True))
    assert status == 413
    assert result["error"] == f"decompressed body is over the {limit}-byte limit"
    assert await stored_ids(server) == {ev["event_id"]}


async def test_events_per_batch_exactly_at_the_limit_are_accepted_one_more_is_413(
    server: Running,
) -> None:
    limit = server.collector.settings.max_batch_events
    status, result = await timed_post(
        server, compact(batch([event() for _ in range(limit)])), headers()
    )
    assert (status, result["accepted"], result["rejected"]) == (200, limit, [])
    status, result = await timed_post(
        server, compact(batch([event() for _ in range(limit + 1)])), headers()
    )
    assert status == 413
    assert result["error"] == f"batch has {limit + 1} events, over the {limit}-event limit"
    await server.settle()
    assert server.rows("SELECT count() FROM events") == [(limit,)]


def zeros_gzip(mib: int) -> bytes:
    """A valid gzip file of ``mib`` MiB of zeros, built without compressing them all.

    After a full flush the compressor's state no longer depends on what came before,
    so every MiB of zeros compresses to the same deflate block: compress one, repeat
    it, and finish with the CRC and size of the whole. 1 GiB takes well under a second
    this way (compressing it for real takes seconds) and never holds 1 GiB.
    """
    zeros = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, (mib << 20) & 0xFFFFFFFF)
    return header + block * mib + c.flush() + trailer


def test_zeros_gzip_is_what_it_claims() -> None:
    assert gzip.decompress(zeros_gzip(3)) == bytes(3 << 20)


def _memory_kib() -> dict[str, int]:
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}


async def test_gzip_bomb_is_refused_without_inflating_it(server: Running) -> None:
    s = server.collector.settings
    bomb = zeros_gzip(1024)  # 1 GiB of zeros
    assert len(bomb) < s.max_batch_bytes  # it gets past the as-sent limit: inflation decides
    await timed_post(server, compact(batch([event()])), headers())  # warm up
    # The collector runs in this process: reset the peak-RSS mark (VmHWM) and read it
    # after the request, so the peak during inflation is what is measured.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _memory_kib()["VmRSS"]
    status, result = await timed_post(server, bomb, headers(gz=True))
    peak = _memory_kib()["VmHWM"]
    assert status == 413
    assert result["error"] == f"decompressed body is over the {s.max_decompressed_bytes}-byte limit"
    # Inflation stops one byte past the limit: the peak stays within twice the limit
    # (the inflated buffer, the body as sent and the allocator's slack), not 1 GiB.
    assert (peak - before) * 1024 < 2 * s.max_decompressed_bytes, (before, peak)
