"""SIGKILL the collector at random moments while clients send at a steady rate, over
and over (and SIGTERM it now and then): every acknowledged event is stored exactly once.

The killed collector runs in a subprocess with its own data directory (one embedded
ClickHouse directory per process); the test process only talks HTTP to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import ADMIN_TOKEN, WRITE_KEY, body, event, headers

KILLS = 20
TERMS = 3  # graceful stops mixed in; they must exit 0 within the drain bound
CLIENTS = 4
BATCH = 20
INTERVAL = 0.04  # each client makes a batch every 40 ms: 2,000 events/s in all


@dataclass
class Proc:
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    starts: int = 0
    ready: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        env = {
            **os.environ,
            "QUIETLY_WRITE_KEYS": f"proj={WRITE_KEY}",
            "QUIETLY_ADMIN_TOKEN": ADMIN_TOKEN,
            "QUIETLY_FLUSH_INTERVAL_MS": "50",
        }
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "quietly_collector", "serve", "--port", "0",
             "--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )
        threading.Thread(target=self._watch, args=(self.proc, self.ready), daemon=True).start()
        self.starts += 1

    def _watch(self, proc: subprocess.Popen[bytes], ready: threading.Event) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode()
            if "listening on" in line:
                self.url = line.split("listening on ")[1].split()[0]
                ready.set()

    def wait_ready(self) -> None:
        assert self.ready.wait(60), "collector did not start"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self) -> float:
        """SIGTERM; the seconds it took to exit (after draining)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.terminate()
        assert self.proc.wait(timeout=30) == 0
        return time.monotonic() - started

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Client:
    """Like an SDK: batches are made at a steady rate and queued; the oldest is sent
    until it is acknowledged (a timeout or an error means: send it again)."""

    acked: set[str] = field(default_factory=set)
    sent: set[str] = field(default_factory=set)
    queue: list[list[dict[str, Any]]] = field(default_factory=list)
    producing: bool = True

    async def produce(self) -> None:
        while self.producing:
            events = [event() for _ in range(BATCH)]
            self.sent.update(e["event_id"] for e in events)
            self.queue.append(events)
            await asyncio.sleep(INTERVAL)

    async def send(self, collector: Proc) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
            while self.producing or self.queue:
                if not self.queue:
                    await asyncio.sleep(INTERVAL / 2)
                    continue
                events = self.queue[0]
                try:
                    async with s.post(collector.url + "/v1/batch", data=body(events),
                                      headers=headers()) as resp:
                        if resp.status == 200:
                            self.acked.update(e["event_id"] for e in events)
                            self.queue.pop(0)
                            continue
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)


async def _sql(url: str, query: str) -> list[list[Any]]:
    async with aiohttp.ClientSession() as s, s.post(
        url + "/v1/sql", data=json.dumps({"sql": query}),
        headers=headers(ADMIN_TOKEN),
    ) as resp:
        assert resp.status == 200, await resp.text()
        rows: list[list[Any]] = (await resp.json())["rows"]
        return rows


@pytest.mark.slow
async def test_sigkill_at_random_moments_under_steady_load_stores_each_ack_once(
    tmp_path: Path,
) -> None:
    collector = Proc(tmp_path / "data")
    clients = [Client() for _ in range(CLIENTS)]
    rng = random.Random(7)
    stops = ["kill"] * KILLS + ["term"] * TERMS
    rng.shuffle(stops)
    term_seconds: list[float] = []
    collector.start()
    await asyncio.to_thread(collector.wait_ready)
    tasks = [asyncio.create_task(c.produce()) for c in clients]
    tasks += [asyncio.create_task(c.send(collector)) for c in clients]
    try:
        for how in stops:
            if how == "term":
                await asyncio.to_thread(collector.wait_ready)
                await asyncio.sleep(rng.uniform(0.2, 1.0))
                term_seconds.append(await asyncio.to_thread(collector.terminate))
            elif rng.random() < 0.3:
                # While starting: recovering the spool, replaying its last insert.
                await asyncio.sleep(rng.uniform(0.0, 2.5))
                await asyncio.to_thread(collector.kill)
            else:
                await asyncio.to_thread(collector.wait_ready)
                await asyncio.sleep(rng.uniform(0.0, 1.0))
                await asyncio.to_thread(collector.kill)
            collector.start()
        await asyncio.to_thread(collector.wait_ready)
        await asyncio.sleep(0.5)
        for c in clients:
            c.producing = False
        await asyncio.wait_for(asyncio.gather(*tasks), 60)

        acked = set().union(*(c.acked for c in clients))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:  # the writer stores what the last process spooled
            [[count]] = await _sql(collector.url, "SELECT count() FROM events")
            if count >= len(acked) or loop.time() > deadline:
                break
            await asyncio.sleep(0.2)
        twice = await _sql(collector.url, "SELECT toString(event_id), count() FROM events"
                                          " GROUP BY event_id HAVING count() > 1")
        # In parts: /v1/sql answers at most sql_max_result_rows (100,000) rows, and a
        # fast machine stores more than that here.
        stored = set()
        for part in range(16):
            stored |= {r[0] for r in await _sql(
                collector.url, "SELECT toString(event_id) FROM events"
                f" WHERE cityHash64(event_id) % 16 = {part}")}
    finally:
        for t in tasks:
            t.cancel()
        collector.cleanup()

    sent = set().union(*(c.sent for c in clients))
    print(f"{KILLS} kills, {TERMS} SIGTERMs (exit after {max(term_seconds):.1f}s at most):"
          f" sent={len(sent)} acked={len(acked)} stored={len(stored)} twice={len(twice)}")
    assert collector.starts == KILLS + TERMS + 1
    assert len(acked) > 20_000, "the clients should have been sending throughout"
    assert not twice, f"{len(twice)} events were stored more than once"
    missing = acked - stored
    assert not missing, f"{len(missing)} acknowledged events were lost"
    assert stored <= sent
    assert acked == sent  # the clients resent until everything was acknowledged
    assert max(term_seconds) < 15  # SIGTERM: drained and gone within the bound
