"""Unsent events on disk, in SQLite, bounded by count and bytes.

Every event goes through here before it is sent, so events tracked offline, or
left behind by an exit or a crash, are sent by the next process that opens the
same state directory. Resends are safe: the collector drops event ids it has
already stored. Only the worker thread touches the connection.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

SPOOL_FILE = "spool.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    size INTEGER NOT NULL,
    body BLOB NOT NULL
)
"""


class Spool:
    def __init__(
        self,
        directory: Path,
        max_events: int,
        max_bytes: int,
        encrypt: Callable[[bytes], bytes] | None = None,
        decrypt: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / SPOOL_FILE
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._encrypt = encrypt
        self._decrypt = decrypt
        # Another process of the same app may hold the write lock for a moment.
        # check_same_thread=False: at exit the host's thread may drain the queue while
        # the worker is stuck on the network; the worker's lock serialises all use.
        self._db = sqlite3.connect(
            self.path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives a process crash;
        # only a power loss may lose the last ones.
        self._db.execute("PRAGMA synchronous=NORMAL")
        # Deleted events (sent, or purged at opt-out) are overwritten, not left in free pages.
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute(_SCHEMA)
        self.path.chmod(0o600)

    def close(self) -> None:
        self._db.close()

    def append(self, bodies: Sequence[bytes]) -> int:
        """Store events; return how many older ones were dropped to stay in bounds."""
        if not bodies:
            return 0
        now = time.time()
        enc = self._encrypt
        rows = [(now, len(b), enc(b) if enc else b) for b in bodies]
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO events (created, size, body) VALUES (?, ?, ?)", rows)
            dropped = self._trim()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return dropped

    def _trim(self) -> int:
        db = self._db
        count, size = db.execute("SELECT count(*), coalesce(sum(size), 0) FROM events").fetchone()
        dropped = 0
        if count > self.max_events:
            over = count - self.max_events
            db.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?)",
                (over,),
            )
            dropped += over
            count, size = db.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM events"
            ).fetchone()
        if size > self.max_bytes:
            # Oldest first, until the total fits.
            cut = db.execute(
                "SELECT id FROM (SELECT id, sum(size) OVER (ORDER BY id DESC) AS tail"
                " FROM events) WHERE tail > ? ORDER BY id DESC LIMIT 1",
                (self.max_bytes,),
            ).fetchone()
            if cut is not None:
                n = db.execute("DELETE FROM events WHERE id <= ?", (cut[0],)).rowcount
                dropped += n
        return dropped

    def peek(self, max_events: int, max_bytes: int) -> tuple[list[int], list[bytes], int]:
        """The oldest events, up to the limits: (ids, bodies, undecryptable dropped)."""
        ids: list[int] = []
        bodies: list[bytes] = []
        bad: list[int] = []
        total = 0
        cur = self._db.execute(
            "SELECT id, size, body FROM events ORDER BY id LIMIT ?", (max_events,)
        )
        for rid, size, body in cur:
            if bodies and total + size > max_bytes:
                break
            if self._decrypt is not None:
                body = self._decrypt(body)
                if body is None:
                    bad.append(rid)
                    continue
            ids.append(rid)
            bodies.append(body)
            total += size
        if bad:
            self.delete(bad)
        return ids, bodies, len(bad)

    def delete(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in ids])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def purge(self) -> int:
        n = self._db.execute("DELETE FROM events").rowcount
        # Leave no copy of the purged events in the write-ahead log either.
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(n)

    def expire(self, max_age: float) -> int:
        """Drop events spooled more than ``max_age`` seconds ago; how many. Costs one
        primary-key lookup when the oldest event is young enough (the common case)."""
        cutoff = time.time() - max_age
        oldest = self._db.execute("SELECT created FROM events ORDER BY id LIMIT 1").fetchone()
        if oldest is None or oldest[0] >= cutoff:
            return 0
        return int(self._db.execute("DELETE FROM events WHERE created < ?", (cutoff,)).rowcount)

    def max_id(self) -> int:
        row = self._db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
        return int(row[0])

    def pending_at_or_before(self, rid: int) -> bool:
        row = self._db.execute("SELECT 1 FROM events WHERE id <= ? LIMIT 1", (rid,)).fetchone()
        return row is not None

    def count(self) -> tuple[int, int]:
        count, size = self._db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM events"
        ).fetchone()
        return int(count), int(size)
