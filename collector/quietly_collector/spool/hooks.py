"""Where the collector reports timings and spans.

The defaults do nothing, so without telemetry the ingest and insert paths pay one
attribute lookup and call per batch (never per event); selfmetrics.py and tracing.py
swap in real ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any


def _no_timing(seconds: float, label: str) -> None:
    return None


def _no_span(name: str, attributes: dict[str, Any]) -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


class Hooks:
    def __init__(self) -> None:
        # (seconds, table): one ClickHouse insert of a batch.
        self.insert_seconds: Callable[[float, str], None] = _no_timing
        # (seconds, queue): a batch waiting (queue "fsync": the spool's group commit;
        # "inflight_ids": a concurrent batch holding the same event ids).
        self.queue_wait: Callable[[float, str], None] = _no_timing
        # A span around a ClickHouse insert, only when traces are exported.
        self.span: Callable[[str, dict[str, Any]], AbstractContextManager[Any]] = _no_span
