"""The ingest benchmark's baseline: the embedded ClickHouse alone, fed the rows the
collector would store, through ``client.insert`` and through ``raw_insert`` of
JSONCompactEachRow bytes (and into a copy of ``events`` without its materialized
views). ``run_baseline`` migrates a fresh directory and runs ``baseline_worker`` in a
subprocess of bench/ingest.py (``--baseline-worker``: one chdb directory per
process)."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from bench.ingest_collector import _env
from bench.ingest_common import BASELINE_CHUNK, DATABASE, PROJECT, BenchError, _percentile
from bench.ingest_events import Pool, WireEvent, _encoder, generate

# -- baseline (runs in its own process) ------------------------------------------------


def _pseudonym(secret: bytes, raw: bytes) -> int:
    return int.from_bytes(hmac.new(secret, raw, hashlib.sha256).digest()[:8], "big")


def _stored_rows(
    events: Sequence[WireEvent], base: datetime, hashes: dict[uuid.UUID, int]
) -> tuple[list[list[Any]], bytes]:
    """The rows the collector would store, as lists and as JSONCompactEachRow bytes."""
    lists: list[list[Any]] = []
    lines: list[bytes] = []
    for ev in events:
        c = ev.context
        props = _encoder.encode(ev.props)
        values: list[Any] = [
            ev.event_id,
            PROJECT,
            ev.event,
            1,
            hashes[ev.install_id],
            hashes[ev.session_id],
            ev.ts,
            ev.ts,
            base,
            base,
            "sent_at_skew",
            c.app,
            c.app_version,
            c.os,
            c.os_version,
            c.locale,
            c.sdk,
            c.sdk_version,
            c.consent,
        ]
        # Encoded like the collector's array-like Row struct: one JSON array per line.
        lines.append(_encoder.encode([*values, msgspec.Raw(props)]))
        values.append(props.decode())
        lists.append(values)
    return lists, b"\n".join(lines) + b"\n"


def _collector(*modules: str) -> Any:
    """The first of these collector modules that exists: --commit may name a commit
    from before the collector was re-foldered by stage."""
    for module in modules:
        try:
            return importlib.import_module(f"quietly_collector.{module}")
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(f"none of {modules} in the collector under test")


def _method_result(name: str, rows: int, times: list[float]) -> dict[str, Any]:
    total = sum(times)
    return {
        "method": name,
        "rows": rows,
        "inserts": len(times),
        "seconds": total,
        "rows_per_s": rows / total,
        "insert_ms_p50": _percentile(times, 50) * 1000,
        "insert_ms_max": max(times) * 1000,
    }


def _count(client: Any) -> int:
    return int(client.query("SELECT count() FROM events").result_rows[0][0])


def baseline_worker(params: dict[str, Any]) -> dict[str, Any]:
    import clickhouse_connect

    # The collector's own column order and insert settings (imported dynamically: the
    # collector package ships no py.typed marker).
    event_columns: tuple[str, ...] = tuple(_collector("storage.rows", "ingest").EVENT_COLUMNS)
    insert_settings: dict[str, Any] = dict(
        _collector("storage.store", "store").INSERT_SETTINGS)
    n: int = params["events"]
    chunk: int = params["chunk"]
    base = datetime.fromisoformat(params["base"])
    pool = Pool.make()
    secret = b"bench-pseudonym-secret-0123456789"
    hashes = {i: _pseudonym(secret, i.bytes) for i in pool.installs}
    hashes.update({s: _pseudonym(secret, s.bytes) for ss in pool.sessions for s in ss})
    client = clickhouse_connect.get_client(dsn=f"chdb://{params['chdb_dir']}", database=DATABASE)
    engine_version = str(client.command("SELECT version()"))
    columns = list(event_columns)
    client.command("CREATE TABLE IF NOT EXISTS bench_warmup AS events")

    def chunks() -> Iterator[tuple[list[list[Any]], bytes]]:
        events = generate(params["seed"], n, base, pool)
        for start in range(0, n, chunk):
            part = [next(events) for _ in range(min(chunk, n - start))]
            yield _stored_rows(part, base, hashes)

    # Warm both paths (first-insert costs) on a scratch table.
    warm_lists, warm_bytes = next(chunks())
    client.insert("bench_warmup", warm_lists, column_names=columns, settings={"async_insert": 0})
    client.raw_insert(
        "bench_warmup", columns, insert_block=warm_bytes, fmt="JSONCompactEachRow",
        settings={**insert_settings, "insert_deduplication_token": "warm"},
    )
    client.command("DROP TABLE bench_warmup")

    results: list[dict[str, Any]] = []
    # Standard path: Python values encoded by clickhouse-connect (Native format).
    # async_insert=0 on both paths, as the collector does (chdb defaults to async inserts).
    times: list[float] = []
    for lists, _ in chunks():
        started = time.perf_counter()
        client.insert("events", lists, column_names=columns, settings={"async_insert": 0})
        times.append(time.perf_counter() - started)
    stored = _count(client)
    if stored != n:
        raise BenchError(f"client.insert baseline stored {stored} of {n} rows")
    results.append(_method_result("client.insert", n, times))

    def raw_inserts(table: str) -> list[float]:
        times = []
        for k, (_, data) in enumerate(chunks()):
            settings = {**insert_settings, "insert_deduplication_token": f"{table}:bench-{k}"}
            started = time.perf_counter()
            client.raw_insert(
                table, columns, insert_block=data, fmt="JSONCompactEachRow", settings=settings
            )
            times.append(time.perf_counter() - started)
        return times

    client.command("TRUNCATE TABLE events")
    # The collector's path: JSONCompactEachRow bytes, its insert settings and tokens.
    times = raw_inserts("events")
    stored = _count(client)
    if stored != n:
        raise BenchError(f"raw_insert baseline stored {stored} of {n} rows")
    results.append(_method_result("raw_insert JSONCompactEachRow", n, times))

    # The same path into a copy of the table without its materialized views: how much
    # of the engine's time the metric aggregates take (not a baseline of the ratio).
    client.command("CREATE TABLE bench_plain AS events")
    times = raw_inserts("bench_plain")
    client.command("DROP TABLE bench_plain")
    results.append(_method_result("raw_insert JSON, no materialized views", n, times))
    views = int(client.query("SELECT count() FROM system.tables WHERE database ="
                             " currentDatabase() AND engine = 'MaterializedView'"
                             ).result_rows[0][0])
    client.close()
    return {"engine_version": engine_version, "methods": results, "materialized_views": views}


def run_baseline(events: int, seed: int, base: datetime, work: Path) -> dict[str, Any]:
    data_dir = work / "baseline"
    mig = subprocess.run(
        [sys.executable, "-m", "quietly_collector", "migrate", "--data-dir", str(data_dir)],
        capture_output=True, text=True, env=_env(), cwd=work, timeout=300, check=False,
    )
    if mig.returncode != 0:
        raise BenchError(f"quietly migrate failed: {mig.stderr.strip() or mig.stdout.strip()}")
    out = work / "baseline.json"
    params = {
        "events": events,
        "chunk": BASELINE_CHUNK,
        "seed": seed,
        "base": base.isoformat(),
        "chdb_dir": str((data_dir / "clickhouse").resolve()),
        "out": str(out),
    }
    script = Path(__file__).resolve().with_name("ingest.py")  # its --baseline-worker
    proc = subprocess.run(
        [sys.executable, str(script), "--baseline-worker", json.dumps(params)],
        capture_output=True, text=True, env=_env(), cwd=work, timeout=1800, check=False,
    )
    if proc.returncode != 0 or not out.exists():
        raise BenchError(f"baseline subprocess failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result
