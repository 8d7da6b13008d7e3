"""Each project's part of the spool: no project's backlog may take all of it.

While ClickHouse is slow or down the spool fills; without shares, one project sending
fast would fill it and every other project's batches would get 503 until it drained.
A project may hold at most ``spool_project_share_pct`` percent of ``spool_max_bytes``;
past it, its batches get 503 while the others still have the rest. Bytes are counted
when a batch is spooled and forgotten once the writer's checkpoint passes it (what a
restart recovers from the spool is not counted: it only drains).
"""

from __future__ import annotations

from collections import Counter, deque

from quietly_collector.spool.segments import Pos
from quietly_collector.spool.wal import SpoolFull


class ShareFull(SpoolFull):
    """The project holds its share of the spool; the others still have room."""


class SpoolShare:
    def __init__(self, max_bytes: int, share_pct: int) -> None:
        self.enabled = share_pct < 100  # 100: one project may fill the whole spool
        self.limit = max_bytes * share_pct // 100
        self.by_project: Counter[str] = Counter()
        self._pending: deque[tuple[Pos, str, int]] = deque()

    def check(self, project: str, nbytes: int, checkpoint: Pos) -> None:
        """Raise ShareFull when ``nbytes`` more would take the project past its share."""
        pending = self._pending
        while pending and pending[0][0] <= checkpoint:
            _, done, n = pending.popleft()
            self.by_project[done] -= n
            if not self.by_project[done]:
                del self.by_project[done]
        held = self.by_project[project]
        if self.enabled and held and held + nbytes > self.limit:
            raise ShareFull(f"project {project!r} holds {held} bytes of the spool, its share"
                            f" (spool_project_share_pct) is {self.limit}")

    def added(self, project: str, end: Pos, nbytes: int) -> None:
        self._pending.append((end, project, nbytes))
        self.by_project[project] += nbytes
