"""The ingest benchmark's end-to-end phases against a running collector: the HTTP
client, closed-loop (full load) and open-loop (half load) senders, py-spy sampling,
and ``run_e2e``, which measures events/s stored, acknowledgement latency and the
collector's CPU."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.ingest_collector import (
    CollectorProcess,
    _others,
    _thread_cores,
    _thread_ticks,
)
from bench.ingest_common import ADMIN_TOKEN, WRITE_KEY, BenchError, _percentile
from bench.ingest_events import Pool, make_bodies
from bench.machine import machine_busy_seconds

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

    async def writer_counts(self) -> tuple[int, int]:
        """The writer's rows inserted and inserts so far (``/v1/stats``)."""
        stats = await self.stats()
        return int(stats.get("inserted_rows", 0)), int(stats.get("inserts", 0))

    async def inserts_since(self, rows0: int, inserts0: int, rows: int) -> int:
        """Inserts since (rows0, inserts0), once the writer counts ``rows`` more rows: a
        SELECT can see an insert's rows a moment before the writer counts the insert."""
        deadline = time.monotonic() + 5.0
        while True:
            now_rows, now_inserts = await self.writer_counts()
            if now_rows - rows0 >= rows or time.monotonic() > deadline:
                return now_inserts - inserts0
            await asyncio.sleep(0.01)

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
        rows0, inserts0 = await client.writer_counts()
        profiler = _start_py_spy(collector.pid, cfg.py_spy, cfg.py_spy_gil) if cfg.py_spy else None
        with _no_gc():  # it collects once first, before the clock starts
            cpu0, bench_cpu0 = collector.cpu_seconds(), time.process_time()
            machine0 = machine_busy_seconds()
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
        machine1 = machine_busy_seconds()
        if profiler is not None:
            _stop_py_spy(profiler)
        inserts = await client.inserts_since(rows0, inserts0, cfg.events)
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
            machine0 = machine_busy_seconds()
            threads0 = _thread_ticks(collector.pid)
            sent, start, t_end = await open_loop(client, bodies, counts, interval)
        threads1 = _thread_ticks(collector.pid)
        cpu1, bench_cpu1 = collector.cpu_seconds(), time.process_time()
        machine1 = machine_busy_seconds()
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
