"""Checks of the metric parameters beyond since/until/app: the lifecycle period, the
path start or end, the experiment's name and goal. Each returns the parsed value or
raises ValueError with the reason (metrics.parse_query makes it a MetricError: a 400).

Every value is bounded here, before it reaches the engine: names and steps keep to
the catalog's keyword characters, numbers to small ranges.
"""

from __future__ import annotations

import re

PERIODS = ("week", "month")
MAX_PATH_STEPS = 5  # longer paths are each too rare to read; the count grows as k^n
DEFAULT_PATH_STEPS = 3
MAX_PATH_LIMIT = 100
DEFAULT_PATH_LIMIT = 10
DEFAULT_EXPERIMENT_WINDOW_S = 7 * 86_400
# An event name, or feature_used:<feature> / screen_viewed:<screen> (keyword characters).
_STEP = re.compile(r"[A-Za-z0-9_]{1,64}(?::[A-Za-z0-9_.:+-]{1,128})?")
_EVENT = re.compile(r"[A-Za-z0-9_]{1,64}")
_NAME = re.compile(r"[A-Za-z0-9_.:+-]{1,64}")
_INT = re.compile(r"[0-9]{1,4}")


def period(value: str | None) -> str:
    if value is None:
        return "week"
    if value not in PERIODS:
        raise ValueError(f"period: expected week or month, got {value[:20]!r}")
    return value


def path_step(value: str | None, name: str) -> str:
    if value is None:
        return ""
    if not _STEP.fullmatch(value):
        raise ValueError(f"{name}: expected an event or event:value (feature_used:search),"
                         f" got {value[:80]!r}")
    return value


def bounded(value: str | None, name: str, default: int, high: int) -> int:
    if value is None:
        return default
    if not _INT.fullmatch(value) or not 1 <= int(value) <= high:
        raise ValueError(f"{name}: expected a whole number from 1 to {high}, got {value[:20]!r}")
    return int(value)


def experiment_name(value: str | None) -> str:
    if value is None:
        return ""
    if not _NAME.fullmatch(value):
        raise ValueError(f"name: an experiment name of letters, digits and _.:+- (at most 64),"
                         f" got {value[:80]!r}")
    return value


def goal(value: str | None) -> str:
    if value is None:
        return ""
    if not _EVENT.fullmatch(value):
        raise ValueError(f"goal: an event name of letters, digits and _ (at most 64),"
                         f" got {value[:80]!r}")
    return value
