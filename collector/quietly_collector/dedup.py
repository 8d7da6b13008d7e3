"""Drop events whose ``event_id`` was already accepted.

Materialized views count every inserted row, so a resent event must be caught
before it is stored. Recent ids are held in memory (bounded); an event older
than what memory covers is looked up in the ``events`` table, where a
bloom-filter index on ``event_id`` keeps the lookup cheap.
"""

from __future__ import annotations

import uuid
from collections import deque
from datetime import datetime, timedelta


class RecentIds:
    """The last ``capacity`` accepted ids, and the time since which they are complete."""

    def __init__(self, capacity: int, horizon: datetime, slack: timedelta) -> None:
        self._capacity = capacity
        self._ids: dict[uuid.UUID, datetime] = {}
        self._order: deque[tuple[uuid.UUID, datetime]] = deque()
        # Every id accepted at or after this instant is in memory.
        self.horizon = horizon
        # Clock drift between a first send and a resend of the same event.
        self._slack = slack

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, event_id: uuid.UUID) -> bool:
        return event_id in self._ids

    def covers(self, ts: datetime) -> bool:
        """True if an event stamped ``ts`` would have been accepted within the horizon.

        An event's corrected timestamp is never later than its acceptance
        (future stamps are clamped), so an event stamped well after the
        horizon can only have been accepted after it, and memory is enough.
        """
        return ts > self.horizon + self._slack

    def add(self, event_id: uuid.UUID, accepted_at: datetime) -> None:
        if event_id in self._ids:
            return
        self._ids[event_id] = accepted_at
        self._order.append((event_id, accepted_at))
        while len(self._order) > self._capacity:
            old, when = self._order.popleft()
            # Only the entry that added the id may remove it (an id can be re-added).
            if self._ids.get(old) == when:
                del self._ids[old]
            if when > self.horizon:
                self.horizon = when

    def discard(self, event_id: uuid.UUID) -> None:
        """Forget an id whose batch was not acknowledged (it may be sent again)."""
        self._ids.pop(event_id, None)
