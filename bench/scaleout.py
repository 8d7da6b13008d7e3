"""Scale-out soak: three collectors over one ClickHouse server, resends to another
collector, random SIGKILLs; then count, and compare the metrics with one collector's.

    python bench/scaleout.py --minutes 4
    python bench/scaleout.py --minutes 1 --rate 500   # a short one

The server is the test ClickHouse HTTP endpoint (tests/chserver, the real engine in
its own process); the collectors are ``quietly serve`` processes (tests/scaleout.py),
each with its own spool, behind a "load balancer" that picks one at random per
request. SDK-like clients send batches until one is acknowledged, moving to another
collector on an error; a share of acknowledged batches (``--resend``, 5 %) is sent
again to a different collector, as an SDK whose acknowledgement was lost would. Every
15-30 s one collector, the leader lease's holder half of the time, is killed with
SIGKILL and restarted on its spool a few seconds later. At the end: acknowledged,
stored, duplicates and lost; the time the leader lease took to move after each kill
of its holder; and every metric view compared with those of one collector fed the
acknowledged events once each. Results: printed, and bench/results/scaleout-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script
from bench.soak_common import utc_stamp, write_result
from tests import scaleout as so
from tests.helpers import ADMIN_TOKEN, WRITE_KEY

BATCH = 50
HEADERS = {"Authorization": f"Bearer {WRITE_KEY}", "Content-Type": "application/json"}
VIEWS = ("metric_dau", "metric_sessions", "metric_feature_adoption", "metric_deployments")


@dataclass
class Fleet:
    tmp: Path
    ch_url: str
    db: str
    procs: list[so.Proc | None]
    extra: dict[str, Any]

    def live(self) -> list[so.Proc]:
        return [p for p in self.procs if p is not None and p.url]

    def restart(self, i: int) -> None:
        data = self.tmp / f"c{i}"
        data.mkdir(exist_ok=True)
        cfg = so.config(data / "quietly.toml", self.ch_url, self.db, data, **self.extra)
        self.procs[i] = so.wait_ready(so.launch(cfg, data))


@dataclass
class Client:
    rng: random.Random
    rate: float
    resend: float
    installs: list[str]
    acked: dict[str, bytes] = field(default_factory=dict)  # event_id -> its JSON
    resent: int = 0
    redirected: int = 0
    producing: bool = True

    def batch(self) -> list[bytes]:
        now = datetime.now(UTC) - timedelta(seconds=1)
        out = []
        for _ in range(BATCH):
            inst = self.rng.choice(self.installs)
            kind = self.rng.random()
            ev: dict[str, Any] = {"event_id": str(uuid.UUID(int=self.rng.getrandbits(128),
                                                            version=4)),
                                  "ts": now.isoformat().replace("+00:00", "Z"),
                                  "install_id": inst, "session_id": None,
                                  "context": {"app": f"app{self.installs.index(inst) % 3}",
                                              "app_version": "1.0.0", "consent": "basic"}}
            if kind < 0.6:
                ev |= {"event": "feature_used",
                       "props": {"feature": self.rng.choice(["search", "build", "debug"])}}
            elif kind < 0.8:
                ev |= {"event": "deployment", "props": {
                    "environment": self.rng.choice(["production", "staging"]),
                    "success": self.rng.random() < 0.9}}
            else:
                ev |= {"event": "session_start", "props": {},
                       "session_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4))}
            out.append(json.dumps(ev).encode())
        return out

    async def run(self, fleet: Fleet, s: aiohttp.ClientSession) -> None:
        interval = BATCH / self.rate
        while self.producing:
            events = self.batch()
            data = b'{"events":[' + b",".join(events) + b"]}"
            took = await self.deliver(fleet, s, data, None)
            for e in events:
                self.acked[json.loads(e)["event_id"]] = e
            if self.rng.random() < self.resend:  # the acknowledgement was lost
                self.resent += len(events)
                await self.deliver(fleet, s, data, took)
            await asyncio.sleep(interval * self.rng.uniform(0.5, 1.5))

    async def deliver(self, fleet: Fleet, s: aiohttp.ClientSession, data: bytes,
                      avoid: str | None) -> str:
        """Until acknowledged; another collector after an error, never ``avoid``."""
        while True:
            live = [p for p in fleet.live() if p.url != avoid] or fleet.live()
            if not live:
                await asyncio.sleep(0.2)
                continue
            url = self.rng.choice(live).url
            try:
                async with s.post(url + "/v1/batch", data=data, headers=HEADERS) as resp:
                    if resp.status == 200:
                        return url
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.redirected += 1
            avoid = url
            await asyncio.sleep(0.05)


async def _leader(fleet: Fleet, s: aiohttp.ClientSession) -> so.Proc | None:
    for p in fleet.live():
        try:
            async with s.get(p.url + "/v1/stats",
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
                if (await resp.json())["leader"]["held"]:
                    return p
        except (aiohttp.ClientError, TimeoutError, KeyError, ValueError):
            pass
    return None


async def chaos(fleet: Fleet, rng: random.Random, until: float, s: aiohttp.ClientSession,
                out: dict[str, Any]) -> None:
    while time.monotonic() + 20 < until:
        await asyncio.sleep(rng.uniform(15, 30))
        leader = await _leader(fleet, s)
        victim = leader if leader is not None and rng.random() < 0.5 else rng.choice(fleet.live())
        i = fleet.procs.index(victim)
        victim.url = ""  # the balancer stops picking it
        victim.kill()
        out["kills"] += 1
        if victim is leader:
            killed = time.monotonic()
            while await _leader(fleet, s) is None:
                await asyncio.sleep(0.2)
            out["leader_takeover_s"].append(round(time.monotonic() - killed, 2))
        await asyncio.sleep(rng.uniform(2, 5))
        await asyncio.to_thread(fleet.restart, i)


def _views(ch: Any) -> dict[str, list[Any]]:
    today = datetime.now(UTC).date()
    q = f"(since = '{today - timedelta(days=1)}', until = '{today}', app = '')"
    return {v: [list(map(str, r)) for r in ch.query(f"SELECT * FROM {v}{q}").result_rows]
            for v in VIEWS}


def _reference(fleet: Fleet, events: list[bytes]) -> dict[str, list[Any]]:
    """One collector, another database, each acknowledged event once."""
    db = fleet.db + "_one"
    data = fleet.tmp / "one"
    cfg = so.config(data.with_suffix(".toml"), fleet.ch_url, db, data)
    one = so.wait_ready(so.launch(cfg, data))
    try:
        for i in range(0, len(events), 500):
            body = {"events": [json.loads(e) for e in events[i:i + 500]]}
            status, _ = one.post("/v1/batch", body, timeout=60)
            assert status == 200, status
        ch = so.client(fleet.ch_url, db)
        so.settled(ch, [one], timeout=300)
        return _views(ch)
    finally:
        one.stop()


async def scaleout(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(args.work or f"/tmp/quietly-scaleout-{utc_stamp()}")
    tmp.mkdir(parents=True)
    server = subprocess.Popen([sys.executable, "-m", "tests.chserver", "--path",
                               str(tmp / "clickhouse")], stdout=subprocess.PIPE, text=True,
                              cwd=so.ROOT)
    assert server.stdout is not None
    ch_url = server.stdout.readline().split()[-1]
    fleet = Fleet(tmp, ch_url, "scaleout", [None] * args.collectors,
                  {"lease_ttl_s": args.lease_ttl, "flush_interval_ms": 1000,
                   "promote_interval_ms": 200, "ingest_staging": args.ingest_staging})
    rng = random.Random(args.seed)
    out: dict[str, Any] = {"kills": 0, "leader_takeover_s": []}
    try:
        await asyncio.gather(*(asyncio.to_thread(fleet.restart, i)
                               for i in range(args.collectors)))
        installs = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(300)]
        clients = [Client(random.Random(args.seed * 100 + i), args.rate / args.clients,
                          args.resend, installs) for i in range(args.clients)]
        started = time.monotonic()
        until = started + args.minutes * 60
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as s:
            tasks = [asyncio.create_task(c.run(fleet, s)) for c in clients]
            await chaos(fleet, rng, until, s, out)
            await asyncio.sleep(max(0.0, until - time.monotonic()))
            for c in clients:
                c.producing = False
            await asyncio.gather(*tasks)
        ch = so.client(ch_url, fleet.db)
        await asyncio.to_thread(so.settled, ch, fleet.live(), 300)
        acked: dict[str, bytes] = {}
        for c in clients:
            acked.update(c.acked)
        [(rows, distinct)] = ch.query("SELECT count(), uniqExact(event_id) FROM events"
                                      ).result_rows
        stored = {str(r[0]) for r in ch.query("SELECT event_id FROM events").result_rows}
        out.update({
            "minutes": round((time.monotonic() - started) / 60, 2),
            "acknowledged": len(acked), "stored": int(distinct), "stored_rows": int(rows),
            "duplicates": int(rows) - int(distinct), "lost": len(set(acked) - stored),
            "stored_not_acknowledged": len(stored - set(acked)),
            "resent_to_another_collector": sum(c.resent for c in clients),
            "redirected_after_errors": sum(c.redirected for c in clients),
        })
        views = _views(ch)
        reference = await asyncio.to_thread(_reference, fleet, list(acked.values()))
        out["metrics_equal_single_collector"] = views == reference
        out["metric_rows"] = {v: len(r) for v, r in views.items()}
        if views != reference:
            out["metrics_diff"] = {v: [views[v], reference[v]] for v in VIEWS
                                   if views[v] != reference[v]}
    finally:
        for p in fleet.procs:
            if p is not None:
                p.stop()
        server.terminate()
        server.wait(30)
    out["args"] = vars(args)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--rate", type=float, default=1000.0, help="events/s from all clients")
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--collectors", type=int, default=3)
    p.add_argument("--resend", type=float, default=0.05,
                   help="share of acknowledged batches sent again to another collector")
    p.add_argument("--lease-ttl", type=int, default=10, help="lease_ttl_s of the collectors")
    p.add_argument("--ingest-staging", default="on", choices=("on", "off"),
                   help="off: what several collectors stored before staging (duplicates)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", help="working directory (default: a new one under /tmp)")
    args = p.parse_args()
    result = asyncio.run(scaleout(args))
    path = write_result("scaleout", result)
    print(json.dumps({k: v for k, v in result.items() if k != "metrics_diff"}))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
