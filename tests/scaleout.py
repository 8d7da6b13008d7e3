"""Collector processes over one ClickHouse HTTP endpoint (tests/chserver), for the
scale-out tests and bench/scaleout.py: each its own data directory and spool, all
with the same keys and pseudonym secret, as the Kubernetes StatefulSet runs them."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import clickhouse_connect

from tests.helpers import ADMIN_TOKEN, OTHER_KEY, WRITE_KEY

ROOT = Path(__file__).resolve().parent.parent
PSEUDONYM_SECRET = "scale-out-tests-shared-secret-0123"
READY_TIMEOUT_S = 60.0


@dataclass
class Proc:
    popen: subprocess.Popen[str]
    data_dir: Path
    log: Path
    url: str = ""
    lines: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill(self) -> None:
        """kill -9: no drain, no lease released."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def post(self, path: str, payload: dict[str, Any], key: str = WRITE_KEY,
             timeout: float = 10.0) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.url + path, data=json.dumps(payload).encode(), method="POST",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")


def config(path: Path, ch_url: str, database: str, data_dir: Path, **extra: Any) -> Path:
    """A quietly.toml for one collector (TOML, so lists and rules need no env syntax)."""
    values: dict[str, Any] = {
        "host": "127.0.0.1", "port": 0, "data_dir": str(data_dir),
        "clickhouse_url": f"{ch_url}/{database}", "admin_token": ADMIN_TOKEN,
        "pseudonym_secret": PSEUDONYM_SECRET, "flush_interval_ms": 50,
        "storage_nice": 0, "lease_ttl_s": 3, "promote_interval_ms": 100,
        "maintenance_interval_s": 0, "alert_interval_s": 0,
    }
    values.update(extra)
    lines = [f"{k} = {_toml(v)}" for k, v in values.items() if k != "alert_rules"]
    lines.append(f'[write_keys]\nproj = "{WRITE_KEY}"\nother = "{OTHER_KEY}"')
    for rule in values.get("alert_rules", []):
        lines.append("[[alert_rules]]")
        lines += [f"{k} = {_toml(v)}" for k, v in rule.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return json.dumps(str(v))


def launch(cfg: Path, data_dir: Path) -> Proc:
    """Start ``quietly serve --config cfg``; ``wait_ready`` waits for it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "collector.log"
    popen = subprocess.Popen(
        [sys.executable, "-m", "quietly_collector", "serve", "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return Proc(popen, data_dir, log)


def wait_ready(proc: Proc, timeout: float = READY_TIMEOUT_S) -> Proc:
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.popen.stdout is not None
        for line in proc.popen.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if proc.popen.poll() is not None:
                break
            continue
        proc.lines.append(line)
        if "collector listening on http://" in line:
            proc.url = line.split("listening on ")[1].split()[0]
            return proc
    raise AssertionError(f"collector not ready (exit {proc.popen.poll()}):"
                         f" {''.join(proc.lines)}{proc.log.read_text()[-3000:]}")


def start(tmp: Path, name: str, ch_url: str, database: str, **extra: Any) -> Proc:
    data_dir = tmp / name
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg = config(data_dir / "quietly.toml", ch_url, database, data_dir, **extra)
    return wait_ready(launch(cfg, data_dir))


def client(ch_url: str, database: str) -> Any:
    host, _, port = ch_url.removeprefix("http://").partition(":")
    return clickhouse_connect.get_client(host=host, port=int(port), database=database,
                                         autogenerate_session_id=False)


def settled(ch: Any, procs: list[Proc], timeout: float = 30.0) -> None:
    """Wait until every live collector's spool is empty and nothing is left staged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = sum(_pending(p) for p in procs if p.popen.poll() is None)
        staged = ch.query("SELECT count() FROM events_staging").result_rows[0][0]
        if pending == 0 and staged == 0:
            return
        time.sleep(0.1)
    raise AssertionError("collectors did not settle: rows still spooled or staged")


def _pending(proc: Proc) -> int:
    try:
        with urllib.request.urlopen(proc.url + "/readyz", timeout=10) as resp:
            return int(json.loads(resp.read())["spool_rows"])
    except urllib.error.HTTPError as exc:  # 503: not ready, its rows still count
        return int(json.loads(exc.read())["spool_rows"])


def holder(ch: Any, lease: str = "leader") -> tuple[int, str]:
    """(epoch, holder) of the lease's latest heartbeat."""
    rows = ch.query("SELECT epoch, holder FROM leases WHERE name = {n:String}"
                    " ORDER BY renewed_at DESC LIMIT 1", parameters={"n": lease}).result_rows
    return (int(rows[0][0]), str(rows[0][1])) if rows else (0, "")
