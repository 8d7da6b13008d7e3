"""How many batches the collector reads and processes at once, in all and per project."""

from __future__ import annotations

from collections import Counter


class Slots:
    """Batches read and processed at once: at most ``total``, and ``per_project`` of one
    project. Each holds its body and decoded events in memory (about 1.5 MB for 500
    events): refusing before the body is read keeps memory bounded however many
    clients send at once, and a project's stalled or slow clients leave the other
    projects their share (docs/security.md)."""

    def __init__(self, total: int, per_project: int) -> None:
        self.total = total
        self.per_project = per_project
        self.used = 0
        self.by_project: Counter[str] = Counter()

    def take(self, project: str) -> str:
        """"" when a slot was taken, else why not."""
        if self.used >= self.total:
            return f"collector has {self.total} batches in progress, retry later"
        if self.by_project[project] >= self.per_project:
            return (f"project {project!r} has {self.per_project} batches in progress"
                    " (max_batches_in_flight_per_project), retry later")
        self.used += 1
        self.by_project[project] += 1
        return ""

    def give(self, project: str) -> None:
        self.used -= 1
        self.by_project[project] -= 1
        if not self.by_project[project]:
            del self.by_project[project]
