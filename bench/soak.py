"""Soak: SIGKILLs and storage outages while clients send at a steady rate; then count.

    python bench/soak.py --minutes 5              # about 5 minutes
    python bench/soak.py --minutes 1 --rate 1000  # a short one

The collector (bench/soak_node.py: ``quietly serve``'s app with an outage switch)
runs in a subprocess on a fresh data directory. SDK-like clients make batches at a
steady rate and resend each until it is acknowledged (and resend a share of
acknowledged events inside new batches). The run alternates a phase of SIGKILLs at
random moments (some during start-up; now and then a SIGTERM) with a storage
outage (the ``events`` table detached) of random length, measuring how fast the
spool fills and then drains. At the end the clients send what is left, and the
stored table is compared with what was acknowledged: sent, acknowledged, stored,
duplicates, lost. Results: printed, and bench/results/soak-<time>.json.
Memory under overload: bench/soak_memory.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script
from bench.soak_common import (
    Node,
    event_json,
    sql,
    stats,
    utc_stamp,
    write_result,
)

EVENT_BATCH = 50


@dataclass
class Client:
    """An SDK: batches made on a schedule, queued, the oldest sent until acknowledged."""

    rng: random.Random
    rate: float  # events per second
    resend: float  # share of each batch that repeats acknowledged events
    sent: set[str] = field(default_factory=set)
    acked: set[str] = field(default_factory=set)
    queue: list[list[bytes]] = field(default_factory=list)
    refused: list[tuple[float, int]] = field(default_factory=list)  # (when, events) of 503s
    resent: int = 0
    producing: bool = True

    async def produce(self) -> None:
        interval = EVENT_BATCH / self.rate
        acked_list: list[str] = []
        while self.producing:
            ids = [str(_uuid(self.rng)) for _ in range(EVENT_BATCH)]
            self.sent.update(ids)
            if len(acked_list) < len(self.acked):
                acked_list = list(self.acked)
            again = self.rng.sample(acked_list, min(len(acked_list),
                                                    int(EVENT_BATCH * self.resend)))
            self.resent += len(again)
            now = datetime.now(UTC)
            self.queue.append([event_json(i, now) for i in ids + again])
            await asyncio.sleep(interval)

    async def send(self, node: Node) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
            while self.producing or self.queue:
                if not self.queue:
                    await asyncio.sleep(0.02)
                    continue
                events = self.queue[0]
                data = b'{"events":[' + b",".join(events) + b"]}"
                wait = 0.05
                try:
                    async with s.post(node.url + "/v1/batch", data=data,
                                      headers=node.write_headers) as resp:
                        if resp.status == 200:
                            self.acked.update(json.loads(e)["event_id"] for e in events)
                            self.queue.pop(0)
                            continue
                        if resp.status == 503:
                            self.refused.append((time.monotonic(), len(events)))
                            wait = min(float(resp.headers.get("Retry-After", "1")), 1.0)
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(wait)


def _uuid(rng: random.Random) -> str:
    import uuid

    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


async def _spool_rows(node: Node, s: aiohttp.ClientSession) -> int:
    async with s.get(node.url + "/readyz") as resp:
        return int((await resp.json())["spool_rows"])


async def kill_phase(node: Node, rng: random.Random, seconds: float, out: dict[str, Any]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if rng.random() < 0.1:
            await node.wait_ready()
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            out["sigterm_exit_s"].append(await asyncio.to_thread(node.term))
        elif rng.random() < 0.3:
            await asyncio.sleep(rng.uniform(0.0, 2.5))  # during start-up, maybe
            await asyncio.to_thread(node.kill)
            out["kills_during_startup"] += 1
        else:
            await node.wait_ready()
            await asyncio.sleep(rng.uniform(0.2, 4.0))
            await asyncio.to_thread(node.kill)
        out["kills"] += 1 if node.last_stop == "kill" else 0
        started = time.monotonic()
        node.start()
        await node.wait_ready()
        out["restart_s"].append(round(time.monotonic() - started, 2))


async def outage_phase(node: Node, clients: list[Client], seconds: float,
                       term: bool) -> dict[str, Any]:
    """Storage down for ``seconds``: the fill rate (until the spool stops growing, at its
    limit), then the time to notice storage is back, and the writer's rate while it
    drains. With ``term``, the collector is SIGTERMed (and restarted) before storage is
    back: it must exit within the drain bound and keep its spool."""
    await node.wait_ready()
    term_s = None
    async with aiohttp.ClientSession() as s:
        before = (await stats(node))["counters"]
        rows0, t0 = await _spool_rows(node, s), time.monotonic()
        node.outage(True)
        grown = [(t0, rows0)]  # the spool's size while it grows
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(0.5)
            rows = await _spool_rows(node, s)
            if rows > grown[-1][1]:
                grown.append((time.monotonic(), rows))
        rows1, t1 = await _spool_rows(node, s), time.monotonic()
        if term:
            term_s = await asyncio.to_thread(node.term)
            node.start()
            await node.wait_ready()
            rows1 = await _spool_rows(node, s)  # what the next process recovered
        at_back = (await stats(node))["counters"]
        node.outage(False)
        back = time.monotonic()
        noticed = drained = 0.0
        while time.monotonic() - back < 600:
            await asyncio.sleep(0.05)
            rows, now = await _spool_rows(node, s), time.monotonic()
            if not noticed and rows < rows1:
                noticed = now
            # Drained: what is left is what the clients add between two flushes.
            if noticed and rows <= max(500, rows1 // 100):
                drained = now
                break
        after = (await stats(node))["counters"]
    fill = (grown[-1][1] - rows0) / max(grown[-1][0] - t0, 1e-3)
    drain_s = max(drained - noticed, 1e-3) if drained else float("nan")
    written = int(after.get("rows_inserted", 0)) - int(at_back.get("rows_inserted", 0))
    refused = [n for c in clients for t, n in c.refused if t0 <= t <= (drained or t1)]

    def delta(name: str) -> int | None:  # counters start again in a new process
        return None if term else int(after.get(name, 0)) - int(before.get(name, 0))

    return {
        "seconds": round(t1 - t0, 1), "spooled_rows": rows1, "fill_rows_per_s": round(fill),
        # Shorter than the outage: the spool reached its limit.
        "spool_grew_for_s": round(grown[-1][0] - t0, 1),
        "sigterm_exit_s": term_s,
        "noticed_after_s": round(noticed - back, 2) if noticed else None,
        "drained_after_s": round(drain_s, 2),  # from when the writer noticed
        "backlog_rows_per_s": round(rows1 / drain_s) if drained else None,
        "writer_rows_per_s": round(written / drain_s) if drained else None,
        "insert_retries": delta("insert_failures"),
        "refused_events_clients": None if term else sum(refused),
        "refused_requests_clients": None if term else len(refused),
        "refused_events_collector": delta("events_refused_spool_full"),
        "refused_requests_collector": delta("requests_refused_spool_full"),
    }


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work or f"/tmp/quietly-soak-{utc_stamp()}")
    extra = {"QUIETLY_SPOOL_MAX_BYTES": str(args.spool_max_bytes)} if args.spool_max_bytes else {}
    node = Node(work / "data", work / "outage", work / "node.log", extra)
    rng = random.Random(args.seed)
    per_client = args.rate / args.clients
    clients = [Client(random.Random(args.seed * 100 + i), per_client, args.resend)
               for i in range(args.clients)]
    out: dict[str, Any] = {"kills": 0, "kills_during_startup": 0, "sigterm_exit_s": [],
                           "restart_s": [], "outages": []}
    node.start()
    await node.wait_ready()
    tasks = [asyncio.create_task(c.produce()) for c in clients]
    tasks += [asyncio.create_task(c.send(node)) for c in clients]
    started = time.monotonic()
    deadline = started + args.minutes * 60
    try:
        while time.monotonic() < deadline:
            await kill_phase(node, rng, min(rng.uniform(20, 40), deadline - time.monotonic()),
                             out)
            left = deadline - time.monotonic()
            if left > 10:
                seconds = min(rng.uniform(args.outage_min, args.outage_max), left)
                term = rng.random() < 0.5
                out["outages"].append(await outage_phase(node, clients, seconds, term))
                print(f"  outage: {out['outages'][-1]}", flush=True)
        for c in clients:
            c.producing = False
        await asyncio.wait_for(asyncio.gather(*tasks), 600)
        out.update(await _verify(node, clients))
        out["sigterm_exit_s"].append(await asyncio.to_thread(node.term))
    finally:
        node.cleanup()
    out["minutes"] = round((time.monotonic() - started) / 60, 2)
    out["args"] = vars(args)
    out["node_log_tail"] = node.log_tail()
    return out


async def _verify(node: Node, clients: list[Client]) -> dict[str, Any]:
    acked = set().union(*(c.acked for c in clients))
    sent = set().union(*(c.sent for c in clients))
    deadline = time.monotonic() + 300
    while True:
        [[count]] = await sql(node, "SELECT count() FROM events")
        if count >= len(acked) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    [[rows, distinct]] = await sql(node, "SELECT count(), uniqExact(event_id) FROM events")
    stored = {r[0] for r in await sql(node, "SELECT toString(event_id) FROM events")}
    return {"sent": len(sent), "acknowledged": len(acked), "stored": int(distinct),
            "stored_rows": int(rows), "duplicates": int(rows) - int(distinct),
            "lost": len(acked - stored), "stored_not_sent": len(stored - sent),
            "resent_inside_new_batches": sum(c.resent for c in clients),
            "final_counters": (await stats(node))["counters"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=2000.0, help="events/s from all clients")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--resend", type=float, default=0.05,
                   help="share of each batch that repeats acknowledged events")
    p.add_argument("--outage-min", type=float, default=10.0)
    p.add_argument("--outage-max", type=float, default=40.0)
    p.add_argument("--spool-max-bytes", type=int, default=16_000_000,
                   help="small, so that long outages reach it (0: the default 1 GiB)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", help="working directory (default: a new one under /tmp)")
    args = p.parse_args()
    result = asyncio.run(soak(args))
    path = write_result("soak", result)
    keys = ("minutes", "kills", "kills_during_startup", "sent", "acknowledged", "stored",
            "duplicates", "lost", "resent_inside_new_batches")
    print(json.dumps({k: result.get(k) for k in keys}))
    print(f"SIGTERM exits (s): {result['sigterm_exit_s']}; restarts (s, max):"
          f" {max(result['restart_s'], default=0)}")
    for o in result["outages"]:
        print(f"outage {o['seconds']}s: filled {o['spooled_rows']} rows at"
              f" {o['fill_rows_per_s']}/s, noticed after {o['noticed_after_s']}s, drained after"
              f" {o['drained_after_s']}s (writer {o['writer_rows_per_s']} rows/s, backlog"
              f" {o['backlog_rows_per_s']}/s); refused events clients"
              f" {o['refused_events_clients']} / collector {o['refused_events_collector']};"
              f" SIGTERM exit {o['sigterm_exit_s']}s")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
