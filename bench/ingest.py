"""Ingest benchmark: the collector end to end against ClickHouse's own insert rate.

Run from the repository root::

    python bench/ingest.py            # full run (300,000 events)
    python bench/ingest.py --quick    # small run for CI

One run, on one machine:

1. Baseline. ``quietly migrate`` creates the tables in a fresh embedded ClickHouse
   directory; a subprocess (chdb allows one data directory per process) then inserts
   the benchmark's events, built as the rows the collector would store, in
   10,000-row inserts: once with ``client.insert`` (lists of values, the standard
   clickhouse-connect path) and once with ``raw_insert`` of JSONCompactEachRow bytes
   (the collector's own path). Building the rows is not timed.
2. End to end. ``quietly serve`` runs as a subprocess on a free port with a fresh data
   directory. Pre-encoded batches (unique event ids) are posted over HTTP with aiohttp
   at a fixed concurrency; the clock runs from the first request until
   ``SELECT count() FROM events`` reports every event stored. Each request's
   acknowledgement latency (200 = fsynced to the spool) is recorded.
3. Half load. Batches are sent open-loop at a fixed rate, half the measured end-to-end
   throughput, and acknowledgement latency percentiles are reported.

The report goes to stdout and, as JSON, to ``bench/results/ingest-<timestamp>.json``.
Targets are printed as PASS/MISS; the exit status is 0 either way (1 only if the
benchmark itself could not run).

This file has the report and the command line; the rest is in bench/ingest_events.py
(the events), ingest_baseline.py, ingest_collector.py (``quietly serve`` and CPU
sampling), ingest_load.py (the end-to-end phases), ingest_snapshot.py (``--commit``)
and ingest_common.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script
from bench.ingest_baseline import baseline_worker, run_baseline
from bench.ingest_collector import (
    _COLLECTOR_SETTINGS,
    CollectorProcess,
    _others,
    wait_idle,
)
from bench.ingest_common import (
    BASELINE_CHUNK,
    RESULTS_DIR,
    ROOT,
    TARGET_EVENTS_PER_S,
    TARGET_HALF_LOAD_P99_MS,
    TARGET_RATIO,
    BenchError,
)
from bench.ingest_events import Pool
from bench.ingest_load import E2EConfig, run_e2e
from bench.ingest_snapshot import _code_info, snapshot
from bench.machine import machine_busy_seconds, versions

# -- report ---------------------------------------------------------------------------


def _threads_line(threads: list[list[Any]]) -> str:
    return ", ".join(f"{name} {cores:.2f} ({nice})" for name, nice, cores in threads[:5])




def _targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    full = result["e2e"]["full_load"]
    half = result["e2e"]["half_load"]
    ratio = result["ratio_e2e_to_client_insert"]
    return [
        {
            "target": "end to end >= 50% of the baseline insert rate (client.insert, 10k rows)",
            "value": ratio,
            "ok": ratio >= TARGET_RATIO,
        },
        {
            "target": "end to end >= 100,000 events/s (2-core machine)",
            "value": full["events_per_s"],
            "ok": full["events_per_s"] >= TARGET_EVENTS_PER_S,
        },
        {
            "target": "acknowledgement p99 < 50 ms at half load",
            "value": half["ack_latency_ms"]["p99"],
            "ok": half["ack_latency_ms"]["p99"] < TARGET_HALF_LOAD_P99_MS,
        },
    ]


def print_report(result: dict[str, Any]) -> None:
    m = result["machine"]
    base = {b["method"]: b for b in result["baseline"]["methods"]}
    full = result["e2e"]["full_load"]
    half = result["e2e"]["half_load"]
    v = m["versions"]

    def lat(d: dict[str, float]) -> str:
        return f"p50 {d['p50']:.1f} ms, p95 {d['p95']:.1f} ms, p99 {d['p99']:.1f} ms" \
               f" (max {d['max']:.1f})"

    ci = base["client.insert"]
    raw = base["raw_insert JSONCompactEachRow"]
    plain = base.get("raw_insert JSON, no materialized views")
    views = result["baseline"].get("materialized_views", "?")
    lines = [
        "",
        f"Quietly ingest benchmark, {result['started']}",
        f"machine: {m['cpus']} CPUs, {m['platform']}; Python {v['python']}, chdb {v['chdb']}"
        f" (engine {result['baseline']['engine_version']}), clickhouse-connect"
        f" {v['clickhouse-connect']}, aiohttp {v['aiohttp']}, msgspec {v['msgspec']}",
        f"run: {result['params']['events']:,} events, batch {result['params']['batch']},"
        f" concurrency {result['params']['concurrency']}",
        "",
        "Baseline (embedded ClickHouse, same rows, 10,000-row inserts, row building untimed)",
        f"  client.insert (lists)                {ci['rows_per_s']:>12,.0f} rows/s"
        f"   (p50 {ci['insert_ms_p50']:.0f} ms per insert)",
        f"  raw_insert JSONCompactEachRow        {raw['rows_per_s']:>12,.0f} rows/s"
        f"   (p50 {raw['insert_ms_p50']:.0f} ms per insert)",
        *([f"  same, table without its views        {plain['rows_per_s']:>12,.0f} rows/s"
           f"   (the {views} materialized views cost"
           f" {raw['seconds'] / plain['seconds']:.1f}x; not a baseline)"] if plain else []),
        f"  other processes' CPU meanwhile       {result['baseline']['other_cpu_seconds']:.1f} s",
        "",
        "End to end (HTTP -> spool fsync -> ClickHouse, until SELECT count() sees all)",
        f"  events/s stored                      {full['events_per_s']:>12,.0f}"
        f"   ({full['stored_seconds']:.2f} s)",
        f"  events/s acknowledged                {full['acked_events_per_s']:>12,.0f}"
        f"   ({full['ack_seconds']:.2f} s)",
        f"  ratio to client.insert               {result['ratio_e2e_to_client_insert']:>12.2f}",
        f"  ratio to raw JSONCompactEachRow      {result['ratio_e2e_to_raw_insert']:>12.2f}",
        f"  ack latency, full load               {lat(full['ack_latency_ms'])}",
        f"  collector CPU                        {full['collector_cpu_seconds']:.1f} s"
        f" ({full['collector_cpu_us_per_event']:.1f} us/event); bench client CPU"
        f" {full['bench_cpu_seconds']:.1f} s; max spool backlog"
        f" {full['max_spool_backlog_rows']:,} rows; {full.get('inserts', 0)} inserts",
        f"  other processes' CPU meanwhile       {full['other_cpu_seconds']:.1f} s"
        " (noise: should be near 0)",
        "  collector threads, cores (nice)      "
        + _threads_line(full.get("collector_threads", [])),
        "",
        f"Half load ({half['target_events_per_s']:,.0f} events/s for {half['seconds']:.1f} s,"
        f" achieved {half['achieved_events_per_s']:,.0f})",
        f"  ack latency                          {lat(half['ack_latency_ms'])}",
        f"  send lag (bench loop)                p99 {half['send_lag_ms']['p99']:.1f} ms;"
        f" collector CPU {half['collector_cpu_utilisation'] * 100:.0f}% of a core;"
        f" stored {half['stored_lag_after_last_ack_ms']:.0f} ms after the last ack;"
        f" other processes' CPU {half['other_cpu_seconds']:.1f} s",
        "  collector threads, cores (nice)      "
        + _threads_line(half.get("collector_threads", [])),
        "",
        "Targets",
    ]
    for t in result["targets"]:
        value = t["value"]
        shown = f"{value:,.0f}" if value >= 1000 else f"{value:.2f}"
        lines.append(f"  {'PASS' if t['ok'] else 'MISS'}  {t['target']}: {shown}")
    if m["cpus"] != 2:
        lines.append(f"  (note: the targets are for 2 cores; this machine has {m['cpus']})")
    code = result["code"]
    where = code["collector_path"]
    if where.startswith("git archive"):
        lines.append(f"\ncollector code: {where} (committed code only)")
    else:
        local = {"": "clean", "?": "unknown"}.get(code["collector_changes"],
                                                   "with uncommitted changes")
        lines.append(f"\ncollector code: {where} (commit {code['commit']}, work tree {local})")
    lines.append(f"results: {result['results_file']}")
    print("\n".join(lines), flush=True)


# -- main -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=None,
                   help="events for the baseline and the full-load phase"
                        " (default 300000, 20000 with --quick)")
    p.add_argument("--batch", type=int, default=100, help="events per request (default 100)")
    p.add_argument("--concurrency", type=int, default=32,
                   help="requests in flight at full load (default 32)")
    p.add_argument("--half-load-seconds", type=float, default=None,
                   help="length of the half-load phase (default 10, 3 with --quick)")
    p.add_argument("--half-load-rate", type=float, default=None, metavar="EVENTS_PER_S",
                   help="rate of the half-load phase (default: half the full-load rate"
                        " measured in the same run; set it to compare latencies of two"
                        " versions at the same load)")
    p.add_argument("--quick", action="store_true", help="small, CI-friendly run")
    p.add_argument("--seed", type=int, default=1, help="event generator seed")
    p.add_argument("--skip-baseline", action="store_true",
                   help="end-to-end phases only (no ratio; for profiling the collector)")
    p.add_argument("--cprofile", type=Path, default=None,
                   help="run the collector under cProfile, writing stats to this file")
    p.add_argument("--py-spy", type=Path, default=None, metavar="FILE",
                   help="sample the collector with py-spy during the full-load phase and"
                        " write collapsed stacks to FILE (needs py-spy installed)")
    p.add_argument("--py-spy-gil", action="store_true",
                   help="with --py-spy: sample only the thread holding the GIL")
    p.add_argument("--commit", default=None, metavar="REV",
                   help="benchmark the collector as committed at REV (git archive into the"
                        " temp dir) instead of the working tree")
    p.add_argument("--wait-idle", type=float, default=30.0, metavar="SECONDS",
                   help="before each phase, wait up to this long for other processes to stop"
                        " using the CPUs (default 30; 0 to skip)")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a collector setting for the end-to-end phases, such as"
                        " flush_rows=100000 (repeatable; docs/configuration.md)")
    p.add_argument("--baseline-worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.events is None:
        args.events = 20_000 if args.quick else 300_000
    if args.half_load_seconds is None:
        args.half_load_seconds = 3.0 if args.quick else 10.0
    if args.events < 1 or args.batch < 1 or args.concurrency < 1:
        p.error("--events, --batch and --concurrency must be positive")
    for item in args.set:
        name, eq, _ = item.partition("=")
        if not eq or not name.isidentifier():
            p.error(f"--set {item!r}: expected NAME=VALUE, such as flush_rows=100000")
    return args


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM into an exception so the finally blocks stop the collector.
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC)
    base = started.replace(microsecond=started.microsecond // 1000 * 1000)
    others = wait_idle(args.wait_idle)
    work = Path(tempfile.mkdtemp(prefix="quietly-bench-"))
    collector: CollectorProcess | None = None
    snapshot_commit: str | None = None
    try:
        if args.commit:
            snapshot_commit = snapshot(args.commit, work / "src")
            print(f"collector code: commit {snapshot_commit} (git archive)", flush=True)
        if args.skip_baseline:
            baseline: dict[str, Any] = {"engine_version": "?", "other_cpu_seconds": math.nan,
                                        "methods": [
                {"method": "client.insert", "rows_per_s": math.nan, "insert_ms_p50": math.nan},
                {"method": "raw_insert JSONCompactEachRow", "rows_per_s": math.nan,
                 "insert_ms_p50": math.nan},
            ]}
        else:
            print(f"baseline: {args.events:,} rows into embedded ClickHouse ...", flush=True)
            machine0, own0 = machine_busy_seconds(), os.times()
            baseline = run_baseline(args.events, args.seed, base, work)
            machine1, own1 = machine_busy_seconds(), os.times()
            mine = sum(own1[:4]) - sum(own0[:4])  # this process and its children
            baseline["other_cpu_seconds"] = _others(machine1 - machine0, mine)
        wait_idle(args.wait_idle)
        print("end to end: starting quietly serve ...", flush=True)
        collector = CollectorProcess(work / "collector", work / "collector.log", args.cprofile)
        collector.start()
        print(f"  collector at {collector.url} (pid {collector.pid})", flush=True)
        cfg = E2EConfig(
            events=args.events,
            batch=args.batch,
            concurrency=args.concurrency,
            half_load_seconds=args.half_load_seconds,
            half_load_rate=args.half_load_rate,
            base=base,
            seed=args.seed,
            pool=Pool.make(),
            py_spy=args.py_spy.resolve() if args.py_spy else None,
            py_spy_gil=args.py_spy_gil,
        )
        try:
            e2e = asyncio.run(run_e2e(cfg, collector))
        except (aiohttp.ClientError, TimeoutError) as exc:
            why = f"HTTP error talking to the collector: {exc!r}; {collector.tail()}"
            raise BenchError(why) from exc
    finally:
        if collector is not None:
            collector.stop()
        shutil.rmtree(work, ignore_errors=True)
    rates = {b["method"]: b["rows_per_s"] for b in baseline["methods"]}
    eps = e2e["full_load"]["events_per_s"]
    result: dict[str, Any] = {
        "benchmark": "ingest",
        "started": started.isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "versions": versions("chdb", "clickhouse-connect", "aiohttp", "msgspec"),
        },
        "other_processes_cores_at_start": others,
        "code": _code_info(snapshot_commit),
        "params": {
            "events": args.events,
            "batch": args.batch,
            "concurrency": args.concurrency,
            "half_load_seconds": args.half_load_seconds,
            "half_load_rate": args.half_load_rate,
            "quick": args.quick,
            "baseline_chunk_rows": BASELINE_CHUNK,
            "collector_settings": dict(_COLLECTOR_SETTINGS),
        },
        "baseline": baseline,
        "e2e": e2e,
        "ratio_e2e_to_client_insert": eps / rates["client.insert"],
        "ratio_e2e_to_raw_insert": eps / rates["raw_insert JSONCompactEachRow"],
    }
    result["targets"] = _targets(result)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.baseline_worker is not None:
        params = json.loads(args.baseline_worker)
        out = baseline_worker(params)
        Path(params["out"]).write_text(json.dumps(out))
        return 0
    signal.signal(signal.SIGTERM, _on_sigterm)
    _COLLECTOR_SETTINGS.update(item.split("=", 1) for item in args.set)
    try:
        result = run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted (collector stopped, temporary files removed)", file=sys.stderr)
        return 130
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.results_dir / f"ingest-{stamp}.json"
    result["results_file"] = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
