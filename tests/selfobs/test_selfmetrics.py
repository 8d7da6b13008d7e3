"""The collector's own metrics at GET /metrics (Prometheus text), after real traffic."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.conftest import Running, make_settings, start, stop
from tests.helpers import ADMIN_TOKEN, WRITE_KEY, body, event, headers


async def _scrape(running: Running, token: str | None = ADMIN_TOKEN) -> tuple[int, str]:
    hdrs = {"Authorization": f"Bearer {token}"} if token else {}
    async with running.session.get(running.url + "/metrics", headers=hdrs) as resp:
        return resp.status, (await resp.read()).decode()


def _samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert found, (name, labels)
    return sum(found)


async def _flushed(running: Running) -> None:
    for _ in range(200):
        if running.collector.spool.pending_rows == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the writer did not empty the spool")


async def test_metrics_reflect_a_batch(server: Running) -> None:
    sent = [
        event(),
        event("no_such_event"),  # rejected: unknown event type
        event(props={"feature": "debugging", "undeclared_prop": 1}),  # dropped prop
        event("error", {"kind": "IOError", "message": "write to ann@example.com failed"},
              consent="detailed"),  # one e-mail redacted
    ]
    status, result = await server.post("/v1/batch", body(sent), headers(WRITE_KEY))
    assert status == 200 and result["accepted"] == 3, result
    await _flushed(server)
    status, text = await _scrape(server)
    assert status == 200
    s = _samples(text)
    assert _value(s, "quietly_events_received_total") == 4
    assert _value(s, "quietly_events_accepted_total") == 3
    assert _value(s, "quietly_events_rejected_total", reason="unknown_event") == 1
    assert _value(s, "quietly_pii_redactions_total", type="email") == 1
    assert _value(s, "quietly_properties_dropped_total", reason="undeclared") == 1
    assert _value(s, "quietly_stats_counter_total", counter="batches") == 1
    assert _value(s, "quietly_rows_inserted_total") == 3
    # Gauges: present, and the spool is empty after the flush.
    assert _value(s, "quietly_spool_rows") == 0
    assert _value(s, "quietly_spool_bytes") == 0
    assert _value(s, "quietly_spool_limit_bytes") == server.collector.spool.max_bytes
    assert _value(s, "quietly_storage_up") == 1
    assert _value(s, "quietly_leader") == 1  # the embedded store: its one process
    assert _value(s, "quietly_uptime_seconds") > 0
    # Timings: the insert that stored them, and the batch's wait for its fsync.
    assert _value(s, "quietly_insert_duration_seconds_count", table="events") >= 1
    assert _value(s, "quietly_insert_duration_seconds_count", table="rejected_events") >= 1
    assert _value(s, "quietly_insert_duration_seconds_sum", table="events") > 0
    assert _value(s, "quietly_queue_wait_seconds_count", queue="fsync") == 1
    # Nothing secret, ever: no key or token in the output.
    assert WRITE_KEY not in text and ADMIN_TOKEN not in text

    # An alert check (the scheduler's, or this admin call) counts its rule evaluations.
    async with server.session.post(server.url + "/v1/admin/alerts/check",
                                   headers=headers(ADMIN_TOKEN)) as resp:
        assert resp.status == 200
    _, text = await _scrape(server)
    s = _samples(text)
    assert _value(s, "quietly_alert_evaluations_total", outcome="ok") >= 1
    assert _value(s, "quietly_alert_evaluations_total", outcome="failed") == 0

    # Access: the admin token; a write key is refused.
    assert (await _scrape(server, None))[0] == 401
    assert (await _scrape(server, WRITE_KEY))[0] == 403
    assert (await _scrape(server, "unknown-token-0123456789"))[0] == 401
    async with server.session.get(server.url + "/metrics",
                                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")


async def test_metrics_public_still_refuses_write_keys(tmp_path: Path, chdb_path: Path) -> None:
    running = await start(make_settings(tmp_path, chdb_path, metrics_public=True))
    try:
        assert (await _scrape(running, None))[0] == 200
        assert (await _scrape(running, WRITE_KEY))[0] == 403
    finally:
        await stop(running)


async def test_two_apps_in_one_process_keep_their_own_numbers(
    server: Running, tmp_path: Path, chdb_path: Path
) -> None:
    other = await start(make_settings(tmp_path / "b", chdb_path))
    try:
        await server.post("/v1/batch", body([event(), event()]), headers(WRITE_KEY))
        await other.post("/v1/batch", body([event()]), headers(WRITE_KEY))
        mine = _value(_samples((await _scrape(server))[1]), "quietly_events_accepted_total")
        theirs = _value(_samples((await _scrape(other))[1]), "quietly_events_accepted_total")
        assert (mine, theirs) == (2, 1)
    finally:
        await stop(other)
