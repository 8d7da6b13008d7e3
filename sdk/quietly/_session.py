"""Sessions: a new one at start and after 30 minutes without events.

Kept by the worker from the events' own timestamps, so ``track`` does no
bookkeeping. ``session_end`` carries the duration from start to last activity.
The session opened at start-up (or opt-in) is only sent with the first event
near it: backdated events (``track_at``) would otherwise leave an empty session
at the wall-clock time, making every simulated or imported install look active
today.
"""

from __future__ import annotations

import uuid
from typing import Any

# (event name, props, ts, session id)
SessionEvent = tuple[str, dict[str, Any], float, str]


class Sessions:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.current: str | None = None
        self._start = 0.0
        self._last = 0.0
        self._opened: float | None = None  # start-up time of a session not sent yet

    def _new(self, ts: float) -> SessionEvent:
        self.current = str(uuid.uuid4())
        self._start = self._last = ts
        return ("session_start", {}, ts, self.current)

    def _close(self, ts: float) -> list[SessionEvent]:
        if self.current is None:
            return []
        end = max(ts, self._start)
        ev = ("session_end", {"duration_ms": int((end - self._start) * 1000)}, end, self.current)
        self.current = None
        return [ev]

    def opened(self, ts: float) -> list[SessionEvent]:
        """The app started or the user opted in: a session begins at ``ts``, sent with
        the first event within the timeout of it (or at ``end``)."""
        out = self._close(self._last) if self.current is not None else []
        self._opened = ts
        return out

    def before(self, ts: float) -> list[SessionEvent]:
        """Session events due before an event at ``ts``; marks activity."""
        if self.current is None:
            opened, self._opened = self._opened, None
            if opened is not None and abs(ts - opened) <= self.timeout:
                out = [self._new(min(opened, ts))]
                self._last = max(self._last, ts)
                return out
            return [self._new(ts)]
        # Far in the past counts too: backdated events (track_at) get their own sessions.
        if abs(ts - self._last) > self.timeout:
            out = self._close(self._last)
            out.append(self._new(ts))
            return out
        if ts > self._last:
            self._last = ts
        return []

    def start(self, ts: float) -> list[SessionEvent]:
        self._opened = None
        out = self._close(self._last) if self.current is not None else []
        out.append(self._new(ts))
        return out

    def end(self, ts: float) -> list[SessionEvent]:
        out: list[SessionEvent] = []
        if self.current is None and self._opened is not None:
            out.append(self._new(self._opened))  # no event came: the session still happened
            self._opened = None
        if self.current is not None and ts - self._last > self.timeout:
            ts = self._last  # idle since: the session ended at its last activity
        return out + self._close(ts)

    def reset(self) -> None:
        self.current = None
        self._opened = None
