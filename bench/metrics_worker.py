"""The metrics benchmark's worker, run in a subprocess of its own (chdb allows one data
directory per process): it migrates a fresh store, loads the synthetic data, measures
the engine's floor, then times and checks every metric's view against its raw query.
Also the noise checks (CPU other processes use) and the timing helpers it needs."""

from __future__ import annotations

import math
import os
import statistics
import time
from datetime import timedelta
from typing import Any

from bench.machine import machine_busy_seconds
from bench.metrics_common import (
    DATABASE,
    TARGET_BY_RATIO,
    TARGET_RATIO,
    TARGET_VIEW_MS,
    BenchError,
)
from bench.metrics_compare import compare
from bench.metrics_data import DAYS, LOAD_CHUNK, SEGMENTS_SQL, START, load_sql
from bench.metrics_raw import PERIOD_VIEWS, RAW, RAW_VIEWS, view_sql
from bench.metrics_raw_flows import Run, query_time_runs

FUNNEL_STEPS = ("job_started", "job_step", "job_completed")


# -- the worker (its own process: one chdb directory per process) -------------------------




def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Noise:
    """CPU other processes use while a phase runs: the machine is shared."""

    def __init__(self) -> None:
        self.machine = machine_busy_seconds()
        self.own = _own_cpu_seconds()
        self.wall = time.monotonic()

    def cores(self) -> float:
        wall = time.monotonic() - self.wall
        other = machine_busy_seconds() - self.machine - (_own_cpu_seconds() - self.own)
        return max(0.0, other) / wall if wall > 0 else 0.0


def _say(msg: str) -> None:
    print(msg, flush=True)


def wait_idle(limit: float, threshold: float = 0.15) -> float:
    """Wait up to ``limit`` seconds for other processes to leave the CPUs alone; returns
    the cores' worth they used in the last second sampled."""
    deadline = time.monotonic() + limit
    waited = False
    while True:
        noise = Noise()
        time.sleep(1.0)
        others = noise.cores()
        if others <= threshold or time.monotonic() >= deadline:
            break
        if not waited:
            _say(f"waiting for other processes to go quiet ({others:.2f} cores busy) ...")
            waited = True
    if others > threshold:
        _say(f"warning: other processes are using {others:.2f} cores; figures will be noisy")
    return others


def _table_sizes(store: Any) -> list[dict[str, Any]]:
    _, rows = store.query(
        "SELECT table, sum(rows), count(), sum(bytes_on_disk) FROM system.parts"
        " WHERE active AND database = currentDatabase()"
        " AND (table = 'events' OR startsWith(table, 'agg_'))"
        " GROUP BY table ORDER BY table"
    )
    return [{"table": r[0], "rows": int(r[1]), "parts": int(r[2]), "bytes": int(r[3])}
            for r in rows]


def _settle(store: Any, limit: float) -> float:
    """Wait (up to ``limit`` s) for background merges to finish: a merge running during
    the timed queries would take a core from them."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        _, rows = store.query("SELECT count() FROM system.merges")
        if int(rows[0][0]) == 0:
            break
        time.sleep(1.0)
    return time.monotonic() - started


def _timed(store: Any, sql: str | Run, params: dict[str, Any]) -> tuple[float, float, Any]:
    """Wall and CPU milliseconds of one query (or of a metric built at query time, a
    Run), and its answer. chdb runs the query in this process, so process CPU time is
    the engine's (all its threads): a figure that other processes on a shared machine
    disturb much less than wall time."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = sql() if callable(sql) else store.query(sql, params)
    return (time.perf_counter() - wall0) * 1000, (time.process_time() - cpu0) * 1000, result


FLOOR_TABLE = "bench_floor"
FLOOR_SQL = {
    "select_1": "SELECT 1",
    # The cheapest query a view could be: a GROUP BY over a two-row MergeTree.
    "table": (f"SELECT d, app, sum(n) FROM {FLOOR_TABLE} WHERE d BETWEEN {{since:Date}} AND"
              " {until:Date} GROUP BY d, app ORDER BY d, app"),
}


