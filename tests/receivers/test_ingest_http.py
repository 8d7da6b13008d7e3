"""End to end over HTTP: per-event verdicts, and exactly the good events stored, clean."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from pathlib import Path

from tests.conftest import Running
from tests.helpers import (
    ADMIN_TOKEN,
    INSTALL,
    WRITE_KEY,
    body,
    event,
    headers,
    now,
    rfc3339,
)


async def test_mixed_batch_gives_per_event_results_and_stores_only_good_events(
    server: Running,
) -> None:
    good = event(props={"feature": "debugging", "duration_ms": 5, "success": True,
                        "internal_user_email": "bob@example.com"})
    crash = event("crash", {"kind": "ValueError",
                            "message": "cannot open /home/alice/notes.txt for alice@example.com"})
    wrong_type = event(props={"feature": "search", "duration_ms": "fast"})
    unknown = event("teleport", {"where": "mars"})
    oversized = event("crash", {"kind": "E", "message": "x" * 40_000})
    missing_ts = event()
    del missing_ts["ts"]
    dup_in_batch = dict(good)
    events = [good, crash, wrong_type, unknown, oversized, missing_ts, dup_in_batch]

    status, result = await server.post("/v1/batch", body(events), headers())

    assert status == 200
    assert result["accepted"] == 2
    assert result["duplicates"] == 1
    reasons = {r["index"]: r["reason"] for r in result["rejected"]}
    assert set(reasons) == {2, 3, 4, 5}
    assert "$.events[2].props.duration_ms" in reasons[2]
    assert "unknown event type 'teleport'" in reasons[3]
    assert "over the 32768-byte limit" in reasons[4]
    assert "ts" in reasons[5] and "$.events[5]" in reasons[5]
    assert {r["event_id"] for r in result["rejected"]} == {
        wrong_type["event_id"], unknown["event_id"], oversized["event_id"], missing_ts["event_id"]
    }

    await server.settle()
    rows = server.rows("SELECT event_id, event, props FROM events ORDER BY event")
    assert [(str(r[0]), r[1]) for r in rows] == [
        (crash["event_id"], "crash"), (good["event_id"], "feature_used")
    ]
    crash_props = json.loads(rows[0][2])
    assert crash_props["message"] == "cannot open /home/[user]/notes.txt for [email]"
    good_props = json.loads(rows[1][2])
    assert good_props == {"feature": "debugging", "duration_ms": 5, "success": True}

    rejected = server.rows("SELECT batch_index, event_id, reason FROM rejected_events ORDER BY 1")
    assert [r[0] for r in rejected] == [2, 3, 4, 5]
    # Reasons only: the payload of a rejected event is never stored.
    assert "fast" not in repr(rejected) and "mars" not in repr(rejected)
    assert "x" * 100 not in repr(rejected)


async def test_resent_batch_and_resent_events_are_stored_once(server: Running) -> None:
    first = [event() for _ in range(20)]
    status, r1 = await server.post("/v1/batch", body(first), headers())
    assert (status, r1["accepted"]) == (200, 20)
    # The same batch again (a lost response), then 10% of it inside a new batch.
    status, r2 = await server.post("/v1/batch", body(first), headers())
    assert (r2["accepted"], r2["duplicates"]) == (0, 20)
    mixed = first[:2] + [event() for _ in range(18)]
    status, r3 = await server.post("/v1/batch", body(mixed), headers())
    assert (r3["accepted"], r3["duplicates"]) == (18, 2)
    await server.settle()
    assert server.rows("SELECT count(), uniqExact(event_id) FROM events") == [(38, 38)]


async def test_gzip_bodies_are_accepted_and_bombs_refused(server: Running) -> None:
    events = [event() for _ in range(5)]
    status, result = await server.post("/v1/batch", body(events, gz=True), headers(gz=True))
    assert (status, result["accepted"]) == (200, 5)

    # 64 MiB of zeros compress to ~64 KiB; the limit is 8 MiB decompressed.
    bomb = gzip.compress(b"0" * (64 << 20), compresslevel=9)
    assert len(bomb) < 1 << 20
    status, result = await server.post("/v1/batch", bomb, headers(gz=True))
    assert status == 413
    assert "decompressed body is over" in result["error"]

    status, result = await server.post("/v1/batch", b"not gzip at all", headers(gz=True))
    assert status == 400 and "gzip" in result["error"]


async def test_limits_and_unreadable_bodies_get_clear_errors(server: Running) -> None:
    s = server.collector.settings
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (b"{not json", headers(), 400, "not valid JSON"),
        (b'{"sent_at": "2026-01-01T00:00:00Z"}', headers(), 400, "events"),
        (b"", headers(), 400, "JSON"),
        (body([event()]), {**headers(), "Content-Type": "text/plain"}, 415, "application/json"),
        (body([event()]), {**headers(), "Content-Encoding": "br"}, 415, "Content-Encoding"),
        (b" " * (s.max_batch_bytes + 1), headers(), 413, "byte limit"),
        (body([event()] * (s.max_batch_events + 1)), headers(), 413, "event limit"),
    ]
    for data, hdrs, want_status, want_text in cases:
        status, result = await server.post("/v1/batch", data, hdrs)
        assert status == want_status, (want_text, result)
        assert want_text in result["error"], result


async def test_write_keys_only_write_and_admin_tokens_only_read(server: Running) -> None:
    data = body([event()])
    status, result = await server.post("/v1/batch", data, {"Content-Type": "application/json"})
    assert status == 401 and "Bearer" in result["error"]
    status, _ = await server.post("/v1/batch", data, headers("wrong-key-0123456789"))
    assert status == 401
    status, _ = await server.post("/v1/batch", data, headers(ADMIN_TOKEN))
    assert status == 401
    sql = json.dumps({"sql": "SELECT count() FROM events"}).encode()
    status, result = await server.post("/v1/sql", sql, headers(WRITE_KEY))
    assert status == 403 and "write keys" in result["error"]
    status, result = await server.post("/v1/sql", sql, headers(ADMIN_TOKEN))
    assert status == 200 and result["rows"] == [[0]]
    # An empty answer still names its columns (chdb alone gives none).
    empty = json.dumps({"sql": "SELECT event, ts AS at FROM events -- none yet"}).encode()
    status, result = await server.post("/v1/sql", empty, headers(ADMIN_TOKEN))
    assert status == 200 and result == {"columns": ["event", "at"], "rows": []}
    # Read-only: the SQL endpoint cannot change data.
    drop = json.dumps({"sql": "DROP TABLE events"}).encode()
    status, result = await server.post("/v1/sql", drop, headers(ADMIN_TOKEN))
    assert status == 400 and "only a single SELECT" in result["error"]
    assert server.rows("EXISTS TABLE events") == [(1,)]


async def test_projects_are_told_apart_by_write_key(server: Running) -> None:
    from tests.helpers import OTHER_KEY

    await server.post("/v1/batch", body([event()]), headers(WRITE_KEY))
    await server.post("/v1/batch", body([event(), event()]), headers(OTHER_KEY))
    await server.settle()
    assert server.rows("SELECT project, count() FROM events GROUP BY project ORDER BY 1") == [
        ("other", 2), ("proj", 1)
    ]


async def test_fields_above_the_events_consent_level_are_dropped(server: Running) -> None:
    props = {"feature": "x", "project_size": 1200}
    basic = event(props=props, consent="basic")
    detailed = event(props=props, consent="detailed")
    off = event(props=props, consent="off")
    _, result = await server.post("/v1/batch", body([basic, detailed, off]), headers())
    assert result["accepted"] == 2
    assert "consent is off" in result["rejected"][0]["reason"]
    await server.settle()
    stored = dict(server.rows("SELECT consent, props FROM events"))
    assert json.loads(stored["basic"]) == {"feature": "x"}
    assert json.loads(stored["detailed"]) == {"feature": "x", "project_size": 1200}


async def test_timestamps_are_corrected_for_client_clock_skew(server: Running) -> None:
    ahead = timedelta(hours=3)  # the client's clock runs 3 hours fast
    client_now = now() + ahead
    ev = event(ts=client_now - timedelta(seconds=10))
    far_future = event(ts=now() + timedelta(days=30))
    payload = json.dumps({"sent_at": rfc3339(client_now), "events": [ev]}).encode()
    await server.post("/v1/batch", payload, headers())
    # No sent_at: the client timestamp is used unless it is in the future.
    payload = json.dumps({"events": [far_future]}).encode()
    await server.post("/v1/batch", payload, headers())
    await server.settle()
    rows = server.rows(
        "SELECT ts_source, dateDiff('second', ts, received_at),"
        " dateDiff('second', received_at, client_ts), sent_at IS NULL FROM events ORDER BY 1"
    )
    by_source = {r[0]: r[1:] for r in rows}
    lag, client_ahead, _ = by_source["sent_at_skew"]
    assert 9 <= lag <= 12  # happened 10 s before it was sent, by the server's clock
    assert 3 * 3600 - 15 <= client_ahead <= 3 * 3600  # the raw client stamp is kept too
    assert by_source["received_at"][0] == 0  # far future: clamped to the receive time
    assert by_source["received_at"][2] == 1  # sent_at was absent


async def test_install_ids_are_stored_only_as_a_keyed_hash(server: Running) -> None:
    await server.post("/v1/batch", body([event(install_id=INSTALL)]), headers())
    await server.settle()
    dump = json.dumps(server.rows("SELECT * FROM events"), default=str)
    assert INSTALL not in dump and INSTALL.replace("-", "") not in dump
    secret = bytes.fromhex((Path(server.collector.settings.data_dir) / "pseudonym.key")
                           .read_text().strip())
    mac = hmac.new(secret, uuid.UUID(INSTALL).bytes, hashlib.sha256).digest()
    assert server.rows("SELECT install_hash FROM events") == [(int.from_bytes(mac[:8], "big"),)]


async def test_health_readiness_and_openapi(server: Running) -> None:
    async with server.session.get(server.url + "/healthz") as resp:
        assert resp.status == 200
    async with server.session.get(server.url + "/readyz") as resp:
        ready = await resp.json()
        assert resp.status == 200 and ready["storage"] is True
    async with server.session.get(server.url + "/openapi.json") as resp:
        spec = await resp.json()
    assert "/v1/batch" in spec["paths"]
    assert set(spec["paths"]["/v1/batch"]["post"]["responses"]) >= {
        "200", "400", "401", "413", "415", "503"
    }


async def test_identifier_fields_cannot_carry_personal_data(server: Running) -> None:
    in_context = event()
    in_context["context"]["app"] = "bob@example.com"
    in_props = event(props={"feature": "/home/bob/secret-project"})
    fine = event()
    _, result = await server.post("/v1/batch", body([in_context, in_props, fine]), headers())
    assert result["accepted"] == 1
    reasons = [r["reason"] for r in result["rejected"]]
    assert reasons[0].endswith("at $.events[0].context.app")
    assert reasons[1].endswith("at $.events[1].props.feature")


async def test_identifiers_that_look_like_personal_data_are_refused(server: Running) -> None:
    ip = event(props={"feature": "192.168.10.77"})
    phone = event(props={"feature": "555-123-4567"})
    version = event()
    version["context"]["app_version"] = "10.0.0.1"  # a version, not an IP, in a version field
    _, result = await server.post("/v1/batch", body([ip, phone, version]), headers())
    assert result["accepted"] == 1
    assert [r["index"] for r in result["rejected"]] == [0, 1]
    assert all("personal data" in r["reason"] for r in result["rejected"])
