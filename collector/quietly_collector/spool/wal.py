"""Write-ahead spool: an acknowledged batch is on disk, fsynced, before the 200.

Records are appended to numbered segment files (layout in spoolfile.py). Many
requests share one fsync (group commit): each appends, then waits until the
sync loop has flushed a position at or past its record. A checkpoint file
records how far the writer has stored into ClickHouse; segments wholly before
it are deleted. A torn or corrupt tail is cut off at start-up and counted;
damaged records in the middle are skipped and counted; intact ones are kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from quietly_collector.spool.segments import (
    KIND_DAMAGED,
    KIND_DELETIONS,
    KIND_EVENTS,
    KIND_EVENTS_CHECK,
    KIND_REJECTED,
    Pos,
    Record,
    Recovery,
    encode_record,
    fsync_dir,
    read_ints,
    scan,
    write_atomic,
)

log = logging.getLogger("quietly.spool")

__all__ = [
    "KIND_DAMAGED", "KIND_DELETIONS", "KIND_EVENTS", "KIND_EVENTS_CHECK", "KIND_REJECTED", "Pos",
    "Record", "Recovery", "Spool", "SpoolFull", "SpoolUnavailable", "encode_record",
]


class SpoolFull(Exception):
    """The spool holds its configured maximum; the caller should answer 503."""


class SpoolUnavailable(Exception):
    """The disk refused a write or an fsync; nothing was acknowledged."""


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
    # Set by the first batch that did not fit, until the writer stores something: at the
    # limit every batch is refused, not just those a little larger than the room left.
    _at_limit: bool = False
    pending_rows: int = 0
    recovery: Recovery = field(default_factory=Recovery)
    identity: str = ""
    # The span the writer was storing when the last process stopped (see begin()).
    inflight: tuple[Pos, Pos] | None = None
    # Set whenever a record is appended; the writer waits on it.
    appended: asyncio.Event | None = None

    # -- start-up -----------------------------------------------------------
    def open(self) -> Recovery:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.identity = self._read_identity()
        self._checkpoint = self._read_checkpoint()
        self.inflight = self._read_inflight()
        segs = self._segments()
        for seg in segs:
            if seg < self._checkpoint.seg:
                self._path(seg).unlink(missing_ok=True)
        segs = [s for s in segs if s >= self._checkpoint.seg]
        rec = Recovery()
        for seg in segs:
            start = self._checkpoint.off if seg == self._checkpoint.seg else 0
            good_end = start
            # Earlier segments are complete: damage at their end is skipped, not cut.
            for r in scan(self._path(seg), seg, start, None, whole=seg != segs[-1]):
                if r.kind == KIND_DAMAGED:
                    rec.damaged += 1
                else:
                    rec.records += 1
                    rec.rows += r.rows
                good_end = r.end.off
            size = self._path(seg).stat().st_size
            if size > good_end and seg == segs[-1]:
                # A torn last write: cut it so new records follow intact ones.
                rec.damaged += 1
                rec.truncated_bytes += size - good_end
                os.truncate(self._path(seg), good_end)
                size = good_end
            self._sizes[seg] = size
        self._seg = segs[-1] if segs else max(self._checkpoint.seg, 1)
        self._sizes.setdefault(self._seg, 0)
        if self._checkpoint.seg == 0:
            # Never committed: everything from the first segment on is still to store.
            self._checkpoint = Pos(segs[0] if segs else self._seg, 0)
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

    def _read_identity(self) -> str:
        """A name for this spool, unique across spools: part of every insert's
        deduplication token, so two spools (a replaced disk, a second collector)
        never share tokens on one ClickHouse."""
        path = self.directory / "id"
        value = path.read_text().strip() if path.exists() else ""
        if not value:
            value = uuid.uuid4().hex
            write_atomic(path, value + "\n")
        return value

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
        seg_off = read_ints(self.directory / "checkpoint", 2)
        return Pos(*seg_off) if seg_off else Pos(0, 0)

    def _read_inflight(self) -> tuple[Pos, Pos] | None:
        span = read_ints(self.directory / "inflight", 4)
        return (Pos(*span[:2]), Pos(*span[2:])) if span else None

    # -- appending ----------------------------------------------------------
    @property
    def write_pos(self) -> Pos:
        return Pos(self._seg, self._sizes[self._seg])

    @property
    def pending_bytes(self) -> int:
        ck = self._checkpoint
        return sum(size for seg, size in self._sizes.items() if seg >= ck.seg) - ck.off

    @property
    def broken(self) -> bool:
        """An fsync failed: nothing is acknowledged until a restart."""
        return self._broken is not None

    @property
    def full(self) -> bool:
        return self._at_limit or self.pending_bytes >= self.max_bytes

    def append(self, records: list[tuple[int, int, bytes]]) -> Pos:
        """Write records (kind, rows, payload) at the end; durable once ``wait_durable``."""
        if self._broken is not None:
            raise SpoolUnavailable(f"spool disk failed: {self._broken}")
        blob = b"".join(encode_record(k, r, p) for k, r, p in records)
        if self._at_limit or self.pending_bytes + len(blob) > self.max_bytes:
            self._at_limit = True
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
        fsync_dir(self.directory)  # the new file's entry must survive a crash too

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
        for r in self.records(start, end):
            out.append(r)
            rows += r.rows
            if rows >= max_rows:
                break
        return out

    def records(self, start: Pos, end: Pos) -> Iterator[Record]:
        """Stream the records from ``start`` up to ``end``; damaged ones come as
        ``KIND_DAMAGED`` (no rows) so a cursor moves past them."""
        seg, off = start
        while (seg, off) < end:
            limit = end.off if seg == end.seg else None
            for r in scan(self._path(seg), seg, off, limit, whole=True):
                if r.kind == KIND_DAMAGED:
                    log.warning("spool: damaged bytes %s-%s skipped", r.start, r.end)
                yield r
            seg, off = seg + 1, 0

    def begin(self, start: Pos, end: Pos) -> None:
        """Note the span the writer is about to store, so that after a crash its
        successor retries exactly that span (same deduplication token)."""
        write_atomic(self.directory / "inflight", f"{start.seg} {start.off} {end.seg} {end.off}\n")

    def commit(self, pos: Pos, rows: int) -> None:
        """Everything before ``pos`` is in ClickHouse: move the checkpoint, drop old segments."""
        write_atomic(self.directory / "checkpoint", f"{pos.seg} {pos.off}\n")
        self._checkpoint = pos
        self._at_limit = False
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
