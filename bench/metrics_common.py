"""Shared by the metrics query benchmark's modules (bench/metrics.py and the
bench/metrics_*.py it imports): the paths, the database name, the targets and
``BenchError``."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DATABASE = "quietly"

# Targets from the issue.
TARGET_RATIO = 20.0
TARGET_VIEW_MS = 100.0
# A breakdown by one segment: at most this many times the same metric without it.
TARGET_BY_RATIO = 3.0


class BenchError(Exception):
    """The benchmark could not run (not a missed target)."""
