"""Scrubbing cost per free-text field, before and after, in the same run.

    python bench/scrub.py                  # against main's scrubber
    python bench/scrub.py --commit REV     # against REV's
    python bench/scrub.py --quick

The baseline is ``schemas/`` of ``--commit`` (default ``main``) extracted with
``git archive`` into a temp dir; each side runs in its own subprocess that imports
``quietly_schemas`` from there or from the work tree, and scrubs the same texts:
rounds alternate between the two sides, and the report gives the best round's
microseconds per text for each kind of text (plain prose the pre-check skips, log
lines with numbers and paths, a 2 KB stack trace, non-ASCII comments, text with
personal data, the same disguised) and for a crash event (message and stack).
Results also go to ``bench/results/scrub-<time>.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import ROOT, git, machine_busy_seconds, versions

_STACK = "\n".join(
    [
        "Traceback (most recent call last):",
        *[
            f'  File "/usr/lib/python3.12/site-packages/app/module_{i}.py", line {40 + i},'
            f" in handler_{i}\n    result = process(item, retries={i % 4})"
            for i in range(25)
        ],
        "ValueError: invalid literal for int() with base 10: 'abc' (took 1234 ms)",
    ]
)


def texts() -> dict[str, list[str]]:
    """The texts of each kind, deterministic."""
    from tests.pii_faker import cases

    corpus = cases()
    plain = [c.text for c in corpus if c.form == "plain"][:200]
    disguised = [c.text for c in corpus if c.form != "plain"][::7][:200]
    return {
        "prose (skipped)": [
            "Save failed because the file is locked by another program",
            "Could not reach the server, will retry later",
            "The suggestion was helpful but a little slow",
        ] * 20,
        "log line": [
            f"2026-11-23 12:30:{s:02d} ERROR worker {s % 4} failed after {s * 7} ms:"
            f" cannot open /var/lib/app/cache/{s}.db (errno 13), v2.14.{s}"
            for s in range(60)
        ],
        "stack trace 2 KB": [_STACK],
        "non-ASCII comment": [
            "Die Vorschläge sind gut, aber das Laden dauert zu lange.",
            "L'éditeur plante quand j'ouvre un fichier très volumineux.",
            "補完がとても便利です。もう少し速いと嬉しいです。",
        ] * 20,
        "personal data": plain,
        "disguised data": disguised,
    }


def _worker(rounds: int, seconds: float) -> None:
    import quietly_schemas

    scrub = quietly_schemas.scrub
    kinds = texts()
    out: dict[str, float] = {}
    for kind, items in kinds.items():
        for text in items:  # warm-up: compiled patterns, lazy imports, metadata
            scrub(text)
        best = float("inf")
        for _ in range(rounds):
            n = 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                for text in items:
                    scrub(text)
                n += len(items)
            best = min(best, (time.perf_counter() - start) / n * 1e6)
        out[kind] = best
    print(json.dumps(out))


def _snapshot(rev: str, dest: Path) -> str:
    commit = git("rev-parse", "--short", f"{rev}^{{commit}}")
    if not commit:
        raise SystemExit(f"--commit {rev!r}: not a commit of {ROOT}")
    archive = subprocess.run(["git", "archive", "--format=tar", commit, "schemas"], cwd=ROOT,
                             capture_output=True, timeout=120, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return commit


def _run(schemas: Path, rounds: int, seconds: float) -> dict[str, float]:
    # The side's quietly_schemas first on the path; tests/ and bench/ from the work tree.
    code = (f"import sys; sys.path[:0] = [{str(schemas)!r}, {str(ROOT)!r}]\n"
            f"from bench.scrub import _worker; _worker({rounds}, {seconds})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=1800)
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--commit", default="main", help="the baseline's commit (default main)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    p.add_argument("--quick", action="store_true", help="1 round of 0.2 s per kind")
    args = p.parse_args()
    rounds, seconds = (1, 0.2) if args.quick else (args.rounds, 1.0)
    busy0, t0 = machine_busy_seconds(), time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        commit = _snapshot(args.commit, Path(tmp))
        before: dict[str, float] = {}
        after: dict[str, float] = {}
        for _ in range(rounds):
            for side, path in ((before, Path(tmp) / "schemas"), (after, ROOT / "schemas")):
                for kind, us in _run(path, 1, seconds).items():
                    side[kind] = min(side.get(kind, float("inf")), us)
    wall = time.monotonic() - t0
    before["crash event (message + stack)"] = before["log line"] + before["stack trace 2 KB"]
    after["crash event (message + stack)"] = after["log line"] + after["stack trace 2 KB"]
    print(f"\nscrub cost per text, microseconds (best of {rounds} alternating rounds)")
    head = git("rev-parse", "--short", "HEAD")
    print(f"baseline: {args.commit} ({commit}); after: work tree ({head})")
    print(f"{'text':<32}{'before':>10}{'after':>10}{'ratio':>8}")
    for kind in after:
        ratio = after[kind] / before[kind]
        print(f"{kind:<32}{before[kind]:>10.1f}{after[kind]:>10.1f}{ratio:>8.2f}")
    other = machine_busy_seconds() - busy0 - wall  # roughly: our subprocess uses one core
    print(f"\nmachine: CPU used by other processes during the run ~{max(other, 0):.0f} s"
          f" over {wall:.0f} s")
    result: dict[str, Any] = {
        "before": before, "after": after, "baseline": args.commit, "baseline_commit": commit,
        "rounds": rounds, "seconds_per_round": seconds,
        "versions": versions("python-stdnum", "phonenumberslite", "msgspec"),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"scrub-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
