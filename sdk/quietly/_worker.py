"""The one background thread: queue → checked events → disk spool → collector.

Modelled on sentry-python's ``worker.py`` (one bounded queue, one daemon thread,
``flush(timeout)``, restart after fork) and OpenTelemetry's ``BatchProcessor``
(the caller only appends to a deque; the thread is woken when a batch is full
or the interval has passed). Everything slow happens here, off the host's thread.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from quietly._events import ConsentBlocked, EventBuilder, EventInvalid, rfc3339
from quietly._report import Reporter
from quietly._session import Sessions
from quietly._spool import Spool
from quietly._stats import Stats
from quietly._transport import Outcome

log = logging.getLogger("quietly")

# Queue items: (event name, props, consent level, ts) or (None, control op, argument, ts).
Item = tuple[Any, Any, Any, float]


class Sender(Protocol):
    def post(self, body: bytes, timeout: float) -> Outcome: ...


@dataclass
class Config:
    batch_events: int = 500
    batch_bytes: int = 512 * 1024
    flush_interval: float = 2.0
    request_timeout: float = 10.0
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    session_timeout: float = 30 * 60.0
    # Spooled events older than this are dropped undelivered (counted as too_old).
    max_event_age: float = 30 * 86_400.0


@dataclass
class Waiter:
    done: threading.Event = field(default_factory=threading.Event)
    target: int = -1  # spool id that must be gone; -1 until the worker has seen the marker
    ok: bool = False


class Hooks(Protocol):
    """What the worker needs from the client that owns it."""

    def worker_install_id(self) -> str | None: ...
    def events_allowed(self) -> bool: ...
    def pending_deletions(self) -> list[dict[str, str]]: ...
    def deletion_delivered(self, event_id: str) -> None: ...


class Worker:
    def __init__(
        self,
        queue: deque[Item],
        builder: EventBuilder,
        open_spool: Callable[[], Spool],
        sender: Sender,
        hooks: Hooks,
        stats: Stats,
        config: Config,
    ) -> None:
        self.queue = queue
        self.builder = builder
        self.open_spool = open_spool
        self.sender = sender
        self.hooks = hooks
        self.stats = stats
        self.config = config
        self.sessions = Sessions(config.session_timeout)
        self.wake = threading.Event()
        # Held while the spool is touched, so shutdown can drain from another thread.
        self.lock = threading.RLock()
        self._spool: Spool | None = None
        self._thread: threading.Thread | None = None
        self._waiters: list[Waiter] = []
        self._stopping = False
        self._next_send = 0.0
        self._retry_until = 0.0  # a Retry-After from the collector: never sent sooner
        self._backoff = 0.0
        self._batch_events = config.batch_events
        self.reporter = Reporter(stats)

    # --- lifecycle -------------------------------------------------------
    def ensure_started(self) -> None:
        t = self._thread
        if t is not None and t.is_alive():
            return
        with self.lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="quietly-worker", daemon=True)
            self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def after_fork(self) -> None:
        # The parent's thread does not exist here and its locks may be held.
        self.lock = threading.RLock()
        self.wake = threading.Event()
        self._thread = None
        self._waiters = []
        if self._spool is not None:
            _ABANDONED.append(self._spool)  # never close the parent's SQLite handle here
            self._spool = None

    def stop(self, timeout: float) -> bool:
        self._stopping = True
        self.wake.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
            if t.is_alive():
                return False
        return True

    def _run(self) -> None:
        while True:
            self.wake.wait(self._wait_time())
            self.wake.clear()
            try:
                self.drain()
                self._send_ready()
                self._settle()
            except Exception:
                log.exception("quietly: internal error in the worker (not raised to the app)")
                self.stats.add("internal_errors")
                time.sleep(0.5)
            if self._stopping and not self.queue:
                with self.lock:
                    if self._spool is not None:
                        self._spool.close()
                        self._spool = None
                return

    def _wait_time(self) -> float:
        if self.queue and len(self.queue) >= self._batch_events:
            return 0.0
        now = time.monotonic()
        due = max(self._next_send, self._retry_until)
        return min(self.config.flush_interval, max(0.05, due - now))

    # --- queue → spool ---------------------------------------------------
    def spool(self) -> Spool:
        if self._spool is None:
            self._spool = self.open_spool()
        return self._spool

    def drain(self) -> None:
        """Move everything queued into the spool (callable from any thread)."""
        with self.lock:
            q = self.queue
            bodies: list[bytes] = []
            # Bounded by what was queued when we started, written in chunks: a host
            # that tracks faster than we spool must not grow this list forever.
            for _ in range(len(q)):
                try:
                    name, a, b, ts = q.popleft()
                except IndexError:
                    break
                if name is None:
                    self._control(a, b, ts, bodies)
                else:
                    self._event(name, a, b, ts, bodies)
                if len(bodies) >= _CHUNK:
                    self._store(bodies)
            self._store(bodies)

    def _store(self, bodies: list[bytes]) -> None:
        if not bodies:
            return
        dropped = self.spool().append(bodies)
        self.stats.add("spooled", len(bodies))
        self.stats.drop("spool_full", dropped)
        bodies.clear()

    def _event(
        self, name: str, props: Any, level: str, ts: float, out: list[bytes]
    ) -> None:
        install = self.hooks.worker_install_id()
        if install is None:
            self.stats.drop("consent")
            return
        for extra in self.sessions.before(ts):
            self._build(extra[0], extra[1], extra[2], level, install, extra[3], out)
        self._build(name, props, ts, level, install, self.sessions.current, out)

    def _build(
        self, name: str, props: Any, ts: float, level: str, install: str,
        session: str | None, out: list[bytes],
    ) -> None:
        try:
            event, dropped = self.builder.build(name, props, ts, level, install, session)
        except ConsentBlocked:
            self.stats.drop("consent")
            return
        except EventInvalid as exc:
            self.stats.drop("invalid")
            log.debug("quietly: dropped an invalid %r event: %s", name, exc)
            return
        for reason, n in dropped.items():
            self.stats.add(f"props_{reason}", n)
        out.append(self.builder.encode(event))

    def _control(self, op: str, arg: Any, ts: float, out: list[bytes]) -> None:
        if op == "flush":
            self._store(out)
            arg.target = self.spool().max_id()
            self._waiters.append(arg)
            self._backoff = 0.0
            self._next_send = 0.0
        elif op in ("session_open", "session_start", "session_end"):
            install = self.hooks.worker_install_id()
            s = self.sessions
            events = (s.opened(ts) if op == "session_open"
                      else s.start(ts) if op == "session_start" else s.end(ts))
            if install is not None:
                for name, props, ets, session in events:
                    self._build(name, props, ets, arg, install, session, out)
        elif op == "purge":
            out.clear()
            n = self.spool().purge()
            self.sessions.reset()
            self.stats.drop("opted_out", n)

    # --- spool → collector ----------------------------------------------
    def _send_ready(self) -> None:
        now = time.monotonic()
        if now < self._retry_until or now < self._next_send:
            return
        self._next_send = now + self.config.flush_interval
        if not self._send_deletions():
            return
        if not self.hooks.events_allowed():
            return  # DO_NOT_TRACK: spooled events wait, only deletion requests go out
        with self.lock:
            self.stats.drop("too_old", self.spool().expire(self.config.max_event_age))
        while True:
            with self.lock:
                ids, bodies, bad = self.spool().peek(self._batch_events, self.config.batch_bytes)
            self.stats.drop("spool_undecryptable", bad)
            if not ids:
                return
            if not self._deliver(ids, bodies):
                return
            if self._stopping and time.monotonic() > self._deadline:
                return

    _deadline = float("inf")

    def _send_deletions(self) -> bool:
        for p in self.hooks.pending_deletions():
            body = self.builder.deletion_request(p["event_id"], p["install_id"], p["ts"])
            out = self.sender.post(self._batch([body]), self.config.request_timeout)
            if out.kind == "sent" or out.kind == "drop":
                self.hooks.deletion_delivered(p["event_id"])
                self.stats.add("deletion_requests_sent")
            else:
                self._failed(out)
                return False
        return True

    @staticmethod
    def _batch(bodies: list[bytes]) -> bytes:
        sent_at = rfc3339(time.time()).encode()
        return b'{"sent_at":"' + sent_at + b'","events":[' + b",".join(bodies) + b"]}"

    def _deliver(self, ids: list[int], bodies: list[bytes]) -> bool:
        report = self.reporter.attach(self.builder, self.hooks.worker_install_id())
        payload = [*bodies, report[1]] if report is not None else bodies
        out = self.sender.post(self._batch(payload), self.config.request_timeout)
        if out.kind == "sent":
            if report is not None:
                self.reporter.delivered(report[0])
                self.stats.add("client_reports_sent")
                # The report is last: its verdict is not an event of ours.
                out.rejected = [r for r in out.rejected if r[0] < len(bodies)]
            with self.lock:
                self.spool().delete(ids)
            self.stats.add("sent", len(ids) - len(out.rejected))
            self.stats.add("duplicates", out.duplicates)
            self.stats.drop("rejected_by_collector", len(out.rejected))
            for index, reason in out.rejected[:5]:
                log.debug("quietly: the collector rejected event %d of a batch: %s", index, reason)
            self._backoff = 0.0
            self._batch_events = self.config.batch_events
            return True
        if out.kind == "too_large" and len(ids) > 1:
            self._batch_events = max(1, len(ids) // 2)
            return True
        if out.kind in ("too_large", "drop"):
            with self.lock:
                self.spool().delete(ids)
            self.stats.drop(f"http_{out.status}", len(ids))
            return True
        self._failed(out)
        return False

    def _failed(self, out: Outcome) -> None:
        self.stats.add("send_failures")
        cfg = self.config
        self._backoff = min(cfg.backoff_max, max(cfg.backoff_base, self._backoff * 2))
        # Full jitter (AWS architecture blog): spreads retries of many clients apart.
        delay = random.uniform(cfg.backoff_base / 2, self._backoff)
        now = time.monotonic()
        self._next_send = now + delay
        if out.retry_after is not None:
            self._retry_until = now + min(out.retry_after, cfg.backoff_max)
        log.debug("quietly: send failed (%s %s), next try in %.1fs", out.status, out.error, delay)

    def _settle(self) -> None:
        if not self._waiters:
            return
        pending_del = bool(self.hooks.pending_deletions())
        keep: list[Waiter] = []
        with self.lock:
            for w in self._waiters:
                if not pending_del and not self.spool().pending_at_or_before(w.target):
                    w.ok = True
                    w.done.set()
                elif not w.done.is_set():
                    keep.append(w)
        self._waiters = keep

    def flush_marker(self, waiter: Waiter) -> None:
        self.queue.append((None, "flush", waiter, time.time()))
        self.wake.set()

    def set_deadline(self, deadline: float) -> None:
        self._deadline = deadline


_ABANDONED: list[Spool] = []
_CHUNK = 1000
