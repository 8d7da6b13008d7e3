"""POST /segment/v1/batch with the real segment-analytics-python client, and by hand.

Calls become events through the native pipeline: the rows are checked in
ClickHouse (mapped, scrubbed, pseudonymized), with rejected calls recorded without
sinking their neighbours, messageId deduplication and the sentAt skew correction.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from segment.analytics import Client
from segment.analytics.request import APIError
from segment.analytics.version import VERSION

from quietly_collector.pipeline.foreign import ForeignIds
from tests.conftest import make_settings
from tests.helpers import WRITE_KEY, now, rfc3339
from tests.sdk.conftest import ThreadedCollector

CONTEXT = {"app": {"name": "My App", "version": "2.0.1"},
           "os": {"name": "Mac OS X", "version": "14.1"}, "locale": "en-US"}


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path
              ) -> Iterator[ThreadedCollector]:
    c = ThreadedCollector(make_settings(tmp_path_factory.mktemp("segment"), chdb_path))
    c.start()
    try:
        yield c
    finally:
        c.close()


def _client(c: ThreadedCollector, key: str = WRITE_KEY, **kw: Any) -> Any:
    return Client(key, host=c.url + "/segment", max_retries=0, **kw)


def _counter(c: ThreadedCollector, name: str) -> int:
    assert c.running is not None
    return c.running.collector.counters[name]


def _post(c: ThreadedCollector, body: dict[str, Any], auth: str | None
          ) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    req = urllib.request.Request(c.url + "/segment/v1/batch", data=json.dumps(body).encode(),
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def test_track_calls_from_the_real_client_are_stored_like_native_events(
    collector: ThreadedCollector,
) -> None:
    ignored = _counter(collector, "segment_calls_ignored")
    client = _client(collector, gzip=True, upload_size=100, upload_interval=1)
    good = str(uuid.uuid4())
    client.track(anonymous_id="device-1", event="Feature Used", message_id=good,
                 properties={"feature": "debugging", "duration_ms": 5, "success": True,
                             "email": "bob@example.com"}, context=CONTEXT)
    # A bad call between good ones: rejected alone, the batch goes on.
    client.track(anonymous_id="device-1", event="Feature Used",
                 properties={"feature": "search", "duration_ms": "fast"}, context=CONTEXT)
    client.track(user_id="user-9", event="crash", context=CONTEXT, properties={
        "kind": "ValueError", "message": "cannot open /home/alice/notes.txt for alice@example.com"})
    client.identify(anonymous_id="device-1", traits={"plan": "pro"})
    client.screen(anonymous_id="device-1", name="settings", context=CONTEXT)
    client.flush()
    client.join()

    rows = collector.rows("SELECT event_id, event, app, app_version, os, os_version, locale,"
                          " sdk, sdk_version, props, install_hash FROM events ORDER BY event")
    assert [r[1] for r in rows] == ["crash", "feature_used", "screen_viewed"]
    crash, feature, screen = rows
    # messageId, keyed with the secret and the project (a UUID too): stable for resends.
    assert collector.running is not None
    assert str(feature[0]) == ForeignIds(
        collector.running.collector.credentials.pseudonym_secret, "proj").event(good)
    assert feature[2:9] == ("My_App", "2.0.1", "Mac_OS_X", "14.1", "en-US", "analytics-python",
                            VERSION)
    assert json.loads(feature[9]) == {"feature": "debugging", "duration_ms": 5, "success": True}
    assert json.loads(crash[9])["message"] == "cannot open /home/[user]/notes.txt for [email]"
    assert json.loads(screen[9]) == {"screen": "settings"}
    assert collector.running is not None
    c = collector.running.collector
    pseudo = c.ctx.pseudonymize
    # Segment's ids become installs keyed with the secret and the sending project.
    ids = ForeignIds(c.credentials.pseudonym_secret, "proj")
    assert feature[10] == screen[10] == pseudo(uuid.UUID(ids.install("device-1")).int)
    assert crash[10] == pseudo(uuid.UUID(ids.install("user-9")).int)
    rejected = collector.rows("SELECT batch_index, event, reason FROM rejected_events")
    assert len(rejected) == 1 and rejected[0][:2] == (1, "feature_used")
    assert "props.duration_ms" in rejected[0][2]
    assert _counter(collector, "segment_calls_ignored") == ignored + 1
    assert _counter(collector, "segment_calls_ignored_identify") >= 1


def test_a_resent_message_id_is_stored_once(collector: ThreadedCollector) -> None:
    client = _client(collector, sync_mode=True)
    for _ in range(2):
        # A messageId that is not a UUID is named by its UUIDv5.
        client.track(anonymous_id="device-2", event="job_started", message_id="msg-abc-1",
                     properties={"job": "build"})
    assert collector.count("event = 'job_started'") == 1
    assert _counter(collector, "events_duplicate") >= 1


def test_clock_skew_is_corrected_from_sent_at(collector: ThreadedCollector) -> None:
    # A client whose clock is an hour behind: its sentAt and timestamp both are.
    client_now = now() - timedelta(hours=1)
    mid = str(uuid.uuid4())
    body = {"sentAt": rfc3339(client_now), "batch": [{
        "type": "track", "event": "job_completed", "messageId": mid,
        "timestamp": rfc3339(client_now - timedelta(seconds=10)),
        "anonymousId": "device-3", "properties": {"job": "sync", "success": True}}]}
    assert _post(collector, body, _basic(WRITE_KEY)) == (200, {"success": True})
    assert collector.running is not None
    stored = ForeignIds(collector.running.collector.credentials.pseudonym_secret,
                        "proj").event(mid)
    ts, client_ts, source = collector.rows(
        f"SELECT ts, client_ts, ts_source FROM events WHERE event_id = '{stored}'")[0]
    assert source == "sent_at_skew"
    assert abs((now() - timedelta(seconds=10)).timestamp() - ts.timestamp()) < 5
    assert abs(client_ts.timestamp() - (client_now - timedelta(seconds=10)).timestamp()) < 0.01


def test_auth_and_body_errors(collector: ThreadedCollector) -> None:
    with pytest.raises(APIError) as err:
        _client(collector, "unknown-key-0123456789", sync_mode=True).track(
            anonymous_id="d", event="job_started", properties={"job": "x"})
    assert err.value.status == 401
    body: dict[str, Any] = {"batch": []}
    assert _post(collector, body, None)[0] == 401
    assert _post(collector, body, f"Bearer {WRITE_KEY}")[0] == 401
    assert _post(collector, body, "Basic %%%")[0] == 401
    assert _post(collector, body, _basic(WRITE_KEY)) == (200, {"success": True})
    assert _post(collector, {"batch": "x"}, _basic(WRITE_KEY))[0] == 400
    # A call that is not an object is rejected alone, with a reason.
    status, _ = _post(collector, {"batch": [1, {"type": "alias", "userId": "u"}]},
                      _basic(WRITE_KEY))
    assert status == 200
    reasons = collector.rows("SELECT reason FROM rejected_events WHERE reason LIKE '%got `int`%'")
    assert len(reasons) == 1


def test_the_real_client_logs_the_collectors_reason_for_a_wrong_key(
    collector: ThreadedCollector, caplog: pytest.LogCaptureFixture,
) -> None:
    # The library's own thread and logger, as an app runs it: what it logs is what the
    # app's operator reads.
    client = _client(collector, "wrong-key-0123456789")
    with caplog.at_level(logging.DEBUG, logger="segment"):
        client.track(anonymous_id="d", event="job_started", properties={"job": "x"})
        client.flush()
        client.join()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "unauthorized: unknown write key (401)" in logged, logged
    assert "Unknown error" not in logged
