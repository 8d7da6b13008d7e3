"""Shared by bench/soak.py and bench/soak_memory.py: the collector subprocess
(bench/soak_node.py), events, admin queries."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

RESULTS = Path(__file__).resolve().parent / "results"
WRITE_KEY = "soak-write-key-0123456789"
ADMIN_TOKEN = "soak-admin-token-0123456789"
# End-to-end ack rate of the collector on 2 cores, docs/performance.md (runs 8-12).
RATED_EVENTS_PER_S = 38_700
INSTALL = "0b6f3c1e-2a44-4f0e-9d6b-8a1e2f3c4d5e"


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


_EVENT_TAIL = (
    '","install_id":"' + INSTALL + '","session_id":null,"context":{"app":"soak",'
    '"app_version":"1.0.0","os":"linux","consent":"basic"},'
    '"props":{"feature":"debugging","duration_ms":1234,"success":true}}'
).encode()


def event_json(event_id: str, ts: datetime) -> bytes:
    """One ``feature_used`` event as the SDK sends it (about 330 bytes)."""
    stamp = ts.isoformat().replace("+00:00", "Z")
    return b'{"event_id":"' + event_id.encode() + b'","event":"feature_used","ts":"' \
        + stamp.encode() + _EVENT_TAIL


def memory(pid: int) -> tuple[int, int]:
    """Resident and peak resident bytes of a process (VmRSS, VmHWM)."""
    values = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line[:5]] = int(line.split()[1]) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


class Node:
    """bench/soak_node.py in a subprocess, restarted on the same data directory."""

    def __init__(self, data_dir: Path, outage_file: Path, log: Path,
                 env: dict[str, str] | None = None) -> None:
        self.data_dir, self.outage_file, self.log = data_dir, outage_file, log
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("QUIETLY_")},
                    "QUIETLY_WRITE_KEYS": f"soak={WRITE_KEY}",
                    "QUIETLY_ADMIN_TOKEN": ADMIN_TOKEN, "QUIETLY_LOG_LEVEL": "warning",
                    **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.ready = threading.Event()
        self.last_stop = ""
        self.write_headers = {"Authorization": f"Bearer {WRITE_KEY}",
                              "Content-Type": "application/json"}
        data_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.ready = threading.Event()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("soak_node.py")),
                 "--data-dir", str(self.data_dir), "--outage-file", str(self.outage_file)],
                stdout=subprocess.PIPE, stderr=log, env=self.env,
            )
        threading.Thread(target=self._watch, args=(self.proc, self.ready), daemon=True).start()

    def _watch(self, proc: subprocess.Popen[bytes], ready: threading.Event) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode()
            if "listening on " in line:
                self.url = line.split("listening on ")[1].split()[0]
                ready.set()

    async def wait_ready(self, timeout: float = 120.0) -> None:
        if not await asyncio.to_thread(self.ready.wait, timeout):
            raise RuntimeError(f"collector did not start; {self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.last_stop = "kill"

    def term(self) -> float:
        """SIGTERM a ready collector; seconds until it exited (it drains first)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.terminate()
        code = self.proc.wait(timeout=60)
        if code != 0:
            raise RuntimeError(f"SIGTERM: exit code {code}; {self.log_tail()}")
        self.last_stop = "term"
        return round(time.monotonic() - started, 2)

    def outage(self, on: bool) -> None:
        """Storage down (the events table detached) or back; survives restarts."""
        if on:
            self.outage_file.touch()
        else:
            self.outage_file.unlink(missing_ok=True)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self) -> str:
        try:
            return self.log.read_text()[-2000:]
        except OSError:
            return ""


async def _admin(node: Node, method: str, path: str, payload: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s, \
            s.request(method, node.url + path, json=payload, headers=headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{path}: {resp.status} {await resp.text()}")
        return await resp.json()


async def sql(node: Node, query: str) -> list[list[Any]]:
    rows: list[list[Any]] = (await _admin(node, "POST", "/v1/sql", {"sql": query}))["rows"]
    return rows


async def stats(node: Node) -> dict[str, Any]:
    result: dict[str, Any] = await _admin(node, "GET", "/v1/stats")
    return result


def write_result(kind: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{kind}-{utc_stamp()}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    return path
