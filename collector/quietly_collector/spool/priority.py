"""Storage work at a lower CPU priority than the event loop that acknowledges requests.

On a small machine the embedded engine shares the collector's cores: while it inserts
a span and merges parts, the event loop waits for a core and acknowledgements slow
down. Storing can wait (the spool holds what is acknowledged); answering should not.
So the writer's thread, and the engine threads the collector did not start itself,
run at a higher nice value. Raising one's own nice value needs no privilege on Linux
(lowering it would); elsewhere this does nothing.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("quietly.priority")
_TASKS = "/proc/self/task"


def supported() -> bool:
    return hasattr(os, "setpriority") and os.path.isdir(_TASKS)


def lower_this_thread(nice: int) -> None:
    """Give the calling thread ``nice`` (Linux sets it per thread); best effort."""
    if nice <= 0 or not supported():
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:
        log.debug("could not lower the priority of a storage thread: %s", exc)


class EngineThreads:
    """Lowers the priority of the process's threads that Python did not start: the
    embedded engine's query, insert and merge threads. Threads they start later
    inherit it; ``lower_new`` catches the others, and is cheap enough to call once per
    insert (one directory listing; ``setpriority`` only for threads not seen before)."""

    def __init__(self, nice: int) -> None:
        self.nice = nice if supported() else 0
        self._seen: set[int] = set()

    def lower_new(self) -> int:
        if self.nice <= 0:
            return 0
        python = {t.native_id for t in threading.enumerate()}
        lowered = 0
        try:
            tids = [int(name) for name in os.listdir(_TASKS)]
        except OSError:
            return 0
        for tid in tids:
            if tid in self._seen or tid in python:
                continue
            self._seen.add(tid)
            try:
                if os.getpriority(os.PRIO_PROCESS, tid) < self.nice:
                    os.setpriority(os.PRIO_PROCESS, tid, self.nice)
                    lowered += 1
            except OSError:
                continue  # the thread ended meanwhile
        # Forget threads that ended, so the set stays the size of the live ones.
        if len(self._seen) > 2 * len(tids):
            self._seen &= set(tids)
        return lowered
