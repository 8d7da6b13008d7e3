"""Shared by the ingest benchmark's modules (bench/ingest.py and the bench/ingest_*.py
it imports): the paths, the collector's credentials and names, the targets,
``BenchError`` and the percentile used for insert times and latencies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"

WRITE_KEY = "bench-write-key-0123456789"
ADMIN_TOKEN = "bench-admin-token-0123456789"
PROJECT = "bench"
DATABASE = "quietly"
BASELINE_CHUNK = 10_000

# Targets from the issue (2-core machine).
TARGET_RATIO = 0.5
TARGET_EVENTS_PER_S = 100_000.0
TARGET_HALF_LOAD_P99_MS = 50.0


class BenchError(Exception):
    """The benchmark could not run (not a missed target)."""


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100) of unsorted values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