def engine_floor(store: Any, runs: int = 25) -> dict[str, float]:
    """The engine's fixed cost per query, in this run: medians of ``runs`` calls of
    ``SELECT 1`` and of the simplest aggregate over a two-row MergeTree. No view can
    answer faster than the latter, so raw ms over it bounds the ratio any view could
    reach (docs/performance.md, "The engine's fixed cost per query")."""
    store.write_command(f"CREATE TABLE IF NOT EXISTS {FLOOR_TABLE} (d Date, app String, n UInt64)"
                        " ENGINE = MergeTree ORDER BY (d, app)")
    store.write_command(f"INSERT INTO {FLOOR_TABLE} VALUES ('2026-10-01', 'a', 1),"
                        " ('2026-10-02', 'b', 2)")
    qp = {"since": START, "until": START + timedelta(days=DAYS - 1)}
    floor: dict[str, float] = {}
    try:
        for name, sql in FLOOR_SQL.items():
            _timed(store, sql, qp)
            floor[name] = statistics.median(_timed(store, sql, qp)[0] for _ in range(runs))
    finally:
        store.write_command(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
    return floor


def load(store: Any, events: int, block_rows: int) -> dict[str, Any]:
    from quietly_collector.storage.store import INSERT_SETTINGS

    settings = {
        k: v for k, v in INSERT_SETTINGS.items()
        if k in ("async_insert", "deduplicate_blocks_in_dependent_materialized_views")
    }
    settings.update(
        max_block_size=block_rows,
        min_insert_block_size_rows=block_rows,
        min_insert_block_size_bytes=0,
        max_insert_block_size=block_rows,
    )
    chunks: list[float] = []
    noise = Noise()
    started = time.perf_counter()
    for first in range(0, events, LOAD_CHUNK):
        t0 = time.perf_counter()
        store.write_command(load_sql(first, min(LOAD_CHUNK, events - first)), settings)
        chunks.append(time.perf_counter() - t0)
        done = first + min(LOAD_CHUNK, events - first)
        _say(f"  loaded {done:>11,} events ({done / (time.perf_counter() - started):,.0f}/s)")
    seconds = time.perf_counter() - started
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds,
            "chunk_seconds": chunks, "block_rows": block_rows,
            "other_processes_cores": noise.cores()}


