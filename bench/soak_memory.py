"""Memory of the collector with storage down under twice the rated load.

    python bench/soak_memory.py                    # 90 s of load, then a restart
    python bench/soak_memory.py --seconds 30 --spool-max-bytes 200000000

The collector (bench/soak_node.py, default settings: 1 GiB spool, 250,000 ids in the
duplicate filter) starts with storage down. Batches of 500 new events are posted on a
fixed schedule at ``--rate`` (default 2 x 38,700 events/s, the measured ack rate in
docs/performance.md), up to ``--concurrency`` requests in flight. Its resident memory
is sampled every 0.5 s while the spool fills to its limit and later requests get 503.
Then it is SIGKILLed and restarted with storage up: peak memory while it recovers
the full spool and while it drains it into ClickHouse. Target: under 512 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from quietly_collector.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script
from bench.soak_common import (
    RATED_EVENTS_PER_S,
    Node,
    event_json,
    memory,
    stats,
    utc_stamp,
    write_result,
)

CAP = 512 << 20
MIB = 1 << 20


async def _readyz(s: aiohttp.ClientSession, node: Node) -> dict[str, Any]:
    async with s.get(node.url + "/readyz") as resp:
        result: dict[str, Any] = await resp.json()
        return result


async def overload(node: Node, args: argparse.Namespace) -> dict[str, Any]:
    counts = {"sent_events": 0, "accepted_events": 0, "refused_503": 0, "errors": 0}
    samples: list[tuple[float, int, int]] = []  # (t, rss, spool bytes)
    in_flight = asyncio.Semaphore(args.concurrency)
    lagging = 0
    t0 = time.monotonic()

    async def post(s: aiohttp.ClientSession, data: bytes, n: int) -> None:
        try:
            async with s.post(node.url + "/v1/batch", data=data,
                              headers=node.write_headers) as resp:
                await resp.read()
                if resp.status == 200:
                    counts["accepted_events"] += n
                elif resp.status == 503:
                    counts["refused_503"] += 1
                else:
                    counts["errors"] += 1
        except (aiohttp.ClientError, TimeoutError):
            counts["errors"] += 1
        finally:
            in_flight.release()

    async def sample(s: aiohttp.ClientSession) -> None:
        while True:
            rss, _ = memory(node.pid)
            try:
                spool = int((await _readyz(s, node))["spool_bytes"])
            except (aiohttp.ClientError, TimeoutError, KeyError):
                spool = samples[-1][2] if samples else 0
            samples.append((round(time.monotonic() - t0, 1), rss, spool))
            await asyncio.sleep(0.5)

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=0)) as s:
        sampler = asyncio.create_task(sample(s))
        tasks = []
        n = 0
        interval = args.batch / args.rate
        while time.monotonic() - t0 < args.seconds:
            if in_flight.locked():
                lagging += 1  # the generator waits: the offered rate drops below --rate
            await in_flight.acquire()
            now = datetime.now(UTC)
            data = b'{"events":[' + b",".join(
                event_json(str(uuid.uuid4()), now) for _ in range(args.batch)) + b"]}"
            counts["sent_events"] += args.batch
            tasks.append(asyncio.create_task(post(s, data, args.batch)))
            n += 1
            await asyncio.sleep(max(0.0, t0 + n * interval - time.monotonic()))
        await asyncio.gather(*tasks)
        sampler.cancel()
        spent = time.monotonic() - t0
        counters = (await stats(node))["counters"]
    full = next((t for t, _, b in samples if b >= args.spool_max_bytes * 0.99), None)
    return {
        **counts, "seconds": round(spent, 1),
        "offered_events_per_s": round(counts["sent_events"] / spent),
        "accepted_events_per_s": round(counts["accepted_events"] / spent),
        "generator_waited_for_a_free_slot": lagging,
        "spool_full_after_s": full,
        "max_rss_mib": round(max(r for _, r, _ in samples) / MIB, 1),
        "peak_rss_mib": round(memory(node.pid)[1] / MIB, 1),
        "dedup_filter_at_cap": counts["accepted_events"] >= args.dedup_ids,
        "collector_refused_events": counters.get("events_refused_spool_full", 0),
        "samples": samples,
    }


async def restart(node: Node) -> dict[str, Any]:
    node.kill()
    node.outage_file.unlink(missing_ok=True)
    t0 = time.monotonic()
    node.start()
    await node.wait_ready()
    ready = time.monotonic() - t0
    _, hwm_ready = memory(node.pid)
    max_rss = 0
    async with aiohttp.ClientSession() as s:
        backlog = int((await _readyz(s, node))["spool_rows"])
        while True:
            rss, _ = memory(node.pid)
            max_rss = max(max_rss, rss)
            rows = int((await _readyz(s, node))["spool_rows"])
            if rows == 0:
                break
            await asyncio.sleep(0.25)
    drained = time.monotonic() - t0 - ready
    return {
        "ready_after_s": round(ready, 1), "peak_rss_at_ready_mib": round(hwm_ready / MIB, 1),
        "backlog_rows": backlog, "drain_s": round(drained, 1),
        "drain_rows_per_s": round(backlog / drained) if drained else None,
        "max_rss_draining_mib": round(max_rss / MIB, 1),
        "peak_rss_mib": round(memory(node.pid)[1] / MIB, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work or f"/tmp/quietly-soak-memory-{utc_stamp()}")
    work.mkdir(parents=True, exist_ok=True)
    (work / "outage").touch()  # storage down from the start
    node = Node(work / "data", work / "outage", work / "node.log", {
        "QUIETLY_SPOOL_MAX_BYTES": str(args.spool_max_bytes),
        "QUIETLY_DEDUP_MEMORY_IDS": str(args.dedup_ids),
    })
    node.start()
    try:
        await node.wait_ready()
        idle_rss, _ = memory(node.pid)
        result: dict[str, Any] = {"idle_rss_mib": round(idle_rss / MIB, 1)}
        result["overload"] = await overload(node, args)
        result["restart"] = await restart(node)
        node.term()
    finally:
        node.cleanup()
    peak = max(result["overload"]["peak_rss_mib"], result["restart"]["peak_rss_mib"])
    result.update(cap_mib=CAP // MIB, peak_rss_mib=peak, under_cap=peak < CAP / MIB,
                  args=vars(args))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=90.0)
    p.add_argument("--rate", type=float, default=2 * RATED_EVENTS_PER_S)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--spool-max-bytes", type=int, default=1 << 30)
    p.add_argument("--dedup-ids", type=int, default=Settings().dedup_memory_ids)
    p.add_argument("--work", help="working directory (default: a new one under /tmp)")
    args = p.parse_args()
    result = asyncio.run(run(args))
    path = write_result("soak-memory", result)
    o, r = result["overload"], result["restart"]
    print(f"idle: {result['idle_rss_mib']} MiB")
    print(f"storage down, {o['seconds']} s offered {o['offered_events_per_s']}/s"
          f" (asked {args.rate:.0f}/s): accepted {o['accepted_events_per_s']}/s,"
          f" spool full after {o['spool_full_after_s']} s, {o['refused_503']} x 503;"
          f" RSS max {o['max_rss_mib']} MiB, peak {o['peak_rss_mib']} MiB")
    print(f"restart on the full spool: ready after {r['ready_after_s']} s (peak"
          f" {r['peak_rss_at_ready_mib']} MiB), drained {r['backlog_rows']} rows in"
          f" {r['drain_s']} s ({r['drain_rows_per_s']}/s), RSS max {r['max_rss_draining_mib']}"
          f" MiB, peak {r['peak_rss_mib']} MiB")
    print(f"peak {result['peak_rss_mib']} MiB vs cap {result['cap_mib']} MiB:"
          f" {'under' if result['under_cap'] else 'OVER'}; written to {path}")


if __name__ == "__main__":
    main()
