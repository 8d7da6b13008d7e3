"""Leases in ClickHouse: at most one holder of a name at a time, taken over once its
holder has been silent for ``ttl``.

ClickHouse has no conditional insert, but its DDL is atomic: of any number of
concurrent ``CREATE VIEW lease_<name>_<epoch>``, one succeeds and the others fail
with code 57 (table exists). So a lease is a sequence of epochs, each won by the one
collector that created its view. The winner appends heartbeats to ``leases``
(migration 0017) every third of ``ttl``; another collector may create the next epoch
only once the last heartbeat has expired by the server's clock (``ttl`` after it was
written). The holder acts only while its last heartbeat, counted from before it was
sent and by its own clock, is younger than ``ttl / 2``: it stops before anyone may
take over, with half of ``ttl`` to spare for slow clocks and the action under way.
A holder that finds a later epoch has lost the lease.

Every method blocks (it queries ClickHouse); the async callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
import uuid
from datetime import datetime
from typing import Any

from quietly_collector.storage.store import StorageError, Store

_NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")
# Epoch views kept behind the current one (a stale candidate's re-creation of an old
# one is caught by the check for later epochs).
KEEP_EPOCHS = 3


def holder_id() -> str:
    """This process, as heartbeats name it: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    def __init__(self, store: Store, name: str, ttl_s: float, holder: str | None = None,
                 clock: Any = time.monotonic) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"lease name {name!r}: lower-case letters, digits and _")
        self.store = store
        self.name = name
        self.ttl_s = float(ttl_s)
        self.holder = holder or holder_id()
        self.epoch = 0  # the epoch held; 0: none
        self._valid_until = 0.0
        self._clock = clock
        self._lock = threading.Lock()

    # -- what the holder asks ---------------------------------------------------
    def valid(self) -> bool:
        """Held, and safe to act on now."""
        return self.epoch > 0 and self._clock() < self._valid_until

    def remaining(self) -> float:
        """Seconds this holder may still act without renewing (0 if not held)."""
        return max(0.0, self._valid_until - self._clock()) if self.epoch else 0.0

    # -- taking, keeping, giving back ------------------------------------------
    def acquire(self) -> bool:
        """Renew the lease if held, else take it if free or expired. True if held now."""
        with self._lock:
            if self.epoch:
                return self._renew()
            return self._take()

    def release(self) -> None:
        """Give the lease back at once (a heartbeat that has already expired)."""
        with self._lock:
            if not self.epoch:
                return
            epoch, self.epoch, self._valid_until = self.epoch, 0, 0.0
            with contextlib.suppress(StorageError):
                self._heartbeat(epoch, expires_ms=0)

    def _take(self) -> bool:
        current, expired = self._current()
        if current and not expired:
            return False
        started = self._clock()
        epoch = current + 1
        try:
            self.store.command(
                f"CREATE VIEW {self._view(epoch)} AS SELECT {_quote(self.holder)} AS holder")
        except StorageError as exc:
            if "Code: 57" in str(exc) or "already exists" in str(exc):
                return False  # another collector won this epoch
            raise
        self._heartbeat(epoch, expires_ms=int(self.ttl_s * 1000))
        # A later epoch made by someone who read a newer state than ours: theirs.
        if self._latest_epoch() != epoch:
            return False
        self.epoch = epoch
        self._valid_until = started + self.ttl_s / 2
        self._forget_old(epoch)
        return True

    def _renew(self) -> bool:
        started = self._clock()
        try:
            latest = self._latest_epoch()
            if latest == self.epoch:
                self._heartbeat(self.epoch, expires_ms=int(self.ttl_s * 1000))
        except StorageError:
            # Unrenewed, the lease still holds until valid_until; then it lapses here
            # as everywhere else.
            return self.valid()
        if latest != self.epoch:
            self.epoch, self._valid_until = 0, 0.0  # taken over while we were silent
            return False
        self._valid_until = started + self.ttl_s / 2
        return True

    # -- ClickHouse ------------------------------------------------------------
    def _view(self, epoch: int) -> str:
        return f"lease_{self.name}_{int(epoch)}"

    def _epochs(self) -> list[int]:
        _, rows = self.store.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
            " AND startsWith(name, {p:String})", {"p": f"lease_{self.name}_"})
        prefix = len(f"lease_{self.name}_")
        return sorted(int(str(r[0])[prefix:]) for r in rows if str(r[0])[prefix:].isdigit())

    def _latest_epoch(self) -> int:
        epochs = self._epochs()
        return epochs[-1] if epochs else 0

    def _current(self) -> tuple[int, bool]:
        """The latest epoch and whether it has expired by the server's clock."""
        epoch = self._latest_epoch()
        if not epoch:
            return 0, True
        # The latest heartbeat counts (a release is one that has expired). None yet (its
        # creator died between the two statements): the view's creation time counts.
        _, rows = self.store.query(
            "SELECT coalesce((SELECT argMaxOrNull(expires_at, renewed_at) FROM leases"
            " WHERE name = {n:String} AND epoch = {e:UInt64}),"
            " (SELECT toDateTime64(metadata_modification_time, 3)"
            " + toIntervalMillisecond({ttl:UInt64}) FROM system.tables"
            " WHERE database = currentDatabase() AND name = {v:String})) < now64(3)",
            {"n": self.name, "e": epoch, "v": self._view(epoch),
             "ttl": int(self.ttl_s * 1000)})
        return epoch, bool(rows[0][0]) if rows and rows[0][0] is not None else True

    def _heartbeat(self, epoch: int, expires_ms: int) -> None:
        self.store.command(
            "INSERT INTO leases (name, epoch, holder, renewed_at, expires_at) VALUES"
            f" ({_quote(self.name)}, {int(epoch)}, {_quote(self.holder)}, now64(3),"
            f" now64(3) + toIntervalMillisecond({int(expires_ms)}))")

    def _forget_old(self, epoch: int) -> None:
        for old in self._epochs():
            if old < epoch - KEEP_EPOCHS:
                with contextlib.suppress(StorageError):
                    self.store.command(f"DROP VIEW IF EXISTS {self._view(old)}")

    def holders(self) -> list[tuple[int, str, datetime]]:
        """(epoch, holder, first heartbeat) of every epoch with heartbeats, oldest first."""
        _, rows = self.store.query(
            "SELECT epoch, any(holder), min(renewed_at) FROM leases WHERE name = {n:String}"
            " GROUP BY epoch ORDER BY epoch", {"n": self.name})
        return [(int(r[0]), str(r[1]), r[2]) for r in rows]


class SoleLease:
    """The embedded store's lease: one process owns its directory, so it holds every
    lease there is."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.epoch = 1

    def valid(self) -> bool:
        return True

    def remaining(self) -> float:
        return float("inf")

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


__all__ = ["KEEP_EPOCHS", "Lease", "SoleLease", "holder_id"]
