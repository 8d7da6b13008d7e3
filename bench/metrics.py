"""Metrics query benchmark: each dashboard metric read from its view against the same
metric computed from the raw ``events`` table, on the same data in the same run.

Run from the repository root::

    python bench/metrics.py            # full run (10,000,000 events, about 6-25 minutes)
    python bench/metrics.py --quick    # 500,000 events, for CI

One run, in a subprocess of its own (chdb allows one data directory per process):

1. A fresh embedded ClickHouse directory; the collector's own ``Store`` and
   ``migrate`` create the database, tables, materialized views and metric views.
2. ``INSERT INTO events SELECT ... FROM numbers(...)`` loads synthetic IDE telemetry
   (20,000 installs over 90 days, sessions of 25 events, a realistic event mix, props
   as the compact JSON the collector stores) in chunks of 1,000,000 rows, squashed into
   blocks of the collector's flush size, so the materialized views fire as on ingest.
   The load rate includes the views' cost.
3. For every metric of ``quietly_collector.insights.metrics.METRICS``: the view, as
   ``quietly query`` reads it (its stored SELECT, ``metrics.view_select``), the same
   view as an engineer would query it (``SELECT * FROM metric_<name>(since=...,
   until=..., app='')``, printed as "direct", not a target), and a hand-written query
   over ``events`` that returns the same rows, over the whole 90 days and the last 30.
   One warm-up each, then ``--runs`` runs alternating the three; the median counts.
   The answers are compared (view and direct exactly; raw exact for counts, a few
   percent for t-digest quantiles), which checks the views as well as timing them.
   ``funnel`` has no view (its steps are chosen at query time): it is timed as "raw
   only".

The report goes to stdout and, as JSON, to ``bench/results/metrics-<timestamp>.json``.
Targets (view at least 20x faster than raw, and under 100 ms) are printed as
PASS/MISS; the exit status is 0 either way, 1 if the benchmark could not run, 2 if a
view disagreed with its raw equivalent.

This file has the report and the command line; the rest is in bench/metrics_data.py
(the data set), metrics_raw.py (the raw queries), metrics_compare.py (checking the
answers), metrics_worker.py (the subprocess: load, floor, timing) and metrics_common.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script
from bench.machine import git, versions
from bench.metrics_common import (
    RESULTS_DIR,
    ROOT,
    TARGET_BY_RATIO,
    TARGET_RATIO,
    TARGET_VIEW_MS,
    BenchError,
)
from bench.metrics_data import BLOCK_ROWS, DAYS, EVENTS_PER_SESSION, INSTALLS, START
from bench.metrics_worker import worker

# -- report ----------------------------------------------------------------------------






def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def print_report(result: dict[str, Any]) -> None:
    w = result["worker"]
    m = result["machine"]
    v = m["versions"]
    ld = w["load"]
    lines = [
        "",
        f"machine: {m['cpus']} CPUs, {m['platform']}; Python {v['python']}, chdb {v['chdb']}"
        f" (engine {w['engine_version']}), clickhouse-connect {v['clickhouse-connect']}",
        f"load: {ld['events']:,} events in {ld['seconds']:.1f} s = {ld['events_per_s']:,.0f}"
        f" events/s (INSERT ... SELECT, {ld['block_rows']:,}-row blocks, materialized views"
        f" included); other processes {ld['other_processes_cores']:.2f} cores meanwhile",
        f"waited {w['settle_seconds']:.0f} s for merges"
        + ("; every table OPTIMIZE FINAL" if result["params"]["optimize"] else "")
        + (f"; one maintenance cycle: {w['maintenance']['seconds']:.1f} s, parts merged"
           f" away {w['maintenance']['parts_compacted']}" if w.get("maintenance") else ""),
        "",
        f"{'table':<20} {'rows':>12} {'parts':>6} {'on disk':>10}",
    ]
    lines += [f"{t['table']:<20} {t['rows']:>12,} {t['parts']:>6} {_size(t['bytes']):>10}"
              for t in w["tables"]]
    lines += [
        "",
        f"median of {result['params']['runs']} runs after a warm-up; targets: view >="
        f" {TARGET_RATIO:.0f}x faster than raw, view < {TARGET_VIEW_MS:.0f} ms",
        "(wall ms decide the targets; CPU ms, all engine threads, are steadier on a shared"
        " machine)",
        "(view ms: the view's stored SELECT, as quietly query runs it; direct: SELECT * FROM"
        " metric_<name>(...), as an engineer would)",
        "(max x: raw ms over the engine's floor, the best ratio any view could reach here;"
        + (f" floor: SELECT 1 {w['floor_ms']['select_1']:.2f} ms, the simplest aggregate over a"
           f" two-row MergeTree {w['floor_ms']['table']:.2f} ms)" if "floor_ms" in w else ")"),
        f"{'window':<8} {'metric':<17} {'rows':>5} {'view ms':>8} {'direct':>7} {'raw ms':>8}"
        f" {'raw/view':>8} {'max x':>6} {'view cpu':>8} {'raw cpu':>8} {'cpu x':>6}  {'>=20x':<5}"
        f" {'<100ms':<6} {'by ms':>7} {'by x':>5} {'<=3x':<5} check",
    ]
    for q in w["queries"]:
        check = q["check"]
        shown = check["status"]
        if "detail" in check:
            shown += f" ({check['detail']})"
        lines.append(
            f"{q['window']:<8} {q['metric']:<17} {q['rows']:>5} {q['view_ms']:>8.1f}"
            f" {q.get('direct_view_ms', math.nan):>7.1f}"
            f" {q['raw_ms']:>8.1f} {q['ratio']:>8.1f} {q.get('max_ratio', math.nan):>6.1f}"
            f" {q['view_cpu_ms']:>8.1f}"
            f" {q['raw_cpu_ms']:>8.1f} {q['cpu_ratio']:>6.1f}"
            f"  {'PASS' if q['ok_ratio'] else 'MISS':<5}"
            f" {'PASS' if q['ok_view_ms'] else 'MISS':<6}"
            f" {q.get('by_ms', math.nan):>7.1f} {q.get('by_ratio', math.nan):>5.2f}"
            f" {'PASS' if q.get('ok_by') else 'MISS':<5} {shown}"
        )
    for f in w["funnel"]:
        lines.append(f"{f['window']:<8} {'funnel':<17} {len(f['result']):>5} {'-':>8} {'-':>7}"
                     f" {f['raw_ms']:>8.1f} {'-':>8} {'-':>6} {'-':>8} {f['raw_cpu_ms']:>8.1f}"
                     f" {'-':>6}"
                     f"  raw only ({' -> '.join(f['steps'])})")
    lines.append(f"other processes' CPU during the queries: "
                 f"{w['other_processes_cores_during_queries']:.2f} cores (noise: should be near 0)")
    t = result["summary"]
    lines += [
        "",
        "Targets",
        f"  {'PASS' if t['ratio_met'] == t['queries'] else 'MISS'}  view >= {TARGET_RATIO:.0f}x"
        f" faster than the raw table: {t['ratio_met']} of {t['queries']} queries",
        f"  {'PASS' if t['view_ms_met'] == t['queries'] else 'MISS'}  view <"
        f" {TARGET_VIEW_MS:.0f} ms: {t['view_ms_met']} of {t['queries']} queries",
        f"  {'PASS' if t.get('by_met') == t.get('by_queries') else 'MISS'}  by"
        f" {result['params'].get('by', '?')} <= {TARGET_BY_RATIO:.0f}x the view without it:"
        f" {t.get('by_met', '?')} of {t.get('by_queries', '?')} queries broken down",
    ]
    if t.get("ratio_out_of_reach"):
        lines.append(f"        {len(t['ratio_out_of_reach'])} of the misses cannot reach"
                     f" {TARGET_RATIO:.0f}x on this engine (raw < {TARGET_RATIO:.0f} x floor): "
                     + ", ".join(t["ratio_out_of_reach"]))
    if t.get("by_out_of_reach"):
        lines.append(f"        {len(t['by_out_of_reach'])} of the misses cannot be within"
                     f" {TARGET_BY_RATIO:.0f}x here (the segments alone,"
                     f" {result['worker']['floor_ms']['segments']:.1f} ms, are over"
                     f" {TARGET_BY_RATIO - 1:.0f}x the view): " + ", ".join(t["by_out_of_reach"]))
    if t["mismatches"]:
        lines.append(f"  FAIL  {len(t['mismatches'])} view(s) disagree with the raw table: "
                     + ", ".join(t["mismatches"]))
    else:
        lines.append("  every view agrees with its raw equivalent")
    if m["cpus"] != 2:
        lines.append(f"  (note: figures in docs/performance.md are for 2 cores; this machine"
                     f" has {m['cpus']})")
    lines.append(f"\ncode: commit {result['code']['commit']}"
                 + (" (work tree with uncommitted changes to collector/ or schemas/)"
                    if result["code"]["changes"] else ""))
    lines.append(f"results: {result['results_file']}")
    print("\n".join(lines), flush=True)


# -- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=None,
                   help="events to load (default 10000000, 500000 with --quick)")
    p.add_argument("--quick", action="store_true", help="small, CI-friendly run")
    p.add_argument("--runs", type=int, default=5,
                   help="timed runs per query after one warm-up (default 5)")
    p.add_argument("--windows", type=int, nargs="*", default=[30], metavar="DAYS",
                   help="windows (days ending on the last day) timed besides the whole 90"
                        " days (default 30)")
    p.add_argument("--app", default="", help="app parameter of every query (default '': all)")
    p.add_argument("--by", default="channel", metavar="SEGMENT",
                   help="segment of the breakdown timed beside each view (default channel)")
    p.add_argument("--only", nargs="*", default=[], metavar="METRIC",
                   help="time only these metrics (and the funnel)")
    p.add_argument("--block-rows", type=int, default=BLOCK_ROWS,
                   help=f"rows per insert block (default {BLOCK_ROWS}; the collector's"
                        " flush_rows is 50000)")
    p.add_argument("--optimize", action="store_true",
                   help="OPTIMIZE ... FINAL every table after loading (fully merged aggregates)")
    p.add_argument("--maintenance", action="store_true",
                   help="run the collector's maintenance cycle after loading (it merges"
                        " aggregate tables left in several parts), as every hour in service")
    p.add_argument("--settle-seconds", type=float, default=300.0,
                   help="wait up to this long after loading for background merges (default 300)")
    p.add_argument("--wait-idle", type=float, default=60.0, metavar="SECONDS",
                   help="before loading and before timing, wait up to this long for other"
                        " processes to stop using the CPUs (default 60; 0 to skip)")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR",
                   help="load into DIR and keep it (for profiling by hand); must not exist")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.events is None:
        args.events = 500_000 if args.quick else 10_000_000
    if args.events < EVENTS_PER_SESSION or args.runs < 1 or args.block_rows < 1:
        p.error(f"--events must be at least {EVENTS_PER_SESSION}; --runs and --block-rows"
                " positive")
    return args


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC)
    if args.keep is not None:
        if args.keep.exists():
            raise BenchError(f"--keep {args.keep}: already exists")
        work = args.keep.resolve()
        work.mkdir(parents=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="quietly-bench-metrics-"))
    params = {
        "data_dir": str(work / "data"), "events": args.events, "runs": args.runs,
        "windows": args.windows, "app": args.app, "only": args.only, "by": args.by,
        "block_rows": args.block_rows, "optimize": args.optimize,
        "maintenance": args.maintenance,
        "settle_seconds": args.settle_seconds, "wait_idle": args.wait_idle,
        "out": str(work / "result.json"),
    }
    try:
        env = {k: val for k, val in os.environ.items() if not k.startswith("QUIETLY_")}
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(params)],
            env=env, cwd=work, check=False,
        )
        out = Path(params["out"])
        if proc.returncode != 0 or not out.exists():
            raise BenchError(f"worker subprocess failed (exit {proc.returncode})")
        worker_result: dict[str, Any] = json.loads(out.read_text())
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    queries = worker_result["queries"]
    return {
        "benchmark": "metrics",
        "started": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "versions": versions("chdb", "clickhouse-connect")},
        "code": {"commit": git("rev-parse", "--short", "HEAD"),
                 "changes": git("status", "--porcelain", "--", "collector", "schemas")},
        "params": {k: val for k, val in params.items() if k not in ("data_dir", "out")}
        | {"quick": args.quick, "days": DAYS, "installs": INSTALLS,
           "events_per_session": EVENTS_PER_SESSION, "start": START.isoformat()},
        "targets": {"ratio": TARGET_RATIO, "view_ms": TARGET_VIEW_MS},
        "worker": worker_result,
        "summary": {
            "queries": len(queries),
            "ratio_met": sum(q["ok_ratio"] for q in queries),
            # paths and experiment take no breakdown: not counted either way.
            "by_queries": sum(q["by"] is not None for q in queries),
            "by_met": sum(q["ok_by"] and q["by"] is not None for q in queries),
            "view_ms_met": sum(q["ok_view_ms"] for q in queries),
            "ratio_out_of_reach": [f"{q['metric']} ({q['window']})" for q in queries
                                   if q["max_ratio"] < TARGET_RATIO],
            "by_out_of_reach": [f"{q['metric']} ({q['window']})" for q in queries
                                if not q["ok_by"] and not q.get("by_in_reach", True)],
            "mismatches": [f"{q['metric']} ({q['window']})" for q in queries
                           if q["check"]["status"] == "MISMATCH"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        params = json.loads(args.worker)
        out = worker(params)
        Path(params["out"]).write_text(json.dumps(out, default=str))
        return 0
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        result = run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted (temporary files removed)", file=sys.stderr)
        return 130
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.results_dir / f"metrics-{stamp}.json"
    result["results_file"] = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print_report(result)
    return 2 if result["summary"]["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
