"""Write-ahead spool: an acknowledged batch is on disk, fsynced, before the 200.

Records are appended to numbered segment files. Many requests share one fsync
(group commit): each appends, then waits until the sync loop has flushed a
position at or past its record. A checkpoint file records how far the writer
has stored into ClickHouse; segments wholly before it are deleted.

Record layout: ``<u32 payload length><u32 crc32><u8 kind><u32 rows><payload>``,
where the CRC covers kind, rows and payload. A torn or corrupt tail is cut off
at start-up and counted; intact records before it are kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("quietly.spool")

HEADER = struct.Struct("<IIBI")
KIND_EVENTS = 1
KIND_REJECTED = 2
# A deletion_request, applied by the writer after every record before it.
KIND_DELETIONS = 3
KINDS = (KIND_EVENTS, KIND_REJECTED, KIND_DELETIONS)
_MAX_RECORD = 1 << 30


class SpoolFull(Exception):
    """The spool holds its configured maximum; the caller should answer 503."""


class SpoolUnavailable(Exception):
    """The disk refused a write or an fsync; nothing was acknowledged."""


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


def _crc(kind: int, rows: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(struct.pack("<BI", kind, rows))) & 0xFFFFFFFF


def encode_record(kind: int, rows: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), _crc(kind, rows, payload), kind, rows) + payload


@dataclass
class Spool:
    directory: Path
    max_bytes: int
    segment_bytes: int
    _fd: int = -1
    _seg: int = 0
    _sizes: dict[int, int] = field(default_factory=dict)
    _checkpoint: Pos = field(default_factory=lambda: Pos(0, 0))
    _retired: list[int] = field(default_factory=list)
    _waiters: deque[tuple[Pos, asyncio.Future[None]]] = field(default_factory=deque)
    _dirty: asyncio.Event | None = None
    _broken: OSError | None = None
    pending_rows: int = 0
    recovery: Recovery = field(default_factory=Recovery)
    # Set whenever a record is appended; the writer waits on it.
    appended: asyncio.Event | None = None

    # -- start-up -----------------------------------------------------------
    def open(self) -> Recovery:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._checkpoint = self._read_checkpoint()
        segs = self._segments()
        for seg in segs:
            if seg < self._checkpoint.seg:
                self._path(seg).unlink(missing_ok=True)
        segs = [s for s in segs if s >= self._checkpoint.seg]
        rec = Recovery()
        for seg in segs:
            start = self._checkpoint.off if seg == self._checkpoint.seg else 0
            good_end = start
            for r in self._scan(seg, start, rec):
                rec.records += 1
                rec.rows += r.rows
                good_end = r.end.off
            size = self._path(seg).stat().st_size
            if size > good_end and seg == segs[-1]:
                # A torn last write: cut it so new records follow intact ones.
                rec.truncated_bytes += size - good_end
                os.truncate(self._path(seg), good_end)
                size = good_end
            self._sizes[seg] = size
        self._seg = segs[-1] if segs else max(self._checkpoint.seg, 1)
        self._sizes.setdefault(self._seg, 0)
        if self._checkpoint.seg == 0:
            self._checkpoint = Pos(self._seg, 0)
        self._fd = os.open(self._path(self._seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.pending_rows = rec.rows
        self.recovery = rec
        self._dirty = asyncio.Event()
        self.appended = asyncio.Event()
        if rec.damaged or rec.truncated_bytes:
            log.warning(
                "spool recovery: %d damaged records skipped, %d torn bytes cut",
                rec.damaged,
                rec.truncated_bytes,
            )
        return rec

    def _segments(self) -> list[int]:
        out = []
        for p in self.directory.glob("*.wal"):
            try:
                out.append(int(p.stem))
            except ValueError:
                continue
        return sorted(out)

    def _path(self, seg: int) -> Path:
        return self.directory / f"{seg:012d}.wal"

    def _read_checkpoint(self) -> Pos:
        try:
            seg, off = (self.directory / "checkpoint").read_text().split()
            return Pos(int(seg), int(off))
        except (FileNotFoundError, ValueError):
            return Pos(0, 0)

    def _scan(self, seg: int, start: int, rec: Recovery | None) -> Iterator[Record]:
        """Yield intact records of a segment from ``start``; skip corrupt ones."""
        with open(self._path(seg), "rb") as fh:
            data = fh.read()
        off = start
        while off + HEADER.size <= len(data):
            length, crc, kind, rows = HEADER.unpack_from(data, off)
            end = off + HEADER.size + length
            if length > _MAX_RECORD or end > len(data):
                break  # torn tail: the length points past the end
            payload = data[off + HEADER.size : end]
            if _crc(kind, rows, payload) != crc or kind not in KINDS:
                if rec is not None:
                    rec.damaged += 1
                off = end
                continue
            yield Record(Pos(seg, off), Pos(seg, end), kind, rows, payload)
            off = end

    # -- appending ----------------------------------------------------------
    @property
    def write_pos(self) -> Pos:
        return Pos(self._seg, self._sizes[self._seg])

    @property
    def pending_bytes(self) -> int:
        ck = self._checkpoint
        return sum(size for seg, size in self._sizes.items() if seg >= ck.seg) - ck.off

    @property
    def full(self) -> bool:
        return self.pending_bytes >= self.max_bytes

    def append(self, records: list[tuple[int, int, bytes]]) -> Pos:
        """Write records (kind, rows, payload) at the end; durable once ``wait_durable``."""
        if self._broken is not None:
            raise SpoolUnavailable(f"spool disk failed: {self._broken}")
        blob = b"".join(encode_record(k, r, p) for k, r, p in records)
        if self.pending_bytes + len(blob) > self.max_bytes:
            raise SpoolFull(f"spool holds {self.pending_bytes} of {self.max_bytes} bytes")
        if self._sizes[self._seg] >= self.segment_bytes:
            self._rotate()
        before = self._sizes[self._seg]
        try:
            view = memoryview(blob)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            # Nothing partial may stay behind a record we later acknowledge.
            try:
                os.truncate(self._path(self._seg), before)
            except OSError:
                self._broken = exc
            raise SpoolUnavailable(f"spool write failed: {exc}") from exc
        self._sizes[self._seg] = before + len(blob)
        self.pending_rows += sum(r for _, r, _ in records)
        assert self._dirty is not None and self.appended is not None
        self._dirty.set()
        self.appended.set()
        return self.write_pos

    def _rotate(self) -> None:
        self._retired.append(self._fd)
        self._seg += 1
        self._sizes[self._seg] = 0
        self._fd = os.open(self._path(self._seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # The new file's directory entry must survive a crash too.
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    async def wait_durable(self, pos: Pos) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((pos, fut))
        await fut

    async def sync_loop(self) -> None:
        """Group commit: one fsync acknowledges every record written before it."""
        assert self._dirty is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            target = self.write_pos
            fds, self._retired = [*self._retired, self._fd], []
            try:
                for fd in fds:
                    await loop.run_in_executor(None, os.fsync, fd)
            except OSError as exc:
                # After a failed fsync the page cache state is unknown: stop acknowledging.
                self._broken = exc
                log.error("spool fsync failed, refusing new batches: %s", exc)
                while self._waiters:
                    _, fut = self._waiters.popleft()
                    if not fut.done():
                        fut.set_exception(SpoolUnavailable(f"spool fsync failed: {exc}"))
                continue
            for fd in fds[:-1]:
                os.close(fd)
            while self._waiters and self._waiters[0][0] <= target:
                _, fut = self._waiters.popleft()
                if not fut.done():
                    fut.set_result(None)

    # -- reading and committing (writer side) -------------------------------
    @property
    def checkpoint(self) -> Pos:
        return self._checkpoint

    def read(self, start: Pos, end: Pos, max_rows: int) -> list[Record]:
        """Records from ``start`` up to ``end`` (a write position seen earlier), at most
        ``max_rows`` rows (but at least one record). Safe to call from a thread."""
        out: list[Record] = []
        rows = 0
        seg, off = start
        while (seg, off) < end and rows < max_rows:
            limit = end.off if seg == end.seg else None
            advanced = False
            for r in self._scan_range(seg, off, limit):
                out.append(r)
                rows += r.rows
                seg, off = r.end
                advanced = True
                if rows >= max_rows:
                    return out
            if seg < end.seg:
                seg, off = seg + 1, 0
            elif not advanced:
                break
        return out

    def _scan_range(self, seg: int, start: int, limit: int | None) -> Iterator[Record]:
        path = self._path(seg)
        if not path.exists():
            return
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read() if limit is None else fh.read(limit - start)
        off = 0
        while off + HEADER.size <= len(data):
            length, crc, kind, rows = HEADER.unpack_from(data, off)
            end = off + HEADER.size + length
            if end > len(data):
                break
            payload = data[off + HEADER.size : end]
            if _crc(kind, rows, payload) == crc:
                yield Record(Pos(seg, start + off), Pos(seg, start + end), kind, rows, payload)
            else:
                # Skipped like at recovery; an empty record keeps the cursor moving.
                log.warning("spool: corrupt record at %s:%d skipped", seg, start + off)
                yield Record(Pos(seg, start + off), Pos(seg, start + end), 0, 0, b"")
            off = end

    def commit(self, pos: Pos, rows: int) -> None:
        """Everything before ``pos`` is in ClickHouse: move the checkpoint, drop old segments."""
        tmp = self.directory / "checkpoint.tmp"
        tmp.write_text(f"{pos.seg} {pos.off}\n")
        os.replace(tmp, self.directory / "checkpoint")
        self._checkpoint = pos
        self.pending_rows = max(0, self.pending_rows - rows)
        for seg in [s for s in self._sizes if s < pos.seg]:
            del self._sizes[seg]
            self._path(seg).unlink(missing_ok=True)

    def close(self) -> None:
        for fd in [*self._retired, self._fd]:
            if fd >= 0:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        self._retired = []
        self._fd = -1
