"""The ingest benchmark's collector subprocess: ``quietly serve`` started and stopped
(``CollectorProcess``), the environment of the benchmark's subprocesses (``--set``
settings, the ``--commit`` snapshot's PYTHONPATH), and CPU sampling from /proc (the
collector's threads, other processes' noise, ``wait_idle``)."""

from __future__ import annotations

import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.ingest_common import ADMIN_TOKEN, PROJECT, WRITE_KEY, BenchError
from bench.machine import machine_busy_seconds

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




def _others(machine: float, *mine: float) -> float:
    """CPU seconds the rest of the machine used (clock-tick rounding can go below 0)."""
    return max(0.0, machine - sum(mine))


def _others_busy(seconds: float = 1.0) -> float:
    """Cores' worth of CPU that other processes use right now (noise check)."""
    busy0, own0 = machine_busy_seconds(), time.process_time()
    time.sleep(seconds)
    return (machine_busy_seconds() - busy0 - (time.process_time() - own0)) / seconds


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
