"""``Telemetry``: the object product code holds.

Its public methods never raise into the host (outside ``debug=True``): an
internal error is logged without payload and counted in ``stats()``. ``track``
only appends to a bounded deque; everything else happens on the worker thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from quietly._events import EventBuilder, base_context, rfc3339
from quietly._helpers import HelpersMixin
from quietly._safe import safe
from quietly._spool import Spool
from quietly._state import CONSENT_LEVELS, State, StateFile, default_state_dir
from quietly._stats import Stats
from quietly._worker import Config, Item, Sender, Waiter, Worker
from quietly_schemas import Catalog, builtin_catalog, load_catalog

log = logging.getLogger("quietly")
_time = time.time


def _dnt() -> bool:
    # The de-facto standard (consoledonottrack.com): any value but empty/0/false.
    return os.environ.get("DO_NOT_TRACK", "").strip().lower() not in ("", "0", "false", "no")


class Telemetry(HelpersMixin):
    """Consent-gated, anonymous product telemetry. See ``docs/sdk.md``."""

    @safe(None)
    def __init__(
        self,
        endpoint: str | None = None,
        write_key: str | None = None,
        app: str = "app",
        app_version: str = "",
        state_dir: str | os.PathLike[str] | None = None,
        *,
        local_path: str | os.PathLike[str] | None = None,
        debug: bool = False,
        catalog: Catalog | None = None,
        schema_dirs: Iterable[str | os.PathLike[str]] = (),
        spool_key: str | bytes | None = None,
        max_queue: int = 10_000,
        max_spool_events: int = 100_000,
        max_spool_bytes: int = 64 * 1024 * 1024,
        batch_events: int = 500,
        flush_interval: float = 2.0,
        request_timeout: float = 10.0,
        max_backoff: float = 300.0,
        max_event_age: float = 30 * 86_400.0,
        session_timeout: float = 30 * 60.0,
        exit_timeout: float = 2.0,
        capture_crashes: bool = False,
    ) -> None:
        self._debug = debug
        self._stats = Stats()
        self._on = False
        self._level = "off"
        self._closed = False
        self._need_start = False
        self._install: str | None = None
        self._exposed: set[tuple[str, str]] = set()  # (install id, experiment) reported
        self._queue: deque[Item] = deque()
        self._max_queue = max_queue
        self._wake_at = batch_events
        self._exit_timeout = exit_timeout
        self._state_lock = threading.Lock()
        from quietly import __version__

        if endpoint is None and local_path is None:
            raise ValueError("Telemetry needs an endpoint, or local_path for local analytics")
        if endpoint is not None and not write_key:
            raise ValueError("Telemetry(endpoint=...) needs the collector's write_key")
        self._dir = Path(state_dir) if state_dir is not None else default_state_dir(app)
        self._state_file = StateFile(self._dir)
        if catalog is None:
            dirs = [Path(d) for d in schema_dirs]
            catalog = load_catalog(dirs) if dirs else builtin_catalog()
        self._builder = EventBuilder(catalog, base_context(app, app_version, __version__))
        sender: Sender
        if endpoint is not None:
            from quietly._transport import Transport

            sender = Transport(endpoint, write_key or "", f"quietly-python/{__version__}")
        else:
            from quietly._local import LocalSink

            sender = LocalSink(local_path or "events.jsonl")
        codec = None
        key = spool_key or os.environ.get("QUIETLY_SPOOL_KEY") or None
        if key:
            from quietly._crypto import fernet_codec

            codec = fernet_codec(key)

        def open_spool() -> Spool:
            enc, dec = codec if codec else (None, None)
            return Spool(self._dir, max_spool_events, max_spool_bytes, enc, dec)

        config = Config(
            batch_events=batch_events,
            flush_interval=flush_interval,
            request_timeout=request_timeout,
            backoff_max=max_backoff,
            session_timeout=session_timeout,
            max_event_age=max_event_age,
        )
        self._worker = Worker(
            self._queue, self._builder, open_spool, sender, self, self._stats, config
        )
        state = self._state_file.load()
        self._apply(state)
        if self._on:
            self._queue.append((None, "session_open", self._level, _time()))
        if self._on or state.pending_deletions:
            self._worker.ensure_started()
        if capture_crashes:
            self.capture_crashes()
        _LIVE.add(self)

    # --- consent -----------------------------------------------------------
    def _apply(self, state: State) -> None:
        self._install = state.install_id
        self._pending = list(state.pending_deletions)
        level = "off" if _dnt() or state.install_id is None else state.consent
        self._level = level
        self._on = level != "off" and not self._closed

    @property
    def consent(self) -> str:
        """The consent in force: ``off`` (default), ``basic`` or ``detailed``."""
        return self._level

    @property
    def install_id(self) -> str | None:
        """The random id of this installation, or None before opt-in."""
        return self._install

    @safe(None)
    def set_consent(self, level: str) -> None:
        """Record the user's choice (persisted). Going to ``off`` deletes their data."""
        if level not in CONSENT_LEVELS:
            raise ValueError(f"consent must be one of {CONSENT_LEVELS}, not {level!r}")
        with self._state_lock:
            state = self._state_file.load()
            was_on = state.install_id is not None
            if level == "off":
                if was_on:
                    assert state.install_id is not None
                    state.pending_deletions.append({
                        "event_id": str(uuid.uuid4()),
                        "install_id": state.install_id,
                        "ts": rfc3339(_time()),
                    })
                state.install_id = None  # rotated: the next opt-in gets a new id
            elif state.install_id is None:
                state.install_id = str(uuid.uuid4())
            state.consent = level
            self._state_file.save(state)
            before = self._on
            self._apply(state)
        if level == "off":
            if was_on:
                self._queue.clear()
                self._queue.append((None, "purge", None, _time()))
                self._worker.ensure_started()
                self._worker.wake.set()
        elif self._on and not before:
            self._queue.append((None, "session_open", self._level, _time()))
            self._worker.ensure_started()

    # Hooks for the worker -------------------------------------------------
    def worker_install_id(self) -> str | None:
        return self._install

    def events_allowed(self) -> bool:
        return self._level != "off"

    def pending_deletions(self) -> list[dict[str, str]]:
        return self._pending

    def deletion_delivered(self, event_id: str) -> None:
        with self._state_lock:
            state = self._state_file.load()
            state.pending_deletions = [
                p for p in state.pending_deletions if p["event_id"] != event_id
            ]
            self._state_file.save(state)
            self._pending = [p for p in self._pending if p["event_id"] != event_id]

    # --- tracking ----------------------------------------------------------
    def track(self, event: str, /, **props: Any) -> None:
        """Queue an event; a no-op while consent is off. Never blocks, never raises."""
        if not self._on:
            return
        try:
            if self._need_start:
                self._restart()
            q = self._queue
            if len(q) >= self._max_queue:
                self._stats.drop("queue_full")
                return
            if self._debug:
                self.preview(event, **props)  # raises on an invalid event
            q.append((event, props, self._level, _time()))
            if len(q) >= self._wake_at:
                self._worker.wake.set()
        except Exception:
            if self._debug:
                raise
            log.exception("quietly: internal error in track (not raised to the app)")
            self._stats.add("internal_errors")

    def track_at(self, ts: datetime | float, event: str, /, **props: Any) -> None:
        """``track`` for an event that happened at ``ts`` (aware datetime or epoch seconds).

        For importers and simulators; sessions follow the given times. Like
        posthog's and segment's ``timestamp`` argument.
        """
        if not self._on:
            return
        try:
            when = ts.timestamp() if isinstance(ts, datetime) else float(ts)
            if self._need_start:
                self._restart()
            q = self._queue
            if len(q) >= self._max_queue:
                self._stats.drop("queue_full")
                return
            q.append((event, props, self._level, when))
            if len(q) >= self._wake_at:
                self._worker.wake.set()
        except Exception:
            if self._debug:
                raise
            log.exception("quietly: internal error in track_at (not raised to the app)")
            self._stats.add("internal_errors")

    @safe(None)
    def preview(self, event: str, /, **props: Any) -> dict[str, Any] | None:
        """Exactly what ``track`` would send now, or None if nothing would be.

        Raises ``EventInvalid`` for an invalid event, so it doubles as a check in tests.
        """
        from quietly._events import ConsentBlocked

        if self._level == "off":
            return None
        try:
            ev, _ = self._builder.build(
                event, props, _time(), self._level, self._install or "",
                self._worker.sessions.current,
            )
        except ConsentBlocked:
            return None
        return ev

    @safe(True)
    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is delivered; False on timeout."""
        if not self._worker.alive and not self._queue and not self._pending:
            return True
        if self._need_start:
            self._restart()
        w = Waiter()
        self._worker.ensure_started()
        self._worker.flush_marker(w)
        return w.done.wait(timeout) and w.ok

    @safe(False)
    def shutdown(self, timeout: float = 2.0) -> bool:
        """Send what is left within ``timeout``; keep the rest on disk for next time."""
        if self._closed:
            return True
        deadline = time.monotonic() + timeout
        if self._on:
            self._end_session()
        self._on = False
        self._closed = True
        worker = self._worker
        if not worker.alive and not self._queue:
            return True
        worker.set_deadline(deadline)
        ok = self.flush(timeout)
        stopped = worker.stop(max(0.0, deadline - time.monotonic()))
        if not stopped and self._queue and worker.lock.acquire(timeout=0.2):
            # The worker is stuck on the network: keep the queue on disk ourselves.
            try:
                worker.drain()
            finally:
                worker.lock.release()
        return ok

    @safe(None)
    def _end_session(self) -> None:
        # On its own: an error here is counted, and shutdown still closes the client
        # (otherwise the exit hook would try again, logging to a closed stream).
        self._queue.append((None, "session_end", self._level, _time()))

    @safe({})
    def stats(self) -> dict[str, Any]:
        """Counters: queued, spooled, sent, duplicates, dropped by reason, errors."""
        out = self._stats.snapshot()
        out["queued"] = len(self._queue)
        out["consent"] = self._level
        out["pending_deletion_requests"] = len(self._pending)
        return out

    # --- fork ----------------------------------------------------------------
    def _after_fork(self) -> None:
        # The child shares nothing with the parent's queue: the parent sends those.
        self._queue.clear()
        self._stats.reset_lock()
        self._state_lock = threading.Lock()
        self._worker.after_fork()
        self._need_start = self._on

    def _restart(self) -> None:
        self._need_start = False
        self._worker.ensure_started()

    def _enqueue_control(self, op: str, arg: Any) -> None:
        if self._on:
            self._queue.append((None, op, arg, _time()))


_LIVE: weakref.WeakSet[Telemetry] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for t in list(_LIVE):
        try:
            t._after_fork()
        except Exception:  # never break the host's fork
            log.exception("quietly: could not reset after fork")


def _at_exit() -> None:
    for t in list(_LIVE):
        t.shutdown(t._exit_timeout)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
