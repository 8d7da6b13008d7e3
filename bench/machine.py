"""What both benchmarks record about the machine and the code: CPU time the whole
machine used (to tell other processes' noise from the run's own work), the git
state of the checkout, and the versions of the packages measured."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine_busy_seconds() -> float:
    """CPU time used by the whole machine (all CPUs, all processes) since boot."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def git(*cmd: str) -> str:
    """``git cmd`` in the repository root; empty if git fails or is missing."""
    try:
        proc = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, check=False)
    except OSError:
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def versions(*dists: str) -> dict[str, str]:
    """Python's version and each distribution's ("?" if not installed)."""
    out = {"python": platform.python_version()}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "?"
    return out
