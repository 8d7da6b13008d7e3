"""Where the collector reports timings and spans.

The defaults do nothing, so without telemetry the ingest and insert paths pay one
attribute lookup and call per batch (never per event); selfmetrics.py and tracing.py
swap in real ones.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol


class _Reason(Protocol):
    reason: str


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


REJECTED_PREFIX = "rejected_reason_"
# Refusal reasons are free text (with paths and names in them); metrics get one of these
# few kinds instead, so a label's values stay bounded. First match wins.
REJECTION_KINDS: tuple[tuple[str, str], ...] = (
    ("-byte limit", "too_large"),
    ("unknown event type", "unknown_event"),
    ("unknown version", "unknown_version"),
    ("consent", "consent"),
    ("deleted by a deletion_request", "deleted_install"),
    ("ts is before", "timestamp"),
    ("nothing that looks like personal", "not_identifier"),
    ("at $.events[", ""),  # resolved below by where in the event the fault is
)


def rejection_kind(reason: str) -> str:
    for needle, kind in REJECTION_KINDS:
        if needle in reason:
            if kind:
                return kind
            break
    _, _, path = reason.rpartition(" at ")
    if ".props" in path:
        return "invalid_props"
    if ".context" in path:
        return "invalid_context"
    if "." in path.rpartition("]")[2]:
        return "invalid_field"
    return "malformed"


def count_rejections(counters: Counter[str], rejected: Iterable[_Reason]) -> None:
    """Only called for batches with refusals: accepted events cost nothing here."""
    for r in rejected:
        counters[REJECTED_PREFIX + rejection_kind(r.reason)] += 1
