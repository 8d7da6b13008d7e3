"""The leader lease over one ClickHouse server (tests/chserver): of three collectors
one holds it and alone sends alerts; killed with SIGKILL, another takes over within
the lease's time to live, and the firing alert is not sent again."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests import alert_data as d
from tests import scaleout as so
from tests.alert_data import TODAY
from tests.alert_webhook import Receiver, receiver  # noqa: F401 (fixture)
from tests.helpers import ADMIN_TOKEN, batch

TTL_S = 3
BUSY = {"name": "busy", "metric": "sessions", "column": "sessions", "aggregate": "sum",
        "threshold": 5, "severity": "critical"}


def _held(p: so.Proc) -> bool:
    req = urllib.request.Request(p.url + "/v1/stats",
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return bool(json.loads(resp.read())["leader"]["held"])
    except OSError:
        return False


async def _until(cond: Any, timeout: float) -> float:
    started = time.monotonic()
    while not await asyncio.to_thread(cond):
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_killing_the_leader_moves_alerts_to_another_collector_without_resending(
        ch_http: str, tmp_path: Path, receiver: Receiver) -> None:  # noqa: F811
    db = "lead_" + uuid.uuid4().hex[:10]
    extra = {"alert_interval_s": 1, "alert_webhooks": [receiver.url], "alert_rules": [BUSY],
             "lease_ttl_s": TTL_S}
    procs = [so.launch(so.config(tmp_path / f"{n}.toml", ch_http, db, tmp_path / n, **extra),
                       tmp_path / n) for n in ("a", "b", "c")]
    try:
        for p in procs:
            await asyncio.to_thread(so.wait_ready, p)
        status, _ = await asyncio.to_thread(
            procs[1].post, "/v1/batch", batch(d.sessions("app1", TODAY, 10)))
        assert status == 200
        await _until(lambda: bool(receiver.got), 30)
        # Never two holders while all three live.
        for _ in range(10):
            held = [p for p in procs if await asyncio.to_thread(_held, p)]
            assert len(held) == 1
            await asyncio.sleep(0.1)
        leader = held[0]
        leader.kill()
        rest = [p for p in procs if p is not leader]
        took = await _until(lambda: any(_held(p) for p in rest), 60)
        # Holder silent: its lease ends ttl after its last heartbeat; candidates look
        # every third of it.
        assert took < TTL_S + TTL_S / 3 + 5
        await asyncio.sleep(3)  # three alert intervals under the new holder
        assert receiver.kinds() == [("busy", "app=app1", "firing")]
        ch = so.client(ch_http, db)
        spans = ch.query("SELECT epoch, min(renewed_at), max(expires_at) FROM leases"
                         " WHERE name = 'leader' GROUP BY epoch ORDER BY epoch").result_rows
        assert len(spans) == 2
        assert spans[1][1] >= spans[0][2], "the new holder began before the old lease expired"
    finally:
        for p in procs:
            p.stop()
