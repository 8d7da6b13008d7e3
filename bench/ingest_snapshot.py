"""The collector code the ingest benchmark runs: ``snapshot`` extracts a commit's
``collector/`` and ``schemas/`` for ``--commit REV`` (``git archive``), and
``_code_info`` records which code ran in the result."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from bench.ingest_collector import _SNAPSHOT_PATH
from bench.ingest_common import ROOT, BenchError
from bench.machine import git


def snapshot(rev: str, dest: Path) -> str:
    """Extract ``collector/`` and ``schemas/`` of ``rev`` into ``dest`` and make the
    subprocesses import them; returns the commit's short hash."""
    commit = git("rev-parse", "--short", f"{rev}^{{commit}}")
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
        "commit": git("rev-parse", "--short", "HEAD"),
        "collector_changes": git("status", "--porcelain", "--", "collector", "schemas"),
        "collector_path": str(path),
    }
