"""Retention per table, the maintenance cycle (gc), and the audit log."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from quietly_collector.settings import RETENTION_COLUMNS
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import ADMIN_TOKEN, WRITE_KEY, body, event, headers, now
from tests.storage.test_deletion import A, B, deletion, install_hash, per_install

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}


async def _admin(running: Running, method: str, path: str, payload: Any = None,
                 request_id: str = "") -> tuple[int, Any]:
    hdrs = {**ADMIN, **({"X-Request-Id": request_id} if request_id else {})}
    data = json.dumps(payload).encode() if payload is not None else None
    async with running.session.request(method, running.url + path, data=data,
                                       headers=hdrs) as resp:
        return resp.status, await resp.json(content_type=None)


def _ttl_of(running: Running) -> dict[str, str]:
    rows = running.rows("SELECT name, create_table_query FROM system.tables"
                        " WHERE database = currentDatabase()")
    return {name: ddl.split(" TTL ")[1].split(" SETTINGS ")[0] if " TTL " in ddl else ""
            for name, ddl in rows}


async def test_each_table_gets_its_configured_ttl_and_gc_expires_rows_now(
    tmp_path: Path, chdb_path: Path
) -> None:
    settings = make_settings(
        tmp_path, chdb_path, retention_days=30, aggregate_retention_days=60,
        table_retention_days={"agg_sessions": 90, "deletion_receipts": 3650},
    )
    running = await start(settings)
    stopped = ("events", "agg_performance", "agg_sessions")
    try:
        days = {t: 30 if t in ("events", "rejected_events") else 60 for t in RETENTION_COLUMNS}
        days.update(agg_sessions=90, deletion_receipts=3650, audit_log=0)
        ttl = _ttl_of(running)
        for table, column in RETENTION_COLUMNS.items():
            want = f"toDateTime({column}) + toIntervalDay({days[table]})" if days[table] else ""
            assert ttl[table] == want, table
        # As on a server between two TTL merges (merge_with_ttl_timeout): expired rows
        # stay until something rewrites their part.
        for table in stopped:
            running.store.command(f"SYSTEM STOP TTL MERGES {table}")
        ages = [100, 45, 0]
        status, result = await running.post(
            "/v1/batch", body([event("performance", {"operation": "startup", "duration_ms": 900},
                                     ts=now() - timedelta(days=d, seconds=5)) for d in ages]),
            headers())
        assert (status, result["accepted"]) == (200, 3)
        await running.settle()
        assert running.rows("SELECT count() FROM events") == [(3,)]
        assert running.rows("SELECT count() FROM agg_sessions") == [(3,)]

        status, report = await _admin(running, "POST", "/v1/admin/gc")
        assert status == 200
        # Events past 30 days (2), performance days past 60 (1), sessions past 90 (1); other
        # aggregates may have been merged by ClickHouse already.
        found = {t: report["expired_rows"].get(t) for t in stopped}
        assert (found["events"], found["agg_performance"]) == (2, 1)
        # agg_sessions has no partitions: when the old event was inserted on its own,
        # its whole part expired and ClickHouse may drop such a part without a TTL merge.
        assert found["agg_sessions"] in (None, 1)
        for table, column in RETENTION_COLUMNS.items():
            if days[table]:
                assert running.rows(
                    f"SELECT count() FROM {table}"
                    f" WHERE toDateTime({column}) < now() - toIntervalDay({days[table]})"
                ) == [(0,)], table
        assert running.rows("SELECT count() FROM events") == [(1,)]
        assert running.rows("SELECT count() FROM agg_performance") == [(2,)]
        # A live row of a day set keeps only its unexpired days (45 and 0 days old).
        assert running.rows(
            "SELECT length(groupUniqArrayArray(days)), min(arrayMin(days)) >= today() - 60"
            " FROM agg_active_days_v2") == [(2, True)]
        [(actor, detail)] = running.rows(
            "SELECT actor, detail FROM audit_log WHERE action = 'gc'")
        assert actor == "admin" and json.loads(detail)["expired_rows"] == report["expired_rows"]
    finally:
        for table in stopped:
            running.store.command(f"SYSTEM START TTL MERGES {table}")
        await stop(running)


async def test_rows_of_a_deleted_install_are_gone_after_one_maintenance_cycle(
    tmp_path: Path, chdb_path: Path
) -> None:
    running = await start(make_settings(tmp_path, chdb_path, maintenance_interval_s=1))
    try:
        await running.post("/v1/batch", body([event(install_id=A), event(install_id=B),
                                              deletion(A)]), headers())
        await running.settle()
        a, b = install_hash(running, A), install_hash(running, B)
        assert per_install(running) == {b: 1}
        writer = running.collector.writer
        assert writer is not None
        # As if an insert had raced the deletion (or another collector stored a late
        # event): straight into events, past ingest; the views fill the aggregates.
        async with writer.lock:  # no cycle runs meanwhile
            running.store.command(
                "INSERT INTO events (event_id, project, event, version, install_hash,"
                " session_hash, ts, client_ts, received_at, props) VALUES (generateUUIDv4(),"
                f" 'proj', 'feature_used', 1, {a}, 7, now64(3), now64(3), now64(3),"
                " '{\"feature\":\"x\"}')"
            )
            tables = [t for (t,) in running.rows(
                "SELECT DISTINCT table FROM system.columns WHERE database = currentDatabase()"
                " AND name = 'install_hash' AND table NOT IN ('deletion_receipts')"
                " AND table IN (SELECT name FROM system.tables WHERE database ="
                " currentDatabase() AND engine LIKE '%MergeTree')")]
            found = {t: per_install(running, t).get(a, 0) for t in tables}
            assert found["events"] == 1 and found["agg_active_days_v2"] == 1
            runs = running.collector.maintenance.runs
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while running.collector.maintenance.runs <= runs:
            assert loop.time() < deadline, "no maintenance cycle ran"
            await asyncio.sleep(0.05)
        for table in tables:
            assert a not in per_install(running, table), table
        assert per_install(running) == {b: 1}
        _, stats = await _admin(running, "GET", "/v1/stats")
        stray = {t: n for t, n in found.items() if n}
        assert stats["counters"]["deletion_stray_rows_deleted"] == sum(stray.values())
        details = [json.loads(d) for (d,) in running.rows(
            "SELECT detail FROM audit_log WHERE action = 'gc' AND actor = 'system'")]
        assert [d["stray_rows_deleted"] for d in details if d["stray_rows_deleted"]] == [stray]
    finally:
        await stop(running)


def _audit(running: Running) -> dict[str, int]:
    rows = running.rows("SELECT action, count() FROM audit_log GROUP BY action")
    return {str(a): int(n) for a, n in rows}


async def test_each_admin_and_deletion_action_writes_exactly_one_audit_row(
    server: Running,
) -> None:
    assert _audit(server) == {}
    mail = "jane@example.com"
    query = f"SELECT count() FROM events WHERE event_id = '{A}' OR props LIKE '%{mail}%'"
    assert (await _admin(server, "POST", "/v1/sql", {"sql": query}, "req-1"))[0] == 200
    assert _audit(server) == {"sql": 1}
    assert (await _admin(server, "POST", "/v1/sql", {"sql": "SELEC nothing"}))[0] == 400
    assert _audit(server) == {"sql": 2}
    # Reads of counters and metrics are not logged; refused calls are not actions.
    for path in ("/v1/stats", "/v1/metrics", "/v1/metrics/dau"):
        assert (await _admin(server, "GET", path))[0] == 200
    sql = json.dumps({"sql": "SELECT 1"}).encode()
    assert (await server.post("/v1/sql", sql, headers(WRITE_KEY)))[0] == 403
    assert _audit(server) == {"sql": 2}
    assert (await _admin(server, "POST", "/v1/admin/gc"))[0] == 200
    assert _audit(server) == {"sql": 2, "gc": 1}

    first, second = deletion(A), deletion(B)
    await server.post("/v1/batch", body([event(install_id=A), first]), headers())
    await server.post("/v1/batch", body([first, second]), headers())  # a resend, and B
    await server.settle()
    assert _audit(server) == {"sql": 2, "gc": 1, "deletion_applied": 2}

    rows = server.rows("SELECT actor, action, outcome, detail, request_id FROM audit_log"
                       " ORDER BY at, action")
    assert [r[:3] for r in rows] == [
        ("admin", "sql", "ok"), ("admin", "sql", "error"), ("admin", "gc", "ok"),
        ("project:proj", "deletion_applied", "ok"), ("project:proj", "deletion_applied", "ok"),
    ]
    assert rows[0][4] == "req-1"
    assert json.loads(rows[0][3]) == {
        "rows": 1, "sql": "SELECT count() FROM events WHERE event_id = '[uuid]'"
                          " OR props LIKE '%[email]%'"}
    receipts = {r: {"rows_deleted": n, "tables": k} for r, n, k in server.rows(
        "SELECT toString(request_id), rows_deleted, length(rows_by_table)"
        " FROM deletion_receipts")}
    assert {r[4]: json.loads(r[3]) for r in rows[3:]} == receipts
    assert receipts[first["event_id"]]["rows_deleted"] > 0
    dump = json.dumps(rows, default=str)
    assert A not in dump and B not in dump and mail not in dump
    # Deletions cannot reach the audit log: it has no install_hash.
    columns = {c for (c,) in server.rows(
        "SELECT name FROM system.columns WHERE database = currentDatabase()"
        " AND table = 'audit_log'")}
    assert columns == {"at", "actor", "action", "outcome", "detail", "request_id"}


async def test_a_deletion_retried_after_its_receipt_failed_keeps_one_audit_row(
    server: Running,
) -> None:
    # The receipt insert fails (the audit row is written before it) until the constraint
    # goes; the writer retries the whole deletion meanwhile.
    server.store.command("ALTER TABLE deletion_receipts ADD CONSTRAINT refuse CHECK 0")
    await server.post("/v1/batch", body([event(install_id=A), deletion(A)]), headers())
    writer = server.collector.writer
    assert writer is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while writer.stats.insert_failures < 2:
        assert loop.time() < deadline
        await asyncio.sleep(0.02)
    assert server.rows("SELECT count() FROM deletion_receipts") == [(0,)]
    assert _audit(server) == {"deletion_applied": 1}
    server.store.command("ALTER TABLE deletion_receipts DROP CONSTRAINT refuse")
    await server.settle()
    assert server.rows("SELECT count() FROM deletion_receipts") == [(1,)]
    assert _audit(server) == {"deletion_applied": 1}


def test_quietly_gc_goes_through_the_running_collector_or_direct(tmp_path: Path) -> None:
    from tests.commands.test_cli import _serve, run

    proc, url, _ = _serve(tmp_path)
    try:
        got = run("gc", "--url", url, cwd=tmp_path)  # the admin token of the data directory
        assert got.returncode == 0, got.stderr
        assert "expired rows removed: none" in got.stdout
        assert "rows of deleted installs removed: none" in got.stdout
        assert "aggregate parts merged away: " in got.stdout
        got = run("gc", "--url", url, "--format", "json", cwd=tmp_path)
        assert set(json.loads(got.stdout)) == {
            "expired_rows", "stray_rows_deleted", "parts_compacted", "mutations_killed",
            "seconds"}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    got = run("gc", "--url", url, cwd=tmp_path)
    assert got.returncode == 1 and "--direct" in got.stderr
    got = run("gc", "--direct", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    got = run("sql", "SELECT actor FROM audit_log WHERE action = 'gc' ORDER BY at",
              "--direct", "--format", "json", cwd=tmp_path)
    assert json.loads(got.stdout)["rows"] == [["admin"], ["admin"], ["cli"]]


async def test_gc_clears_a_failed_mutation_that_blocked_a_deletion(server: Running) -> None:
    await server.post("/v1/batch", body([event(install_id=A)]), headers())
    await server.settle()
    server.store.command("ALTER TABLE events UPDATE props = toString(throwIf(1)) WHERE 1"
                         " SETTINGS mutations_sync = 0")
    # Mutations run in order: the deletion's fails behind this one, and is retried.
    await server.post("/v1/batch", body([deletion(A)]), headers())
    writer = server.collector.writer
    assert writer is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while writer.stats.insert_failures < 1:
        assert loop.time() < deadline, "the deletion did not fail"
        await asyncio.sleep(0.05)
    status, report = await _admin(server, "POST", "/v1/admin/gc")
    assert status == 200 and report["mutations_killed"] >= 1
    await server.settle()
    assert server.rows("SELECT count() FROM deletion_receipts") == [(1,)]
    assert server.rows("SELECT count() FROM events") == [(0,)]
    assert server.rows("SELECT count() FROM system.mutations WHERE database ="
                       " currentDatabase() AND NOT is_done") == [(0,)]


async def test_gc_merges_aggregates_left_in_parts_and_the_views_answer_the_same(
    tmp_path: Path, chdb_path: Path
) -> None:
    from quietly_collector.insights import metrics

    running = await start(make_settings(tmp_path, chdb_path))
    tables = ("agg_performance_rollup_v2", "agg_active_days_v2", "agg_features_v2")
    try:
        for table in tables:
            # ClickHouse's own merges would race the cycle; OPTIMIZE is not limited.
            running.store.command(f"ALTER TABLE {table} MODIFY SETTING"
                                  " max_bytes_to_merge_at_max_space_in_pool = 1")
        for i in range(4):
            perf = event("performance", {"operation": "startup", "duration_ms": 900 + i})
            status, _ = await running.post("/v1/batch", body([event(), perf]), headers())
            assert status == 200
            await running.settle()

        def parts() -> dict[str, int]:
            return dict(running.rows(
                "SELECT table, max(n) FROM (SELECT table, partition_id, count() AS n"
                " FROM system.parts WHERE database = currentDatabase() AND active"
                f" AND table IN {tables} GROUP BY table, partition_id) GROUP BY table"
            ))

        def answers() -> dict[str, list[Any]]:
            since, until = (now() - timedelta(days=2)).date(), now().date()
            return {name: sorted(map(repr, metrics.run(running.store, metrics.parse_query(
                name, since.isoformat(), until.isoformat()))[1]))
                for name in ("performance", "retention", "feature_adoption", "mau")}

        assert parts() == {t: 4 for t in tables}
        before = answers()
        status, report = await _admin(running, "POST", "/v1/admin/gc")
        assert status == 200
        assert {t: report["parts_compacted"].get(t) for t in tables} == {t: 3 for t in tables}
        assert parts() == {t: 1 for t in tables}
        assert answers() == before and before["performance"]
    finally:
        await stop(running)
