"""deletion_request: the install's rows leave every per-install table, with one receipt."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from quietly_collector.storage.store import StorageError
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import ADMIN_TOKEN, body, event, headers

A = "a0000000-0000-4000-8000-00000000000a"
B = "b0000000-0000-4000-8000-00000000000b"


def deletion(install_id: str, consent: str = "off", **extra: Any) -> dict[str, Any]:
    ev = event("deletion_request", {}, install_id=install_id, consent=consent, **extra)
    ev["session_id"] = None
    return ev


def install_hash(running: Running, install_id: str) -> int:
    key = Path(running.collector.settings.data_dir) / "pseudonym.key"
    mac = hmac.new(bytes.fromhex(key.read_text().strip()), uuid.UUID(install_id).bytes,
                   hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big")


def per_install(running: Running, table: str = "events") -> dict[int, int]:
    rows = running.rows(f"SELECT install_hash, count() FROM {table} GROUP BY install_hash")
    return {int(h): int(n) for h, n in rows}


async def _wait(predicate: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_deletion_request_erases_the_install_everywhere_and_leaves_a_receipt(
    server: Running,
) -> None:
    # An aggregate added later (as issue 4 will): covered because it has install_hash.
    server.store.command(
        "CREATE TABLE daily_installs (day Date, install_hash UInt64, n UInt64)"
        " ENGINE = SummingMergeTree ORDER BY (day, install_hash)"
    )
    server.store.command(
        "CREATE MATERIALIZED VIEW daily_installs_mv TO daily_installs AS"
        " SELECT toDate(ts) AS day, install_hash, count() AS n FROM events"
        " GROUP BY day, install_hash"
    )
    status, result = await server.post(
        "/v1/batch", body([event(install_id=A) for _ in range(3)]
                          + [event(install_id=B) for _ in range(2)]), headers())
    assert (status, result["accepted"]) == (200, 5)
    await server.settle()
    a, b = install_hash(server, A), install_hash(server, B)
    assert per_install(server) == {a: 3, b: 2}

    request = deletion(A)
    status, result = await server.post("/v1/batch", body([request]), headers())
    assert (status, result) == (200, {"accepted": 1, "duplicates": 0, "rejected": []})
    await server.settle()

    assert per_install(server) == {b: 2}
    assert server.rows("SELECT install_hash, sum(n) FROM daily_installs GROUP BY 1") == [(b, 2)]
    [receipt] = server.rows(
        "SELECT toString(request_id), project, install_hash, rows_deleted, rows_by_table,"
        " completed_at >= received_at, received_at >= requested_at FROM deletion_receipts"
    )
    assert receipt[:3] == (request["event_id"], "proj", a)
    by_table = receipt[4]
    assert by_table["events"] == 3 and by_table["daily_installs"] == 1
    assert receipt[3] == sum(by_table.values())
    assert receipt[5:] == (True, True)
    # Every table holding per-install rows was searched, and holds none of A's now.
    tables = {t for (t,) in server.rows(
        "SELECT name FROM system.tables WHERE database = currentDatabase()"
        " AND engine NOT LIKE '%View' AND name != 'deletion_receipts' AND name IN"
        " (SELECT table FROM system.columns WHERE database = currentDatabase()"
        "  AND name = 'install_hash')"
    )}
    assert tables == set(by_table)
    for table in tables:
        assert a not in per_install(server, table), table
    # The install id itself is stored nowhere, the receipt included.
    dump = json.dumps(server.rows("SELECT * FROM deletion_receipts"), default=str)
    assert A not in dump and A.replace("-", "") not in dump

    async with server.session.get(
        server.url + "/v1/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as resp:
        stats = await resp.json()
    assert stats["deletions"] == {
        "received": 1, "applied": 1, "rows_deleted": receipt[3], "installs_deleted": 1
    }


async def test_events_of_a_deleted_install_are_refused_and_their_neighbours_stored(
    server: Running,
) -> None:
    before = event(install_id=A)
    after = event(install_id=A)
    neighbour = event(install_id=B)
    # Events sent before the request are deleted; one after it in the batch is refused.
    status, result = await server.post(
        "/v1/batch", body([before, deletion(A), after, neighbour]), headers())
    assert status == 200
    assert (result["accepted"], result["duplicates"]) == (3, 0)
    assert result["rejected"] == [{
        "index": 2, "event_id": after["event_id"],
        "reason": "install was deleted by a deletion_request at $.events[2].install_id",
    }]
    # Later batches too, before and after the writer applied the deletion.
    late = [event(install_id=A), event(install_id=B), event("crash", {"kind": "E"},
                                                            install_id=A)]
    status, result = await server.post("/v1/batch", body(late), headers())
    assert result["accepted"] == 1
    assert [(r["index"], r["reason"]) for r in result["rejected"]] == [
        (0, "install was deleted by a deletion_request at $.events[0].install_id"),
        (2, "install was deleted by a deletion_request at $.events[2].install_id"),
    ]
    await server.settle()
    status, result = await server.post("/v1/batch", body([event(install_id=A)]), headers())
    assert result["accepted"] == 0 and len(result["rejected"]) == 1
    await server.settle()
    b = install_hash(server, B)
    assert per_install(server) == {b: 2}
    assert server.rows("SELECT rows_by_table['events'] FROM deletion_receipts") == [(1,)]
    refused = server.rows(
        "SELECT event, count() FROM rejected_events WHERE reason LIKE 'install was deleted%'"
        " GROUP BY event ORDER BY event"
    )
    assert refused == [("crash", 1), ("feature_used", 3)]


@pytest.mark.parametrize("consent", ["off", "basic", "detailed"])
async def test_deletion_request_is_accepted_at_every_consent_level(
    server: Running, consent: str
) -> None:
    await server.post("/v1/batch", body([event(install_id=A)]), headers())
    status, result = await server.post(
        "/v1/batch", body([deletion(A, consent), event(install_id=B, consent="off")]), headers()
    )
    assert status == 200 and result["accepted"] == 1
    # Consent off still refuses every other event.
    assert [r["reason"] for r in result["rejected"]] == [
        "consent is off at $.events[1].context.consent"
    ]
    await server.settle()
    assert server.rows("SELECT count() FROM events") == [(0,)]
    assert server.rows("SELECT count() FROM deletion_receipts") == [(1,)]


async def test_a_replayed_deletion_request_is_a_duplicate_with_one_receipt(
    tmp_path: Path, chdb_path: Path
) -> None:
    settings = make_settings(tmp_path, chdb_path)
    request = deletion(A)
    first = await start(settings)
    try:
        await first.post("/v1/batch", body([event(install_id=A)]), headers())
        _, r1 = await first.post("/v1/batch", body([request]), headers())
        _, r2 = await first.post("/v1/batch", body([request, request]), headers())
        assert (r1["accepted"], r1["duplicates"]) == (1, 0)
        assert (r2["accepted"], r2["duplicates"]) == (0, 2)
        await first.settle()
    finally:
        await stop(first)
    # After a restart the id is known from the receipt (nothing is in memory).
    second = await start(settings)
    try:
        _, r3 = await second.post("/v1/batch", body([request]), headers())
        assert (r3["accepted"], r3["duplicates"], r3["rejected"]) == (0, 1, [])
        await second.settle()
        # No FINAL: the receipt was written once, not collapsed later.
        assert second.rows(
            "SELECT count(), sum(rows_by_table['events']) FROM deletion_receipts"
        ) == [(1, 1)]
    finally:
        await stop(second)


async def test_a_deletion_waits_in_the_spool_through_storage_outage_and_restart(
    tmp_path: Path, chdb_path: Path
) -> None:
    settings = make_settings(tmp_path, chdb_path)
    first = await start(settings)
    await first.post("/v1/batch", body([event(install_id=A) for _ in range(4)]
                                       + [event(install_id=B)]), headers())
    await first.settle()
    # Storage refuses: the deletion cannot be applied, yet it is acknowledged (spooled).
    first.store.command("DETACH TABLE deletion_receipts")
    status, result = await first.post("/v1/batch", body([deletion(A)]), headers())
    assert (status, result["accepted"]) == (200, 1)
    writer = first.collector.writer
    assert writer is not None
    await _wait(lambda: writer.stats.insert_failures >= 1)
    assert first.rows("SELECT count() FROM events") == [(5,)]
    first.store.command("ATTACH TABLE deletion_receipts")
    await _stop_without_draining(first)

    # Restarted with a writer that waits: the pending deletion is known from the spool.
    slow = make_settings(tmp_path, chdb_path, database=settings.database,
                         flush_interval_ms=600_000)
    second = await start(slow)
    try:
        _, result = await second.post(
            "/v1/batch", body([event(install_id=A), event(install_id=B)]), headers())
        assert result["accepted"] == 1
        assert "deleted by a deletion_request" in result["rejected"][0]["reason"]
        assert second.rows("SELECT count() FROM events") == [(5,)]  # not applied yet
    finally:
        await stop(second)  # drains: applies the deletion

    third = await start(settings)
    try:
        assert per_install(third) == {install_hash(third, B): 2}
        assert third.rows("SELECT rows_by_table['events'] FROM deletion_receipts") == [(4,)]
    finally:
        await stop(third)


async def test_a_crash_after_the_receipt_replays_the_deletion_without_a_second_receipt(
    tmp_path: Path, chdb_path: Path
) -> None:
    settings = make_settings(tmp_path, chdb_path)
    checkpoint = Path(settings.data_dir) / "spool" / "checkpoint"
    first = await start(settings)
    await first.post("/v1/batch", body([event(install_id=B)]), headers())
    await first.settle()
    before = checkpoint.read_text()
    await first.post("/v1/batch", body([event(install_id=A), deletion(A)]), headers())
    await first.settle()
    await stop(first)
    # Killed after the receipt was written but before the checkpoint moved past it,
    # and the replay batches records differently (so insert tokens differ too).
    checkpoint.write_text(f"{before.split()[0]} 0\n")

    second = await start(settings)
    try:
        await second.settle()
        assert per_install(second) == {install_hash(second, B): 1}
        assert second.rows(
            "SELECT count(), sum(rows_by_table['events']) FROM deletion_receipts"
        ) == [(1, 1)]
        # Nor a second audit row.
        assert second.rows("SELECT count() FROM audit_log WHERE action = 'deletion_applied'"
                           ) == [(1,)]
    finally:
        await stop(second)


async def test_events_accepted_before_receipts_could_be_read_are_not_stored(
    tmp_path: Path, chdb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, chdb_path)
    first = await start(settings)
    await first.post("/v1/batch", body([event(install_id=A), deletion(A)]), headers())
    await first.settle()
    await stop(first)

    # As with a ClickHouse server down at start: the receipts cannot be read then.
    def unreadable(store: object) -> set[int]:
        raise StorageError("ClickHouse is not reachable yet")

    monkeypatch.setattr("quietly_collector.pipeline.collector.deleted_installs", unreadable)
    second = await start(settings)
    try:
        _, result = await second.post(
            "/v1/batch", body([event(install_id=A), event(install_id=B)]), headers())
        assert result["accepted"] == 2  # not known yet at the door...
        await second.settle()
        # ...but the writer reads the receipts before storing, and drops A's event.
        assert per_install(second) == {install_hash(second, B): 1}
        _, result = await second.post("/v1/batch", body([event(install_id=A)]), headers())
        assert "deleted by a deletion_request" in result["rejected"][0]["reason"]
    finally:
        await stop(second)


async def _stop_without_draining(running: Running) -> None:
    # Stop the writer before it stores what is spooled (as a crash would).
    for task in running.collector._tasks:
        task.cancel()
    await asyncio.gather(*running.collector._tasks, return_exceptions=True)
    running.collector._tasks = []
    running.collector.writer = None
    await stop(running)
