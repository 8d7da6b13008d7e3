"""``quietly simulate``: realistic IDE telemetry through the real SDK into a running collector.

Every simulated user is a ``quietly.Telemetry`` with its own state directory (so
its own random install id) and consent, and its history is backdated with
``track_at``: the SDK derives sessions from the times, checks every event against
the catalog, spools and sends it exactly as a product would. What users do is
planned in ``simulate_model`` (seeded: the same seed gives the same event mix).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from quietly_collector.commands.simulate_model import DAY, plan_user
from quietly_collector.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8080"
FLUSH_TIMEOUT = 60.0  # per app version of a user; the collector may push back (503/429)


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate", help="send realistic telemetry of simulated IDE users to a running collector",
        description="Simulate users of an IDE (sessions, features, timings, crashes, jobs,"
        " surveys, deployments) over the last DAYS days, through the SDK, into a running"
        " collector, so every metric has content.",
    )
    p.add_argument("--users", type=_positive, default=200, help="simulated installs (200)")
    p.add_argument("--days", type=_positive, default=30, help="days of history, ending now (30)")
    p.add_argument("--seed", type=int, default=1, help="same seed, same event mix (1)")
    p.add_argument("--app", default="demo-ide", help="app name in the events (demo-ide)")
    p.add_argument("--url", help=f"collector URL (or QUIETLY_URL; default {DEFAULT_URL})")
    p.add_argument("--write-key", help="write key (or QUIETLY_WRITE_KEY; default: the"
                   " development key in the data directory)")
    p.add_argument("--workers", type=_positive, default=4, help="users simulated at once (4)")
    return p


@dataclass
class UserResult:
    index: int
    consent: str = ""
    tracked: int = 0
    delivered: bool = True
    stats: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)


def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    url = (args.url or os.environ.get("QUIETLY_URL") or DEFAULT_URL).rstrip("/")
    key = args.write_key or os.environ.get("QUIETLY_WRITE_KEY") or _dev_key(settings)
    if not key:
        print("quietly: no write key: set QUIETLY_WRITE_KEY or --write-key", file=sys.stderr)
        return 2
    if os.environ.get("DO_NOT_TRACK", "").strip().lower() not in ("", "0", "false", "no"):
        # The SDK honours it and would send nothing: say so instead of "0 events".
        print("quietly: DO_NOT_TRACK is set, so the SDK sends nothing; unset it to simulate",
              file=sys.stderr)
        return 2
    problem = check_collector(url, key)
    if problem:
        print(f"quietly: {problem}", file=sys.stderr)
        return 1
    started = time.monotonic()
    # Whole seconds before now: the plan's last event lies END_MARGIN before this.
    window_end = float(int(time.time()))
    results = _run_users(args, url, key, window_end)
    _summary(args, url, results, window_end, time.monotonic() - started, sys.stdout)
    return 0 if len(results) == args.users and all(r.delivered for r in results) else 1


def _dev_key(settings: Settings) -> str | None:
    from quietly_collector.access.credentials import DEV_KEY_FILE

    try:
        return (settings.data_path / DEV_KEY_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def check_collector(url: str, key: str) -> str | None:
    """None when the collector answers and takes the key, else what is wrong."""
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=10):
            pass
        # An empty batch stores nothing but is authenticated like any other.
        req = urllib.request.Request(
            url + "/v1/batch", data=b'{"events":[]}',
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10):
            return None
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            reason = exc.reason
        if exc.code in (401, 403):
            return f"the collector at {url} refused the write key: {reason}"
        return f"the collector at {url} answered {exc.code}: {reason}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"cannot reach a collector at {url} ({reason}); start one with 'quietly serve'"


def _run_users(
    args: argparse.Namespace, url: str, key: str, window_end: float
) -> list[UserResult]:
    start = window_end - args.days * DAY
    results: list[UserResult] = []
    abort = threading.Event()
    bar = Progress(args.users, sys.stderr)
    with tempfile.TemporaryDirectory(prefix="quietly-simulate-") as tmp, \
            ThreadPoolExecutor(args.workers, thread_name_prefix="simulate") as pool:
        futures = [
            pool.submit(simulate_user, args, i, url, key, start, Path(tmp) / f"u{i}", abort)
            for i in range(args.users)
        ]
        try:
            for fut in as_completed(futures):
                r = fut.result()
                if r is None:
                    continue
                results.append(r)
                if not r.delivered and check_collector(url, key):
                    abort.set()  # the collector went away: the rest would only time out
                bar.update(len(results), sum(x.tracked for x in results))
        except KeyboardInterrupt:
            abort.set()
            raise
        finally:
            bar.close()
    return sorted(results, key=lambda r: r.index)


def simulate_user(
    args: argparse.Namespace, index: int, url: str, key: str, start: float, state_dir: Path,
    abort: threading.Event,
) -> UserResult | None:
    """One install's history: a Telemetry per app version it used, sharing its state."""
    from quietly import Telemetry

    if abort.is_set():
        return None
    plan = plan_user(args.seed, index, args.days)
    result = UserResult(index, plan.consent)
    for n, segment in enumerate(plan.segments):
        t = Telemetry(endpoint=url, write_key=key, app=args.app, app_version=segment.version,
                      state_dir=state_dir, max_queue=max(10_000, 2 * len(segment.events)))
        if n == 0:
            t.set_consent(plan.consent)  # the first run: the user opts in
        track_at = t.track_at
        for offset, event, props in segment.events:
            track_at(start + offset, event, **props)
        result.tracked += len(segment.events)
        ok = t.flush(FLUSH_TIMEOUT)
        ok = t.shutdown(10.0) and ok  # sends the last session_end
        result.delivered = result.delivered and ok
        stats = t.stats()
        for name in ("sent", "spooled", "props_consent", "internal_errors"):
            result.stats[name] += int(stats.get(name, 0))
        result.dropped.update({k: v for k, v in stats.get("dropped", {}).items() if v})
        if not ok or abort.is_set():
            break
    return result


