"""What ``Telemetry.track()`` costs its caller, next to posthog-python and segment.

    python bench/sdk.py            # about 1 minute
    python bench/sdk.py --quick    # fewer calls, for a smoke run

One run, on one machine: a plain ``deque.append`` of a dict (the floor), Quietly's
``track()`` (consent basic, a real ``quietly serve`` collector reachable),
posthog-python's ``capture()`` and segment's ``track()`` (both posting to a local
HTTP endpoint that answers 200), each with a queue large enough never to drop.
Calls run in rounds; between rounds each client flushes (untimed), so background
threads are idle when a round starts, as in an app that tracks in bursts.

Two figures per client: the calling thread's CPU time per call (``thread_time``:
what the host pays) and wall time per call (includes waiting for the GIL while a
background thread works). Then resident memory while 1,000,000 events are tracked
with the collector down. Results go to stdout and ``bench/results/sdk-*.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.ingest_collector import CollectorProcess  # noqa: E402
from bench.ingest_common import WRITE_KEY  # noqa: E402

PROPS = {"feature": "debugging", "duration_ms": 1234, "success": True}

_STUB = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"status": 1}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def measure(
    call: Callable[[], None], flush: Callable[[], Any], calls: int, rounds: int
) -> dict[str, float]:
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(rounds):
        flush()
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        for _ in range(calls):
            call()
        c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
        cpu.append((c1 - c0) / calls / 1000)
        wall.append((w1 - w0) / calls / 1000)
    flush()
    return {"cpu_us": statistics.median(cpu), "wall_us": statistics.median(wall),
            "calls": calls * rounds}


def run_calls(calls: int, rounds: int, work: Path) -> dict[str, Any]:
    from posthog import Posthog
    from segment.analytics import Client as Segment

    from quietly import Telemetry

    results: dict[str, Any] = {}
    floor: deque[dict[str, Any]] = deque()
    results["deque.append (floor)"] = measure(
        lambda: floor.append({"event": "feature_used", **PROPS}), floor.clear, calls, rounds
    )

    collector = CollectorProcess(work / "collector", work / "collector.log", None)
    (work / "collector").mkdir()
    collector.start()
    stub = subprocess.Popen([sys.executable, "-c", _STUB], stdout=subprocess.PIPE, text=True)
    try:
        assert stub.stdout is not None
        stub_url = f"http://127.0.0.1:{stub.stdout.readline().strip()}"
        t = Telemetry(endpoint=collector.url, write_key=WRITE_KEY, app="bench",
                      app_version="1.0.0", state_dir=work / "state", max_queue=calls * 2)
        t.set_consent("basic")
        results["quietly track()"] = measure(
            lambda: t.track("feature_used", feature="debugging", duration_ms=1234, success=True),
            lambda: t.flush(60), calls, rounds,
        )
        results["quietly track()"]["sent"] = t.stats().get("sent", 0)
        results["quietly track()"]["dropped"] = t.stats()["dropped"]
        t.shutdown(5)

        ph = Posthog("phc_bench", host=stub_url, max_queue_size=calls * 2)
        results["posthog capture()"] = measure(
            lambda: ph.capture("feature_used", distinct_id="u1", properties=PROPS),
            ph.flush, calls, rounds,
        )
        ph.shutdown()

        sg = Segment("bench", host=stub_url, max_queue_size=calls * 2)
        results["segment track()"] = measure(
            lambda: sg.track(user_id="u1", event="feature_used", properties=PROPS),
            sg.flush, calls, rounds,
        )
        sg.shutdown()
    finally:
        stub.kill()
        collector.stop()
    return results


_MEMORY = """
import json, sys, time
from quietly import Telemetry
def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
t = Telemetry(endpoint="http://127.0.0.1:9", write_key="k", app="bench", state_dir=sys.argv[1])
t.set_consent("basic")
n = int(sys.argv[2])
samples = [(0, rss_mib())]
start = time.perf_counter()
for i in range(1, n + 1):
    t.track("feature_used", feature="debugging", duration_ms=i % 10000, success=True)
    if i % (n // 10) == 0:
        samples.append((i, rss_mib()))
took = time.perf_counter() - start
t.flush(2.0)
st = t.stats()
print(json.dumps({"samples": samples, "seconds": took, "stats": st}))
t.shutdown(0.5)
"""


def run_memory(events: int, work: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_MEMORY), str(work / "mem-state"), str(events)],
        capture_output=True, text=True, timeout=900, check=True,
    )
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls and events")
    ap.add_argument("--calls", type=int, default=5_000, help="calls per round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--memory-events", type=int, default=1_000_000)
    args = ap.parse_args()
    if args.quick:
        args.calls, args.rounds, args.memory_events = 1_000, 3, 100_000
    with tempfile.TemporaryDirectory(prefix="quietly-bench-sdk-") as tmp:
        work = Path(tmp)
        calls = run_calls(args.calls, args.rounds, work)
        memory = run_memory(args.memory_events, work)
    result = {
        "benchmark": "sdk",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "calls": calls,
        "memory": memory,
    }
    print_report(result)
    out = HERE / "results" / f"sdk-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"results: {out.relative_to(HERE.parent)}")
    return 0


def print_report(r: dict[str, Any]) -> None:
    m = r["machine"]
    print(f"\nQuietly SDK benchmark, {r['started']}; {m['cpus']} CPUs, Python {m['python']}")
    print(f"\n{'per call':<24}{'caller CPU µs':>15}{'wall µs':>10}{'vs floor':>10}")
    floor = r["calls"]["deque.append (floor)"]["cpu_us"]
    for name, v in r["calls"].items():
        print(f"{name:<24}{v['cpu_us']:>15.2f}{v['wall_us']:>10.2f}{v['cpu_us'] / floor:>9.1f}x")
    ours = r["calls"]["quietly track()"]
    peers = [r["calls"][k] for k in ("posthog capture()", "segment track()")]
    cheaper = min(p["cpu_us"] for p in peers)
    ratio = ours["cpu_us"] / cheaper
    verdict = "PASS" if ratio <= 0.1 else "MISS"
    print(f"\n{verdict}  track() caller CPU is {ratio:.3f} of the cheaper peer (target <= 0.1)")
    wall_ratio = ours["wall_us"] / min(p["wall_us"] for p in peers)
    print(f"      wall time per call: {wall_ratio:.3f} of the cheaper peer")
    print(f"      quietly sent {ours['sent']:,} events, dropped {ours['dropped'] or 'none'}")
    mem = r["memory"]
    samples = mem["samples"]
    peak = max(s[1] for s in samples)
    print(f"\nMemory, {samples[-1][0]:,} events tracked with the collector down "
          f"({mem['seconds']:.1f} s):")
    print("  RSS MiB at " + ", ".join(f"{n:,}: {v:.0f}" for n, v in samples))
    print(f"  peak {peak:.0f} MiB, growth from the first tenth to the end "
          f"{samples[-1][1] - samples[1][1]:+.1f} MiB; dropped {mem['stats']['dropped']}")


if __name__ == "__main__":
    raise SystemExit(main())
