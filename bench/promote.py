"""Promotion cost: staged events into ``events`` (storage/promote.py) against inserting
the same rows into ``events`` directly, over the test ClickHouse endpoint.

    python bench/promote.py --rows 200000 --stored 1000000

Rows are made inside ClickHouse (``numbers()``), so both paths measure the engine:
the views, and for promotion the copy and the id check against ``--stored`` rows
already in ``events``. The collector's own encoding of rows, paid once either way,
is not in it. Results: printed, and bench/results/promote-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script
from bench.soak_common import write_result
from quietly_collector.settings import load_settings
from quietly_collector.storage.migrations import migrate
from quietly_collector.storage.promote import promote_once, staged_rows
from quietly_collector.storage.store import Store
from tests import scaleout as so

_ROWS = (
    "SELECT generateUUIDv4(), 'proj', 'feature_used', 1, cityHash64(number % 5000),"
    " cityHash64(number % 20000), now64(3) - toIntervalSecond(number % 86400),"
    " now64(3), NULL, now64(3), 'client', 'app' || toString(number % 3), '1.0.0', 'linux',"
    " '', '', 'quietly-python', '0.1.0', 'basic', '{{\"feature\":\"search\"}}'"
    " FROM numbers({n})"
)


def _fill(store: Store, table: str, rows: int, parts: int) -> float:
    started = time.perf_counter()
    for _ in range(parts):
        store.command(f"INSERT INTO {table} " + _ROWS.format(n=rows // parts),
                      {"async_insert": 0})
    return time.perf_counter() - started


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="quietly-promote-"))
    server = subprocess.Popen([sys.executable, "-m", "tests.chserver", "--path",
                               str(tmp / "clickhouse")], stdout=subprocess.PIPE, text=True,
                              cwd=so.ROOT)
    assert server.stdout is not None
    url = server.stdout.readline().split()[-1]
    out: dict[str, Any] = {"args": vars(args)}
    try:
        for db in ("direct", "promoted"):
            settings = load_settings(env={}, overrides={"clickhouse_url": f"{url}/{db}",
                                                        "data_dir": str(tmp / db)})
            store = Store(settings)
            store.connect()
            migrate(store, settings)
            if args.stored:
                _fill(store, "events", args.stored, 10)
            if db == "direct":
                out["direct_rows_per_s"] = round(
                    args.rows / _fill(store, "events", args.rows, args.parts))
            else:
                staging = _fill(store, "events_staging", args.rows, args.parts)
                started = time.perf_counter()
                cycles = 0
                while staged_rows(store):
                    promote_once(store, 60)
                    cycles += 1
                promoting = time.perf_counter() - started
                out["staged_rows_per_s"] = round(args.rows / staging)
                out["promoted_rows_per_s"] = round(args.rows / promoting)
                # What the staged path costs the store in all: its inserts and the move.
                out["staged_and_promoted_rows_per_s"] = round(args.rows / (staging + promoting))
                out["promotions"] = cycles
                _, [(n,)] = store.query("SELECT count() FROM events")
                out["events_after"] = int(n)
            store.close()
    finally:
        server.terminate()
        server.wait(30)
    out["staged_and_promoted_vs_direct"] = round(
        out["staged_and_promoted_rows_per_s"] / out["direct_rows_per_s"], 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--parts", type=int, default=20, help="inserts the rows come in")
    p.add_argument("--stored", type=int, default=1_000_000, help="rows already in events")
    args = p.parse_args()
    result = run(args)
    path = write_result("promote", result)
    print(json.dumps(result))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