def worker(params: dict[str, Any]) -> dict[str, Any]:
    from quietly_collector.insights.metrics import METRICS, NOT_VIEWS, parse_query, view_select
    from quietly_collector.insights.metrics import run as run_metric
    from quietly_collector.settings import load_settings
    from quietly_collector.storage.migrations import migrate
    from quietly_collector.storage.store import Store

    settings = load_settings(env={}, overrides={"data_dir": params["data_dir"],
                                                "database": DATABASE})
    store = Store(settings)
    store.connect()
    try:
        migrate(store, settings)
        engine = str(store.query("SELECT version()")[1][0][0])
        wait_idle(params["wait_idle"])
        _say(f"loading {params['events']:,} events (INSERT ... SELECT FROM numbers,"
             f" blocks of {params['block_rows']:,} rows) ...")
        loaded = load(store, params["events"], params["block_rows"])
        store.write_command(SEGMENTS_SQL)
        installs = int(store.query("SELECT count() FROM events WHERE event = 'segments'")[1][0][0])
        settled = _settle(store, params["settle_seconds"])
        if params["optimize"]:
            for t in _table_sizes(store):
                store.write_command(f"OPTIMIZE TABLE {t['table']} FINAL")
        cycle: dict[str, Any] | None = None
        if params["maintenance"]:
            # The collector's own maintenance cycle, as it runs every hour (it merges the
            # aggregate tables left in several parts; events is left as it is).
            from quietly_collector.storage.maintenance import run_gc

            cycle = run_gc(store).as_json()
        stored = int(store.query("SELECT count() FROM events")[1][0][0])
        if stored != params["events"] + installs:
            raise BenchError(f"stored {stored:,} events of {params['events'] + installs:,}")
        sizes = _table_sizes(store)

        until = START + timedelta(days=DAYS - 1)
        windows = [(f"{DAYS} days", START, until)]
        windows += [(f"{d} days", until - timedelta(days=d - 1), until)
                    for d in params["windows"] if d < DAYS]
        runs: int = params["runs"]
        queries: list[dict[str, Any]] = []
        idle_before_queries = wait_idle(params["wait_idle"])
        noise = Noise()
        floor = engine_floor(store)
        _say(f"engine floor: SELECT 1 {floor['select_1']:.2f} ms, the simplest aggregate over"
             f" a two-row MergeTree {floor['table']:.2f} ms")
        # What any breakdown adds at least: each install's segment, to be joined.
        # One segment other than tenure is read as quietly query reads it: the
        # _by_segment views, joining metric_install_segment (storage/views.py).
        one = params["by"] != "tenure"
        by_view, seg_view = (("_by_segment", "metric_install_segment") if one else
                             ("_by", "metric_install_segments"))
        seg_sql = (f"SELECT sum(cityHash64(seg1)) FROM {seg_view}(by = {{by:Array(String)}})"
                   if one else
                   f"SELECT sum(cityHash64(seg1)) FROM {seg_view}(until = {{until:Date}},"
                   " by = {by:Array(String)}, where = {where:Array(String)})")
        seg_p: dict[str, Any] = {"until": START + timedelta(days=DAYS - 1),
                                 "by": [params["by"]], "where": []}
        _timed(store, seg_sql, seg_p)
        floor["segments"] = statistics.median(_timed(store, seg_sql, seg_p)[0]
                                              for _ in range(runs * 3))
        _say(f"each install's {params['by']} ({seg_view} alone):"
             f" {floor['segments']:.2f} ms")
        for label, since, end in windows:
            qp: dict[str, Any] = {"since": since, "until": end, "app": params["app"]}
            for metric in METRICS:
                if metric == "funnel" or (params["only"] and metric not in params["only"]):
                    continue
                if metric in RAW_VIEWS:  # no aggregate to compare: timed below, alone
                    continue
                mp = {**qp, "period": "week"} if metric in PERIOD_VIEWS else qp
                # The same query broken down by one segment (target: at most 3x the plain
                # one); paths and experiment take no breakdown.
                bp = {**mp, "by": [params["by"]]} if one else {**mp, "by": [params["by"]],
                                                               "where": []}
                segmented = metric not in NOT_VIEWS
                vsql: str | Run | None
                rsql: str | Run
                if metric in NOT_VIEWS:  # built at query time: the same Python, two sources
                    vsql, rsql = query_time_runs(store, metric, qp)
                    dsql: str | Run = vsql
                    bsql: str | Run | None = None
                else:
                    if metric not in RAW:
                        raise BenchError(f"metric {metric!r} has no raw equivalent in the"
                                         " benchmark")
                    # The view's stored SELECT, as quietly query runs it (metrics.run, with
                    # its cache warm), and the engineer's SELECT * FROM metric_<name>(...).
                    vsql = view_select(store, f"metric_{metric}")
                    bsql = view_select(store, f"metric_{metric}{by_view}")
                    if vsql is None or bsql is None:
                        raise BenchError(f"metric_{metric} or metric_{metric}{by_view} is not"
                                         " a view")
                    dsql, rsql = view_sql(metric), RAW[metric]
                # Warm-up (first-read costs, compiled expressions), and the answers to check.
                vres = _timed(store, vsql, mp)[2]
                dres = _timed(store, dsql, mp)[2]
                rres = _timed(store, rsql, mp)[2]
                bres = _timed(store, bsql, bp)[2] if bsql is not None else ([], [])
                bt: list[float] = []
                vt: list[float] = []
                vc: list[float] = []
                dt: list[float] = []
                rt: list[float] = []
                rc: list[float] = []
                for _ in range(runs):  # alternate, so noise falls on all alike
                    wall, cpu, _ = _timed(store, vsql, mp)
                    vt.append(wall)
                    vc.append(cpu)
                    dt.append(_timed(store, dsql, mp)[0])
                    if bsql is not None:
                        bt.append(_timed(store, bsql, bp)[0])
                    wall, cpu, _ = _timed(store, rsql, mp)
                    rt.append(wall)
                    rc.append(cpu)
                check = compare(metric, vres, rres)
                # The two forms of one query: t-digest states merged in another order
                # (threads) may differ within the same tolerance as view and raw.
                if compare(metric, dres, vres)["status"] == "MISMATCH":
                    check = {"status": "MISMATCH",
                             "detail": "SELECT * FROM the view differs from its stored SELECT"}
                entry: dict[str, Any] = {
                    "metric": metric, "window": label, "since": since.isoformat(),
                    "until": end.isoformat(), "rows": len(vres[1]),
                    "view_ms": statistics.median(vt), "raw_ms": statistics.median(rt),
                    "direct_view_ms": statistics.median(dt),
                    "by": params["by"] if segmented else None,
                    "by_ms": statistics.median(bt) if bt else math.nan,
                    "by_rows": len(bres[1]),
                    "by_runs_ms": bt,
                    "view_cpu_ms": statistics.median(vc), "raw_cpu_ms": statistics.median(rc),
                    "view_runs_ms": vt, "direct_view_runs_ms": dt, "raw_runs_ms": rt,
                    "check": check,
                }
                entry["ratio"] = entry["raw_ms"] / entry["view_ms"]
                entry["cpu_ratio"] = entry["raw_cpu_ms"] / max(entry["view_cpu_ms"], 0.001)
                entry["ok_ratio"] = entry["ratio"] >= TARGET_RATIO
                entry["ok_view_ms"] = entry["view_ms"] < TARGET_VIEW_MS
                entry["by_ratio"] = entry["by_ms"] / entry["view_ms"]
                entry["ok_by"] = not segmented or entry["by_ratio"] <= TARGET_BY_RATIO
                # The best ratio any view could reach here: raw over the floor.
                entry["max_ratio"] = entry["raw_ms"] / floor["table"]
                # A breakdown adds at least the segments' own time: over 2x the view's,
                # no join could keep it within 3x.
                entry["by_in_reach"] = (not segmented or floor["segments"]
                                        <= (TARGET_BY_RATIO - 1) * entry["view_ms"])
                queries.append(entry)
                flag = "" if check["status"] != "MISMATCH" else f"   MISMATCH: {check['detail']}"
                _say(f"  {label:>8} {metric:<17} view {entry['view_ms']:8.1f} ms"
                     f"   raw {entry['raw_ms']:9.1f} ms   x{entry['ratio']:.1f}"
                     f"   by {params['by']} {entry['by_ms']:8.1f} ms ({entry['by_ratio']:.2f}x)"
                     f"{flag}")
        funnel: list[dict[str, Any]] = []
        for label, since, end in windows:
            q = parse_query("funnel", since.isoformat(), end.isoformat(), params["app"],
                            FUNNEL_STEPS)
            run_metric(store, q)
            ft: list[float] = []
            fc: list[float] = []
            for _ in range(runs):
                cpu0, wall0 = time.process_time(), time.perf_counter()
                _, rows = run_metric(store, q)
                ft.append((time.perf_counter() - wall0) * 1000)
                fc.append((time.process_time() - cpu0) * 1000)
            funnel.append({"window": label, "since": since.isoformat(), "until": end.isoformat(),
                           "steps": list(FUNNEL_STEPS), "raw_ms": statistics.median(ft),
                           "raw_cpu_ms": statistics.median(fc), "raw_runs_ms": ft,
                           "result": rows})
            _say(f"  {label:>8} funnel (raw only)     {statistics.median(ft):9.1f} ms")
        # Views over the raw events by design (delivery counts stored events): their own
        # time, nothing to compare.
        raw_views: list[dict[str, Any]] = []
        for label, since, end in windows:
            for metric in RAW_VIEWS:
                if params["only"] and metric not in params["only"]:
                    continue
                qv = parse_query(metric, since.isoformat(), end.isoformat(), params["app"])
                run_metric(store, qv)
                rv: list[float] = []
                for _ in range(runs):
                    wall0 = time.perf_counter()
                    run_metric(store, qv)
                    rv.append((time.perf_counter() - wall0) * 1000)
                raw_views.append({"metric": metric, "window": label,
                                  "view_ms": statistics.median(rv), "view_runs_ms": rv})
                _say(f"  {label:>8} {metric} (reads events)  {statistics.median(rv):9.1f} ms")
        query_noise = noise.cores()
    finally:
        store.close()
    return {"engine_version": engine, "load": loaded, "settle_seconds": settled,
            "maintenance": cycle, "floor_ms": floor,
            "tables": sizes, "queries": queries, "funnel": funnel, "raw_views": raw_views,
            "other_processes_cores_before_queries": idle_before_queries,
            "other_processes_cores_during_queries": query_noise}
