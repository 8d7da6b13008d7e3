"""Two collector processes over one ClickHouse server (the test endpoint, tests/chserver),
each with its own spool: started together on an empty database, a batch resent to
the other collector while the first still holds it, a deletion while the other holds
the install's events, and the CLI over ``--clickhouse-url``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from quietly_collector.commands import main as cli
from quietly_collector.storage.lease import Lease
from quietly_collector.storage.migrations import migration_files
from quietly_collector.storage.store import Store
from tests import scaleout as so
from tests.conftest import make_settings
from tests.helpers import ADMIN_TOKEN, batch, event

LAST = max(v for v, _, _ in migration_files())
# A's writer stores at most every 3 s: what it accepts waits in its spool meanwhile.
SLOW_MS = 3000


@pytest.fixture(scope="module")
def pair(ch_http: str, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[so.Proc, so.Proc, str]]:
    """Collectors A (slow writer) and B, launched at the same moment on an empty database."""
    tmp = tmp_path_factory.mktemp("pair")
    db = "so_" + uuid.uuid4().hex[:10]
    procs = [so.launch(so.config(tmp / f"{n}.toml", ch_http, db, tmp / n, flush_interval_ms=ms,
                                 flush_idle_ms=0), tmp / n)
             for n, ms in (("a", SLOW_MS), ("b", 50))]
    try:
        for p in procs:
            so.wait_ready(p)
        yield procs[0], procs[1], db
    finally:
        for p in procs:
            p.stop()


def _tables(ch: Any) -> set[tuple[str, str]]:
    rows = ch.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase()"
                    " AND NOT startsWith(name, 'lease_')").result_rows
    return {(str(n), str(e)) for n, e in rows}


def test_two_collectors_started_together_migrate_once(
        pair: tuple[so.Proc, so.Proc, str], ch_http: str, tmp_path: Path) -> None:
    a, b, db = pair
    ch = so.client(ch_http, db)
    assert ch.query("SELECT version, count() FROM schema_migrations GROUP BY version"
                    " ORDER BY version").result_rows == [(v, 1) for v in range(1, LAST + 1)]
    # One set of tables: the same as `quietly migrate` makes alone over HTTP.
    alone = "so_" + uuid.uuid4().hex[:10]
    assert cli.main(["migrate", "--clickhouse-url", f"{ch_http}/{alone}"]) == 0
    assert _tables(ch) == _tables(so.client(ch_http, alone)) != set()
    # One leader among them.
    assert sorted(_stats(p)["leader"]["held"] for p in (a, b)) == [False, True]


def _stats(p: so.Proc) -> dict[str, Any]:
    import urllib.request

    req = urllib.request.Request(p.url + "/v1/stats",
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        out: dict[str, Any] = json.loads(resp.read())
    return out


def _warm(a: so.Proc) -> None:
    """A lone event goes in at once; what follows within SLOW_MS waits in A's spool."""
    assert a.post("/v1/batch", batch([event()]))[0] == 200
    time.sleep(0.3)


