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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import hmac
import importlib
import importlib.util
import io
import json
import math
import os
import platform
import queue
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import msgspec

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

FEATURES = (
    "debugging",
    "refactor.rename",
    "search",
    "terminal",
    "git.commit",
    "format",
    "test.run",
    "completion",
)
POOL_SEED = 7
INSTALLS = 2_000
SESSIONS_PER_INSTALL = 3


class BenchError(Exception):
    """The benchmark could not run (not a missed target)."""


# -- the events ---------------------------------------------------------------------


class WireContext(msgspec.Struct, gc=False):
    app: str
    app_version: str
    os: str
    os_version: str
    locale: str
    sdk: str
    sdk_version: str
    consent: str


class WireProps(msgspec.Struct, gc=False):
    feature: str
    duration_ms: int
    success: bool


class WireEvent(msgspec.Struct, gc=False):
    event_id: uuid.UUID
    event: str
    ts: datetime
    install_id: uuid.UUID
    session_id: uuid.UUID
    context: WireContext
    props: WireProps


class WireBatch(msgspec.Struct, gc=False):
    sent_at: datetime
    events: list[WireEvent]


CONTEXT = WireContext(
    app="my-ide",
    app_version="1.4.2",
    os="linux",
    os_version="6.1",
    locale="en_US",
    sdk="quietly-python",
    sdk_version="0.1.0",
    consent="basic",
)
_encoder = msgspec.json.Encoder()


