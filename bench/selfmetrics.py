"""What self-metrics add to the ingest path (docs/observability.md#cost).

Run from the repository root: ``python bench/selfmetrics.py``. Prints the time to
decode and process one 100-event batch, the cost of one timing hook (two per batch)
without telemetry and with it, and of one /metrics render. In-process, no server:
the ingest path's only additions are those hook calls, so they are what is timed.
"""

from __future__ import annotations

import json
import sys
import tempfile
import timeit
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quietly_collector.pipeline.collector import Collector
from quietly_collector.pipeline.decode import decode_batch
from quietly_collector.pipeline.process import process_events
from quietly_collector.selfobs.selfmetrics import SelfMetrics
from quietly_collector.settings import load_settings
from tests.helpers import event


def best(fn: object, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number  # type: ignore[arg-type]


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        s = load_settings(env={}, overrides={"data_dir": d, "admin_token": "x" * 20})
        c = Collector(s)
        b = json.dumps({"events": [event() for _ in range(100)]}).encode()
        now = datetime.now(UTC)
        process = best(lambda: process_events(decode_batch(b), "proj", now, c.ctx), 200)
        noop = best(lambda: c.hooks.queue_wait(0.001, "fsync"), 100_000)
        m = SelfMetrics(c)
        timed = best(lambda: c.hooks.queue_wait(0.001, "fsync"), 100_000)
        m.render()  # folds in the timings buffered above (up to 100,000), once
        render = best(m.render, 50)
        m.shutdown()
    print(f"decode + process_events, one 100-event batch: {process * 1e6:.0f} us")
    print(f"timing hook (2 per batch): {noop * 1e9:.0f} ns without telemetry,"
          f" {timed * 1e9:.0f} ns with self-metrics")
    print(f"one /metrics render: {render * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