def _wait(cond: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_resend_to_the_other_collector_is_stored_and_counted_once(
        pair: tuple[so.Proc, so.Proc, str], ch_http: str) -> None:
    a, b, db = pair
    ch = so.client(ch_http, db)
    app = "resend-" + uuid.uuid4().hex[:6]
    ctx = {"app": app, "app_version": "1.0.0", "consent": "basic"}
    ts = datetime.now(UTC) - timedelta(seconds=5)
    events = [event("feature_used", {"feature": "search"}, ts=ts, context=ctx) for _ in range(30)]
    events += [event("deployment", {"environment": "production", "success": True}, ts=ts,
                     context=ctx) for _ in range(12)]
    _warm(a)
    assert a.post("/v1/batch", batch(events))[1]["accepted"] == 42
    # The acknowledgement was lost: the SDK resends, and the balancer picks B.
    assert b.post("/v1/batch", batch(events))[1]["accepted"] == 42

    def stored() -> int:
        return int(ch.query("SELECT count() FROM events WHERE app = {a:String}",
                            parameters={"a": app}).result_rows[0][0])

    _wait(lambda: stored() == 42)
    assert int(json.loads(_ready(a))["spool_rows"]) > 0, "A no longer held the first copy"
    so.settled(ch, [a, b])
    assert stored() == 42
    day = ts.date().isoformat()
    q = f"(since = '{day}', until = '{day}', app = '{app}')"
    assert ch.query(f"SELECT sum(uses) FROM metric_feature_adoption{q}").result_rows == [(30,)]
    assert ch.query(f"SELECT sum(all_deployments) FROM metric_deployments{q}"
                    ).result_rows == [(12,)]
    # And the CLI reads the same over --clickhouse-url.
    url = f"{ch_http}/{db}"
    assert cli.main(["query", "deployments", "--direct", "--clickhouse-url", url, "--app", app,
                     "--since", day, "--until", day, "--format", "json"]) == 0


def _ready(p: so.Proc) -> bytes:
    import urllib.request

    with urllib.request.urlopen(p.url + "/readyz", timeout=10) as resp:
        return bytes(resp.read())


def test_a_deletion_while_the_other_collector_holds_the_installs_events(
        pair: tuple[so.Proc, so.Proc, str], ch_http: str) -> None:
    a, b, db = pair
    ch = so.client(ch_http, db)
    install = str(uuid.uuid4())
    _warm(a)
    mine = [event(install_id=install) for _ in range(8)]
    assert a.post("/v1/batch", batch(mine))[1]["accepted"] == 8
    request = event("deletion_request", {}, install_id=install)
    assert b.post("/v1/batch", batch([request]))[1]["accepted"] == 1
    _wait(lambda: ch.query("SELECT count() FROM deletion_receipts").result_rows[0][0] == 1)
    assert int(json.loads(_ready(a))["spool_rows"]) > 0, "A no longer held the events"
    so.settled(ch, [a, b])
    hashes = ch.query("SELECT install_hash FROM deletion_receipts").result_rows
    tables = ch.query("SELECT DISTINCT table FROM system.columns WHERE database ="
                      " currentDatabase() AND name = 'install_hash' AND table IN (SELECT name"
                      " FROM system.tables WHERE database = currentDatabase()"
                      " AND engine LIKE '%MergeTree') AND table != 'deletion_receipts'"
                      ).result_rows
    assert len(tables) > 5
    for (table,) in tables:
        left = ch.query(f"SELECT count() FROM {table} WHERE install_hash = {hashes[0][0]}")
        assert left.result_rows == [(0,)], table


def test_the_cli_over_http(pair: tuple[so.Proc, so.Proc, str], ch_http: str,
                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, db = pair
    url = f"{ch_http}/{db}"
    assert cli.main(["gc", "--direct", "--clickhouse-url", url, "--format", "json"]) == 0
    assert "expired_rows" in capsys.readouterr().out
    out = tmp_path / "report.md"
    assert cli.main(["report", "--direct", "--clickhouse-url", url, "--output", str(out)]) == 0
    assert out.read_text().startswith("#")


def test_a_collector_refuses_a_newer_schema(ch_http: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    db = "so_" + uuid.uuid4().hex[:10]
    url = f"{ch_http}/{db}"
    assert cli.main(["migrate", "--clickhouse-url", url]) == 0
    so.client(ch_http, db).command(
        f"INSERT INTO schema_migrations (version, name) VALUES ({LAST + 1}, 'from_the_future')")
    capsys.readouterr()
    assert cli.main(["migrate", "--clickhouse-url", url]) != 0
    message = f"schema version {LAST + 1}, newer than this collector's {LAST}"
    assert message in capsys.readouterr().err
    proc = so.launch(so.config(tmp_path / "c.toml", ch_http, db, tmp_path / "c"), tmp_path / "c")
    assert proc.popen.wait(60) != 0
    assert message in proc.log.read_text()


def test_a_lease_has_one_holder_and_moves_when_its_holder_falls_silent(
        ch_http: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, tmp_path, clickhouse_url=f"{ch_http}/so_leases")
    store = Store(settings)
    store.connect()
    store.command("CREATE TABLE IF NOT EXISTS leases (name String, epoch UInt64,"
                  " holder String, renewed_at DateTime64(3, 'UTC'),"
                  " expires_at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY name")
    name = "t" + uuid.uuid4().hex[:8]
    try:
        one, two = Lease(store, name, 2, "one"), Lease(store, name, 2, "two")
        assert one.acquire() and not two.acquire()
        assert one.acquire() and one.valid() and not two.valid()
        time.sleep(1.1)  # one renews no more: past half its time it stops acting
        assert not one.valid() and not two.acquire()
        _wait(two.acquire, timeout=5)
        assert not one.acquire(), "the silent holder must find it lost"
        two.release()
        assert one.acquire(), "a released lease is free at once"
        assert [h[:2] for h in one.holders()] == [(1, "one"), (2, "two"), (3, "one")]
    finally:
        store.close()


def test_a_collector_with_another_pseudonym_secret_refuses_to_start(
        pair: tuple[so.Proc, so.Proc, str], ch_http: str, tmp_path: Path) -> None:
    _, _, db = pair
    cfg = so.config(tmp_path / "c.toml", ch_http, db, tmp_path / "c",
                    pseudonym_secret="a-secret-of-its-own-0123456789")
    proc = so.launch(cfg, tmp_path / "c")
    assert proc.popen.wait(60) != 0
    assert "was written with another pseudonym secret" in proc.log.read_text()


def _chserver(path: Path, port: int = 0) -> tuple[Any, str]:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "tests.chserver", "--path", str(path),
                             "--port", str(port)], stdout=subprocess.PIPE, text=True,
                            cwd=so.ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    return proc, line.split()[-1]


def test_the_server_going_away_and_back_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """The HTTP client's failures and reconnection: acknowledged batches wait in the
    spool while the server is down, /readyz says so, and all are stored once after."""
    server, url = _chserver(tmp_path / "clickhouse")
    c = None
    try:
        c = so.start(tmp_path, "c", url, "outage")
        first = [event() for _ in range(10)]
        assert c.post("/v1/batch", batch(first))[0] == 200
        so.settled(so.client(url, "outage"), [c])
        server.terminate()
        server.wait(20)
        second = [event() for _ in range(10)]
        assert c.post("/v1/batch", batch(second))[0] == 200
        # A resend of the first batch is caught by the collector's memory meanwhile.
        assert c.post("/v1/batch", batch(first))[1]["duplicates"] == 10

        def not_ready() -> bool:
            try:
                _ready(c)
            except Exception:
                return True
            return False

        _wait(not_ready)
        server, _ = _chserver(tmp_path / "clickhouse", int(url.rsplit(":", 1)[1]))
        _wait(lambda: not not_ready(), timeout=30)
        ch = so.client(url, "outage")
        so.settled(ch, [c])
        assert ch.query("SELECT count(), uniqExact(event_id) FROM events").result_rows == [
            (20, 20)]
    finally:
        if c is not None:
            c.stop()
        server.terminate()
        server.wait(20)