def _uuid4(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


@dataclass
class Pool:
    """Installs and their sessions, shared by every phase (as real traffic would be)."""

    installs: list[uuid.UUID]
    sessions: list[list[uuid.UUID]]

    @classmethod
    def make(cls) -> Pool:
        rng = random.Random(POOL_SEED)
        installs = [_uuid4(rng) for _ in range(INSTALLS)]
        sessions = [[_uuid4(rng) for _ in range(SESSIONS_PER_INSTALL)] for _ in installs]
        return cls(installs, sessions)


def generate(seed: int, n: int, base: datetime, pool: Pool) -> Iterator[WireEvent]:
    """``n`` feature_used events with unique ids, stamped in the 10 minutes before ``base``.

    Deterministic in ``seed``, so the baseline subprocess rebuilds the very same events.
    """
    rng = random.Random(seed)
    for _ in range(n):
        i = rng.randrange(INSTALLS)
        yield WireEvent(
            event_id=_uuid4(rng),
            event="feature_used",
            ts=base - timedelta(milliseconds=rng.randrange(600_000)),
            install_id=pool.installs[i],
            session_id=rng.choice(pool.sessions[i]),
            context=CONTEXT,
            props=WireProps(
                feature=rng.choice(FEATURES),
                duration_ms=rng.randrange(1, 60_000),
                success=rng.random() < 0.95,
            ),
        )


def make_bodies(seed: int, n: int, batch: int, base: datetime, pool: Pool) -> list[bytes]:
    """Request bodies of ``batch`` events each (the last may be shorter)."""
    bodies: list[bytes] = []
    events = generate(seed, n, base, pool)
    for start in range(0, n, batch):
        chunk = [next(events) for _ in range(min(batch, n - start))]
        bodies.append(_encoder.encode(WireBatch(sent_at=base, events=chunk)))
    return bodies


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


def _collector(module: str) -> Any:
    return importlib.import_module(f"quietly_collector.{module}")


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0-100) of unsorted values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


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
    event_columns: tuple[str, ...] = tuple(_collector("ingest").EVENT_COLUMNS)
    insert_settings: dict[str, Any] = dict(_collector("store").INSERT_SETTINGS)
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
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--baseline-worker", json.dumps(params)],
        capture_output=True, text=True, env=_env(), cwd=work, timeout=1800, check=False,
    )
    if proc.returncode != 0 or not out.exists():
        raise BenchError(f"baseline subprocess failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


# -- the collector subprocess ----------------------------------------------------------


# PYTHONPATH for the subprocesses when the collector runs from a ``--commit`` snapshot.
_SNAPSHOT_PATH: list[str] = []
# --set NAME=VALUE: collector settings, passed as QUIETLY_<NAME> (settings.env_name).
_COLLECTOR_SETTINGS: dict[str, str] = {}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIETLY_")}
    if _SNAPSHOT_PATH:
        env["PYTHONPATH"] = os.pathsep.join(
            [*_SNAPSHOT_PATH, *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    env["QUIETLY_WRITE_KEYS"] = f"{PROJECT}={WRITE_KEY}"
    env["QUIETLY_ADMIN_TOKEN"] = ADMIN_TOKEN
    for name, value in _COLLECTOR_SETTINGS.items():
        env["QUIETLY_" + name.upper()] = value
    return env


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_ticks(pid: int) -> dict[int, tuple[str, int, int]]:
    """Each thread of a process: (name, nice, CPU ticks so far)."""
    out: dict[int, tuple[str, int, int]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        out[int(task.name)] = (name, int(fields[16]), int(fields[11]) + int(fields[12]))
    return out


def _thread_cores(before: dict[int, tuple[str, int, int]],
                  after: dict[int, tuple[str, int, int]], seconds: float) -> list[list[Any]]:
    """Cores used between two snapshots by thread name and nice value, busiest first
    (threads started and ended in between are not seen)."""
    used: dict[tuple[str, int], int] = {}
    for tid, (name, nice, ticks) in after.items():
        key = (name, nice)
        used[key] = used.get(key, 0) + ticks - before.get(tid, (name, nice, 0))[2]
    tck = os.sysconf("SC_CLK_TCK")
    return [[name, nice, round(t / tck / seconds, 3)]
            for (name, nice), t in sorted(used.items(), key=lambda kv: -kv[1]) if t > 0]


def _machine_busy_seconds() -> float:
    """CPU time used by the whole machine (all CPUs, all processes) since boot."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _others(machine: float, *mine: float) -> float:
    """CPU seconds the rest of the machine used (clock-tick rounding can go below 0)."""
    return max(0.0, machine - sum(mine))


def _others_busy(seconds: float = 1.0) -> float:
    """Cores' worth of CPU that other processes use right now (noise check)."""
    busy0, own0 = _machine_busy_seconds(), time.process_time()
    time.sleep(seconds)
    return (_machine_busy_seconds() - busy0 - (time.process_time() - own0)) / seconds


class CollectorProcess:
    """``quietly serve`` on a free port; stopped with SIGTERM (then SIGKILL) on exit."""

    def __init__(self, data_dir: Path, log_path: Path, cprofile: Path | None) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.cprofile = cprofile
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self._log: Any = None

    def start(self, timeout: float = 120.0) -> None:
        prefix = [sys.executable]
        if self.cprofile is not None:
            prefix += ["-m", "cProfile", "-o", str(self.cprofile)]
        cmd = [
            *prefix, "-m", "quietly_collector", "serve",
            "--host", "127.0.0.1", "--port", "0",
            "--data-dir", str(self.data_dir), "--log-level", "warning",
        ]
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._log, text=True, env=_env(),
            cwd=self.data_dir.parent,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None

        def pump() -> None:
            # Keeps reading after start-up so the pipe never fills.
            for line in stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True, name="collector-stdout").start()
        deadline = time.monotonic() + timeout
        marker = "collector listening on "
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"collector not ready after {timeout:.0f}s; {self.tail()}")
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise BenchError(f"collector exited at start-up; {self.tail()}")
            if marker in line:
                self.url = line.split(marker, 1)[1].split()[0].rstrip("/")
                return

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.pid)

    def tail(self) -> str:
        try:
            text = self.log_path.read_text()
        except OSError:
            text = ""
        return "collector log:\n" + text[-3000:] if text else "collector log is empty"

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None


# -- HTTP load ------------------------------------------------------------------------


@dataclass
class Sent:
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    events: int = 0
    errors: list[str] = field(default_factory=list)


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url
        self._batch_headers = {
            "Authorization": f"Bearer {WRITE_KEY}",
            "Content-Type": "application/json",
        }
        self._admin_headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def post_batch(self, body: bytes, expected: int, sent: Sent) -> None:
        started = time.perf_counter()
        async with self.session.post(
            self.url + "/v1/batch", data=body, headers=self._batch_headers
        ) as resp:
            payload = await resp.read()
            status = resp.status
        sent.latencies.append(time.perf_counter() - started)
        if status != 200:
            sent.errors.append(f"HTTP {status}: {payload[:300]!r}")
            return
        answer = json.loads(payload)
        if answer.get("accepted") != expected or answer.get("rejected"):
            sent.errors.append(f"unexpected answer: {payload[:300]!r}")
            return
        sent.events += expected

    async def sql(self, query: str) -> list[list[Any]]:
        async with self.session.post(
            self.url + "/v1/sql", json={"sql": query}, headers=self._admin_headers
        ) as resp:
            payload = await resp.json()
            if resp.status != 200:
                raise BenchError(f"/v1/sql answered {resp.status}: {payload}")
        rows: list[list[Any]] = payload["rows"]
        return rows

    async def stats(self) -> dict[str, Any]:
        async with self.session.get(self.url + "/v1/stats", headers=self._admin_headers) as r:
            data: dict[str, Any] = await r.json()
            return data

    async def stored(self) -> int:
        return int((await self.sql("SELECT count() FROM events"))[0][0])

    async def wait_stored(self, target: int, timeout: float) -> float:
        """Poll until ``target`` rows are stored; returns the perf_counter() when seen."""
        deadline = time.perf_counter() + timeout
        while True:
            n = await self.stored()
            now = time.perf_counter()
            if n >= target:
                if n > target:
                    raise BenchError(f"{n} rows stored, expected {target}")
                return now
            if now > deadline:
                stats = await self.stats()
                raise BenchError(f"only {n} of {target} rows stored after {timeout:.0f}s: {stats}")
            await asyncio.sleep(0.01)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic GC in the load generator during a timed phase: a full collection of
    the bench's own heap (the generated bodies) paused its loop 10-30 ms, which its
    clocks counted as the collector's latency. Reference counting still frees."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def _body_events(bodies: Sequence[bytes], total: int, batch: int) -> list[int]:
    return [min(batch, total - i * batch) for i in range(len(bodies))]


async def _sample_backlog(client: Client, out: list[int], stop: asyncio.Event) -> None:
    """Spool backlog (acknowledged, not yet stored) every 250 ms."""
    while not stop.is_set():
        with contextlib.suppress(aiohttp.ClientError, KeyError):
            out.append(int((await client.stats())["spool"]["rows"]))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def closed_loop(
    client: Client, bodies: Sequence[bytes], counts: Sequence[int], concurrency: int
) -> Sent:
    """Send every body with ``concurrency`` requests in flight."""
    sent = Sent()
    order = iter(range(len(bodies)))

    async def worker() -> None:
        for i in order:
            await client.post_batch(bodies[i], counts[i], sent)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent


async def open_loop(
    client: Client, bodies: Sequence[bytes], counts: Sequence[int], interval: float
) -> tuple[Sent, float, float]:
    """Send body ``i`` at ``start + i * interval`` whatever the answers (no coordinated
    omission). Returns what was sent, the start and the time of the last acknowledgement."""
    sent = Sent()
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter() + 0.05
    for i, body in enumerate(bodies):
        due = start + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent.lags.append(max(0.0, time.perf_counter() - due))
        tasks.append(asyncio.create_task(client.post_batch(body, counts[i], sent)))
    await asyncio.gather(*tasks)
    return sent, start, time.perf_counter()


def _latency_ms(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": _percentile(values, 50) * 1000,
        "p95": _percentile(values, 95) * 1000,
        "p99": _percentile(values, 99) * 1000,
        "max": max(values) * 1000 if values else math.nan,
    }


def _start_py_spy(pid: int, out: Path, gil_only: bool) -> subprocess.Popen[bytes]:
    """Sample the collector during the full-load phase: every thread, idle included, or
    only the thread holding the GIL (``gil_only``)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    mode = ["--gil"] if gil_only else ["--idle", "--nonblocking"]
    proc = subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--output", str(out), "--format", "raw",
         "--rate", "250", "--threads", *mode],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    if proc.poll() is not None:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise BenchError(f"py-spy could not attach: {err.strip()}")
    return proc


def _stop_py_spy(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@dataclass
class E2EConfig:
    events: int
    batch: int
    concurrency: int
    half_load_seconds: float
    # Events/s of the half-load phase; None: half the full-load rate just measured.
    half_load_rate: float | None
    base: datetime
    seed: int
    pool: Pool
    py_spy: Path | None = None
    py_spy_gil: bool = False


async def run_e2e(cfg: E2EConfig, collector: CollectorProcess) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=max(cfg.concurrency, 256))
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        client = Client(session, collector.url)
        # Warm-up: open the connections, first-request and first-insert costs.
        warm_n = cfg.concurrency * cfg.batch
        warm = make_bodies(cfg.seed + 100, warm_n, cfg.batch, cfg.base, cfg.pool)
        sent = await closed_loop(client, warm, _body_events(warm, warm_n, cfg.batch),
                                 cfg.concurrency)
        if sent.errors:
            raise BenchError(f"warm-up failed: {sent.errors[0]}")
        stored_before = warm_n
        await client.wait_stored(stored_before, 60)

        # Full load: closed loop at the given concurrency, clock stops when all is stored.
        print(f"  generating {cfg.events:,} events ...", flush=True)
        bodies = make_bodies(cfg.seed, cfg.events, cfg.batch, cfg.base, cfg.pool)
        counts = _body_events(bodies, cfg.events, cfg.batch)
        print(f"  sending {len(bodies):,} requests, {cfg.concurrency} in flight ...", flush=True)
        backlog: list[int] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_backlog(client, backlog, stop))
        inserts0 = int((await client.stats()).get("inserts", 0))
        profiler = _start_py_spy(collector.pid, cfg.py_spy, cfg.py_spy_gil) if cfg.py_spy else None
        with _no_gc():  # it collects once first, before the clock starts
            cpu0, bench_cpu0 = collector.cpu_seconds(), time.process_time()
            machine0 = _machine_busy_seconds()
            threads0 = _thread_ticks(collector.pid)
            t0 = time.perf_counter()
            sent = await closed_loop(client, bodies, counts, cfg.concurrency)
        t_ack = time.perf_counter()
        threads_ack = _thread_ticks(collector.pid)
        cpu_ack, bench_cpu_ack = collector.cpu_seconds(), time.process_time()
        stop.set()
        await sampler
        if sent.errors:
            raise BenchError(f"{len(sent.errors)} failed requests, first: {sent.errors[0]}")
        t_stored = await client.wait_stored(stored_before + cfg.events, 300)
        cpu1, bench_cpu1 = collector.cpu_seconds(), time.process_time()
        machine1 = _machine_busy_seconds()
        if profiler is not None:
            _stop_py_spy(profiler)
        inserts = int((await client.stats()).get("inserts", 0)) - inserts0
        del bodies
        full_seconds = t_stored - t0
        full: dict[str, Any] = {
            "events": cfg.events,
            "requests": len(counts),
            "batch": cfg.batch,
            "concurrency": cfg.concurrency,
            "ack_seconds": t_ack - t0,
            "stored_seconds": full_seconds,
            "acked_events_per_s": cfg.events / (t_ack - t0),
            "events_per_s": cfg.events / full_seconds,
            "ack_latency_ms": _latency_ms(sent.latencies),
            "max_spool_backlog_rows": max(backlog, default=0),
            # Spans stored during the phase (0 from a collector without the stat).
            "inserts": inserts,
            "collector_cpu_seconds": cpu1 - cpu0,
            "collector_cpu_seconds_until_acked": cpu_ack - cpu0,
            "collector_cpu_us_per_event": (cpu1 - cpu0) / cfg.events * 1e6,
            "collector_threads": _thread_cores(threads0, threads_ack, t_ack - t0),
            "bench_cpu_seconds": bench_cpu1 - bench_cpu0,
            "bench_cpu_seconds_until_acked": bench_cpu_ack - bench_cpu0,
            # CPU used by everything else on the machine meanwhile (noise; 2 cores shared).
            "other_cpu_seconds": _others(machine1 - machine0, cpu1 - cpu0,
                                         bench_cpu1 - bench_cpu0),
        }
        stored_before += cfg.events

        # Half load: open loop at half the measured rate (or at the rate asked for, so
        # that two versions' latencies compare at the same load).
        rate = cfg.half_load_rate or full["events_per_s"] / 2
        n_req = max(1, math.ceil(cfg.half_load_seconds * rate / cfg.batch))
        n_half = n_req * cfg.batch
        interval = cfg.batch / rate
        print(f"  half load: {rate:,.0f} events/s ({1 / interval:,.0f} req/s)"
              f" for {cfg.half_load_seconds:g}s ...", flush=True)
        bodies = make_bodies(cfg.seed + 1, n_half, cfg.batch, cfg.base, cfg.pool)
        counts = _body_events(bodies, n_half, cfg.batch)
        with _no_gc():
            cpu0, bench_cpu0 = collector.cpu_seconds(), time.process_time()
            machine0 = _machine_busy_seconds()
            threads0 = _thread_ticks(collector.pid)
            sent, start, t_end = await open_loop(client, bodies, counts, interval)
        threads1 = _thread_ticks(collector.pid)
        cpu1, bench_cpu1 = collector.cpu_seconds(), time.process_time()
        machine1 = _machine_busy_seconds()
        if sent.errors:
            raise BenchError(f"{len(sent.errors)} failed requests, first: {sent.errors[0]}")
        t_stored = await client.wait_stored(stored_before + n_half, 300)
        half: dict[str, Any] = {
            "target_events_per_s": rate,
            "events": n_half,
            "requests": n_req,
            "seconds": t_end - start,
            "achieved_events_per_s": n_half / (t_end - start),
            "stored_lag_after_last_ack_ms": (t_stored - t_end) * 1000,
            "ack_latency_ms": _latency_ms(sent.latencies),
            "send_lag_ms": _latency_ms(sent.lags),
            "collector_cpu_utilisation": (cpu1 - cpu0) / (t_end - start),
            # [thread name, nice, cores]: who used the collector's CPU (priority.py).
            "collector_threads": _thread_cores(threads0, threads1, t_end - start),
            "other_cpu_seconds": _others(machine1 - machine0, cpu1 - cpu0,
                                         bench_cpu1 - bench_cpu0),
        }
        stats = await client.stats()
    return {"full_load": full, "half_load": half, "collector_stats": stats}


# -- report ---------------------------------------------------------------------------


def _threads_line(threads: list[list[Any]]) -> str:
    return ", ".join(f"{name} {cores:.2f} ({nice})" for name, nice, cores in threads[:5])


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("chdb", "clickhouse-connect", "aiohttp", "msgspec"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "?"
    return out


def _git(*cmd: str) -> str:
    try:
        proc = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, check=False)
    except OSError:
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def snapshot(rev: str, dest: Path) -> str:
    """Extract ``collector/`` and ``schemas/`` of ``rev`` into ``dest`` and make the
    subprocesses import them; returns the commit's short hash."""
    commit = _git("rev-parse", "--short", f"{rev}^{{commit}}")
    if not commit:
        raise BenchError(f"--commit {rev!r}: not a commit of {ROOT}")
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "collector", "schemas"],
        cwd=ROOT, capture_output=True, timeout=120, check=False,
    )
    if archive.returncode != 0:
        raise BenchError(f"git archive {commit} failed: {archive.stderr.decode()[-500:]}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    _SNAPSHOT_PATH[:] = [str(dest / "collector"), str(dest / "schemas")]
    return commit


def _code_info(snapshot_commit: str | None) -> dict[str, Any]:
    """Which collector code ran: the commit, local changes, and where it was imported from."""
    if snapshot_commit is not None:
        return {"commit": snapshot_commit, "collector_changes": "",
                "collector_path": f"git archive {snapshot_commit}"}
    spec = importlib.util.find_spec("quietly_collector")
    path = Path(spec.origin).parent if spec and spec.origin else None
    if path is None or not path.is_relative_to(ROOT):
        return {"commit": "?", "collector_changes": "?", "collector_path": str(path)}
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "collector_changes": _git("status", "--porcelain", "--", "collector", "schemas"),
        "collector_path": str(path),
    }


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


def wait_idle(limit: float, threshold: float = 0.15) -> float:
    """Wait up to ``limit`` seconds for other processes to leave the CPUs alone; returns
    the cores' worth they used in the last second sampled."""
    deadline = time.monotonic() + limit
    others = _others_busy()
    waited = False
    while others > threshold and time.monotonic() < deadline:
        if not waited:
            print(f"waiting for other processes to go quiet ({others:.2f} cores busy) ...",
                  flush=True)
            waited = True
        others = _others_busy()
    if others > threshold:
        print(f"warning: other processes are using {others:.2f} cores; figures will be noisy",
              flush=True)
    return others


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
            machine0, own0 = _machine_busy_seconds(), os.times()
            baseline = run_baseline(args.events, args.seed, base, work)
            machine1, own1 = _machine_busy_seconds(), os.times()
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
            "versions": _versions(),
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
