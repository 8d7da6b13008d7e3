"""Refused events counted by kind of reason, for metrics (bounded label values)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol


class _Reason(Protocol):
    reason: str


REJECTED_PREFIX = "rejected_reason_"
# Events SDKs dropped before sending, by the reason their client_report gave.
SDK_DROPPED_PREFIX = "sdk_dropped_"
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
