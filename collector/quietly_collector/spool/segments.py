"""Spool records on disk: encoding, and reading them back through damage.

Record layout: ``<u32 payload length><u32 crc32><u8 kind><u32 rows><payload>``,
where the CRC covers kind, rows and payload. Reading streams one record at a
time (through a 1 MiB read buffer), so memory stays at one record however large a
segment is. A record that fails its checks is skipped by searching forward for the
next intact one: a flipped bit in a length field would otherwise hide every record
after it.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

HEADER = struct.Struct("<IIBI")
KIND_EVENTS = 1
KIND_REJECTED = 2
# A deletion_request, applied by the writer after every record before it.
KIND_DELETIONS = 3
# Events accepted without the duplicate filter's word (older than it covers): the
# writer drops those already stored, or earlier in the spool, before inserting.
KIND_EVENTS_CHECK = 4
KINDS = (KIND_EVENTS, KIND_REJECTED, KIND_DELETIONS, KIND_EVENTS_CHECK)
# A damaged region, yielded so that a reader's cursor moves past it.
KIND_DAMAGED = 0
MAX_RECORD = 1 << 30
# Payloads are JSON text, which never holds these bytes: a kind byte is a header.
_KIND_BYTE = re.compile(b"[\x01-\x04]")
_KIND_AT = 8  # offset of the kind byte in a header


class Pos(NamedTuple):
    seg: int
    off: int


@dataclass
class Record:
    start: Pos
    end: Pos
    kind: int
    rows: int
    payload: bytes


@dataclass
class Recovery:
    records: int = 0
    rows: int = 0
    damaged: int = 0
    truncated_bytes: int = 0


# zlib.crc32 releases the GIL for buffers over 5 KiB. Under load the event loop holds
# the GIL, so every release costs the releasing thread up to the switch interval (5 ms)
# to get it back: reading a 50,000-row span (500 records) took 7 ms alone and 1.3-1.5 s
# beside a busy Python thread (34-39 ms in pieces), and under full load the writer spent
# a third of its time there. In pieces under that size the GIL is kept.
_CRC_PIECE = 4096
# Spool reads: one read syscall (a GIL release, as above) per 1 MiB, not per record;
# 4 MiB held the GIL longer between releases (half-load ack p99 29-52 against 22-29 ms).
_READ_BUFFER = 1 << 20


def crc(kind: int, rows: int, payload: bytes | memoryview) -> int:
    value = zlib.crc32(struct.pack("<BI", kind, rows))
    if len(payload) <= _CRC_PIECE:
        return zlib.crc32(payload, value) & 0xFFFFFFFF
    view = memoryview(payload)
    for i in range(0, len(view), _CRC_PIECE):
        value = zlib.crc32(view[i:i + _CRC_PIECE], value)
    return value & 0xFFFFFFFF


def encode_record(kind: int, rows: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), crc(kind, rows, payload), kind, rows) + payload


def _intact_at(data: bytes, off: int) -> int:
    """End of the intact record starting at ``off`` in ``data``, or -1."""
    if off + HEADER.size > len(data):
        return -1
    length, want, kind, rows = HEADER.unpack_from(data, off)
    end = off + HEADER.size + length
    if kind not in KINDS or end > len(data):
        return -1
    return end if crc(kind, rows, data[off + HEADER.size : end]) == want else -1


def _resync(fh: BinaryIO, off: int, limit: int) -> int:
    """Offset of the first intact record after ``off`` (before ``limit``), or -1."""
    fh.seek(off)
    data = fh.read(limit - off)  # only after damage: bounded by the segment size
    for m in _KIND_BYTE.finditer(data, _KIND_AT + 1):
        start = m.start() - _KIND_AT
        if _intact_at(data, start) > 0:
            return off + start
    return -1


def scan(path: Path, seg: int, start: int, limit: int | None, whole: bool) -> Iterator[Record]:
    """Records of segment ``seg`` from ``start`` up to ``limit`` (None: the file's end).

    A damaged record is yielded as one ``KIND_DAMAGED`` record spanning up to the
    next intact one. Damage with nothing intact after it ends the scan there (a
    torn tail) unless ``whole`` says the range is complete (nothing is still being
    written to it), in which case it is yielded as damaged up to ``limit``.
    """
    try:
        fh = open(path, "rb", buffering=_READ_BUFFER)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with fh:
        size = fh.seek(0, 2)
        end_of_range = size if limit is None else min(limit, size)
        off = start
        fh.seek(off)
        while off + HEADER.size <= end_of_range:
            head = fh.read(HEADER.size)
            if len(head) < HEADER.size:
                return  # the file shrank under us: nothing more to read
            length, want, kind, rows = HEADER.unpack(head)
            end = off + HEADER.size + length
            payload = b""
            ok = kind in KINDS and length <= MAX_RECORD and end <= end_of_range
            if ok:
                payload = fh.read(length)
                ok = crc(kind, rows, payload) == want
            if ok:
                yield Record(Pos(seg, off), Pos(seg, end), kind, rows, payload)
                off = end
                continue
            nxt = _resync(fh, off, end_of_range)
            if nxt < 0:
                if whole:
                    yield Record(Pos(seg, off), Pos(seg, end_of_range), KIND_DAMAGED, 0, b"")
                return
            yield Record(Pos(seg, off), Pos(seg, nxt), KIND_DAMAGED, 0, b"")
            off = nxt
            fh.seek(off)
        if whole and off < end_of_range:
            # A few bytes, too short for a header, in a range that will not grow.
            yield Record(Pos(seg, off), Pos(seg, end_of_range), KIND_DAMAGED, 0, b"")


def write_atomic(path: Path, text: str) -> None:
    """Replace a small file whole: a crash leaves the old or the new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_ints(path: Path, n: int) -> tuple[int, ...] | None:
    try:
        values = tuple(int(x) for x in path.read_text().split())
    except (FileNotFoundError, ValueError):
        return None
    return values if len(values) == n else None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
