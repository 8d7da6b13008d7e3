"""Sessions: a new one at start and after 30 minutes without events.

Kept by the worker from the events' own timestamps, so ``track`` does no
bookkeeping. ``session_end`` carries the duration from start to last activity.
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

    def before(self, ts: float) -> list[SessionEvent]:
        """Session events due before an event at ``ts``; marks activity."""
        if self.current is None:
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
        out = self._close(self._last) if self.current is not None else []
        out.append(self._new(ts))
        return out

    def end(self, ts: float) -> list[SessionEvent]:
        if self.current is not None and ts - self._last > self.timeout:
            ts = self._last  # idle since: the session ended at its last activity
        return self._close(ts)

    def reset(self) -> None:
        self.current = None