class Progress:
    """``[#####.....] 120/200 users, 45,000 events`` on one line, only on a terminal."""

    def __init__(self, total: int, stream: IO[str], width: int = 30) -> None:
        self.total, self.stream, self.width = total, stream, width
        self.enabled = stream.isatty()
        self.update(0, 0)

    def update(self, done: int, events: int) -> None:
        if not self.enabled:
            return
        filled = self.width * done // max(1, self.total)
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{done}/{self.total} users, {events:,} events")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _summary(
    args: argparse.Namespace, url: str, results: list[UserResult], window_end: float,
    seconds: float, out: IO[str],
) -> None:
    first = datetime.fromtimestamp(window_end - args.days * DAY, UTC).date()
    last = datetime.fromtimestamp(window_end, UTC).date()
    stats: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    for r in results:
        stats.update(r.stats)
        dropped.update(r.dropped)
    tracked = sum(r.tracked for r in results)
    per_user = tracked // max(1, len(results))
    print(f"simulated {len(results)} users of {args.app} from {first} to {last} (seed"
          f" {args.seed}) in {seconds:.1f} s", file=out)
    print(f"  events tracked:   {tracked:,} ({per_user:,} per user)", file=out)
    print(f"  events delivered: {stats['sent']:,} (with the SDK's session_start/session_end)",
          file=out)
    drops = ", ".join(f"{k} {v:,}" for k, v in sorted(dropped.items())) or "none"
    print(f"  dropped:          {drops}", file=out)
    consent = Counter(r.consent for r in results)
    print(f"  consent:          {consent['basic']} basic, {consent['detailed']} detailed"
          f" ({stats['props_consent']:,} detailed-only fields left out for basic users)",
          file=out)
    failed = [r.index for r in results if not r.delivered]
    skipped = args.users - len(results)
    if failed:
        more = ", …" if len(failed) > 20 else ""
        print(f"  NOT delivered:    {len(failed)} users (#"
              + ", #".join(str(i) for i in failed[:20]) + f"{more}): events left unsent",
              file=out)
    if skipped:
        print(f"  skipped:          {skipped} users (the collector stopped answering)", file=out)
    where = "" if url == DEFAULT_URL else f" --url {url}"
    if getattr(args, "data_dir", None):  # where `quietly query` finds the admin token
        where += f" --data-dir {args.data_dir}"
    print(f"See the metrics: quietly query dau --since {first}{where}\n"
          "  (quietly query --list names every metric)", file=out)
