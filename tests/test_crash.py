"""SIGKILL the collector while a client sends; every acknowledged event is stored once."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers import ADMIN_TOKEN, WRITE_KEY, body, event, headers


@dataclass
class Proc:
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    starts: int = 0

    def start(self) -> None:
        env = {
            **os.environ,
            "QUIETLY_WRITE_KEYS": f"proj={WRITE_KEY}",
            "QUIETLY_ADMIN_TOKEN": ADMIN_TOKEN,
            "QUIETLY_FLUSH_INTERVAL_MS": "50",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "quietly_collector", "serve", "--port", "0",
             "--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode()
            if "listening on" in line:
                self.url = line.split("listening on ")[1].split()[0]
                break
        else:
            raise AssertionError("collector did not start")
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class Client:
    """Sends batches like an SDK: anything not acknowledged is sent again."""

    acked: set[str] = field(default_factory=set)
    sent: set[str] = field(default_factory=set)
    pending: list[list[dict[str, Any]]] = field(default_factory=list)
    stop: bool = False

    async def run(self, collector: Proc) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
            while not self.stop or self.pending:
                if self.pending:
                    events = self.pending.pop(0)
                elif self.stop:
                    break
                else:
                    events = [event() for _ in range(20)]
                    self.sent.update(e["event_id"] for e in events)
                try:
                    async with s.post(collector.url + "/v1/batch", data=body(events),
                                      headers=headers()) as resp:
                        if resp.status == 200:
                            self.acked.update(e["event_id"] for e in events)
                            await asyncio.sleep(0.005)
                            continue
                except (aiohttp.ClientError, TimeoutError):
                    pass
                self.pending.append(events)
                await asyncio.sleep(0.05)


async def _sql(url: str, query: str) -> list[list[Any]]:
    async with aiohttp.ClientSession() as s, s.post(
        url + "/v1/sql", data=json.dumps({"sql": query}),
        headers=headers(ADMIN_TOKEN),
    ) as resp:
        assert resp.status == 200, await resp.text()
        rows: list[list[Any]] = (await resp.json())["rows"]
        return rows


async def test_sigkill_under_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    collector = Proc(tmp_path / "data")
    client = Client()
    rng = random.Random(7)
    collector.start()
    try:
        sender = asyncio.create_task(client.run(collector))
        for _ in range(5):
            await asyncio.sleep(rng.uniform(0.3, 1.2))
            collector.kill()
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            await asyncio.to_thread(collector.start)
        await asyncio.sleep(0.5)
        client.stop = True
        await asyncio.wait_for(sender, 60)

        # Let the writer store what the last process spooled.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            [[count]] = await _sql(collector.url, "SELECT count() FROM events")
            if count >= len(client.acked) or loop.time() > deadline:
                break
            await asyncio.sleep(0.1)
        stored = await _sql(collector.url, "SELECT toString(event_id), count() FROM events"
                                           " GROUP BY event_id")
    finally:
        collector.terminate()

    counts = {eid: n for eid, n in stored}
    print(f"acked={len(client.acked)} sent={len(client.sent)} stored={len(counts)}")
    assert len(client.acked) > 500, "the client should have been sending throughout"
    assert collector.starts == 6
    missing = client.acked - counts.keys()
    assert not missing, f"{len(missing)} acknowledged events were lost"
    twice = {eid for eid, n in counts.items() if n > 1}
    assert not twice, f"{len(twice)} events were stored more than once"
    assert counts.keys() <= client.sent
