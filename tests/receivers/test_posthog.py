"""PostHog capture with the real posthog-python client, and the posthog-js wire forms
by hand.

Events are checked in ClickHouse: mapped onto the catalog, scrubbed, pseudonymized
(distinct_id keyed per project), deduplicated when the client retries an answer it
lost, and a refused event reported on its own.
"""

from __future__ import annotations

import base64
import gzip
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from posthog import Posthog

from quietly_collector.insights.metrics import parse_query, run
from quietly_collector.pipeline.foreign import ForeignIds
from tests.conftest import make_settings
from tests.helpers import OTHER_KEY, WRITE_KEY, now, rfc3339
from tests.sdk.conftest import ThreadedCollector


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path
              ) -> Iterator[ThreadedCollector]:
    c = ThreadedCollector(make_settings(tmp_path_factory.mktemp("posthog"), chdb_path))
    c.start()
    try:
        yield c
    finally:
        c.close()


def _client(url: str, key: str = WRITE_KEY, **kw: Any) -> Posthog:
    kw.setdefault("max_retries", 0)
    return Posthog(key, host=url, sync_mode=True, enable_exception_autocapture=False, **kw)


def _counter(c: ThreadedCollector, name: str) -> int:
    assert c.running is not None
    return c.running.collector.counters[name]


def _ids(c: ThreadedCollector, project: str = "proj") -> ForeignIds:
    assert c.running is not None
    return ForeignIds(c.running.collector.credentials.pseudonym_secret, project)


def _post(c: ThreadedCollector, path: str, data: bytes, ctype: str = "application/json",
          **headers: str) -> tuple[int, Any]:
    req = urllib.request.Request(c.url + path, data=data,
                                 headers={"Content-Type": ctype, **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_real_client_s_events_are_stored_mapped_and_scrubbed(
    collector: ThreadedCollector,
) -> None:
    undeclared = _counter(collector, "props_dropped_undeclared")
    ph = _client(collector.url, gzip=True)
    feature = str(uuid.uuid4())
    ph.capture("feature_used", distinct_id="user-42", uuid=feature, properties={
        "feature": "search", "duration_ms": 12, "success": True, "plan": "pro",
        "$set": {"email": "bob@example.com"}, "$os": "Mac OS X", "$app_version": "3.1.0"})
    ph.capture("$pageview", distinct_id="user-42", properties={
        "$pathname": "/settings/billing", "$current_url": "https://x.test/settings/billing?e=a@b.c"})
    ph.capture("$exception", distinct_id="user-42", properties={
        "$exception_list": [{"type": "ValueError", "value": "no file /home/alice/x.txt"}],
        "$quietly_consent": "detailed"})
    ph.capture("$identify", distinct_id="user-42", properties={"$set": {"name": "Bob"}})
    ph.capture("$feature_flag_called", distinct_id="user-42", properties={"$feature_flag": "x"})

    rows = collector.rows("SELECT event_id, event, props, install_hash, os, app_version, sdk"
                          " FROM events ORDER BY event")
    assert [r[1] for r in rows] == ["error", "feature_used", "screen_viewed"]
    error, used, screen = rows
    assert str(used[0]) == _ids(collector).event(feature)
    # Undeclared "plan" dropped and counted; person properties and $ metadata never stored.
    assert json.loads(used[2]) == {"feature": "search", "duration_ms": 12, "success": True}
    assert _counter(collector, "props_dropped_undeclared") == undeclared + 1
    # $os is the client's own system context (it overrides ours); spaces become _.
    assert used[4] and " " not in used[4] and used[5:7] == ("3.1.0", "posthog-python")
    assert json.loads(screen[2]) == {"screen": "settings.billing"}
    assert json.loads(error[2]) == {"kind": "ValueError", "message": "no file /home/[user]/x.txt"}
    # distinct_id is an install keyed with the secret and the project, never stored raw.
    assert collector.running is not None
    pseudo = collector.running.collector.ctx.pseudonymize
    assert used[3] == pseudo(uuid.UUID(_ids(collector).install("user-42")).int)
    stored = json.dumps(collector.rows("SELECT * FROM events"), default=str)
    assert "user-42" not in stored and "bob@example.com" not in stored and "Bob" not in stored
    assert _counter(collector, "posthog_events_ignored_identify") == 1
    assert _counter(collector, "posthog_events_ignored_feature_flag_called") == 1


async def _flaky_proxy(target: str, lost: list[int]) -> tuple[web.AppRunner, str]:
    """Forwards to the collector; the first answer is lost (a 503 instead), as when a
    connection drops after the collector stored the batch."""
    session = ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.Response:
        data = await request.read()
        async with session.post(target + request.path_qs, data=data,
                                headers={k: v for k, v in request.headers.items()
                                         if k.lower() in ("content-type", "content-encoding")}
                                ) as resp:
            body = await resp.read()
            status = resp.status
        if not lost:
            lost.append(status)
            return web.json_response({"detail": "answer lost"}, status=503)
        return web.Response(body=body, status=status, content_type="application/json")

    app = web.Application()
    app.router.add_post("/{tail:.*}", forward)
    app.on_cleanup.append(lambda _: session.close())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def test_the_client_s_own_retry_of_a_stored_batch_is_stored_once(
    collector: ThreadedCollector,
) -> None:
    lost: list[int] = []
    runner, url = collector.call(_flaky_proxy(collector.url, lost))
    try:
        # The consumer thread, as an app runs it: sync_mode never retries.
        ph = Posthog(WRITE_KEY, host=url, max_retries=2, enable_exception_autocapture=False)
        ph.capture("job_started", distinct_id="user-7", properties={"job": "retry-me"})
        ph.flush()
        ph.shutdown()
    finally:
        collector.call(runner.cleanup())
    assert lost == [200]  # the first attempt was stored; its answer never arrived
    assert collector.count("event = 'job_started' AND props LIKE '%retry-me%'") == 1
    assert _counter(collector, "events_duplicate") >= 1


def test_a_refused_event_is_reported_alone_and_its_neighbours_stored(
    collector: ThreadedCollector,
) -> None:
    app = {"$app_name": "refusing"}
    batch = {"api_key": WRITE_KEY, "sent_at": rfc3339(now()), "batch": [
        {"event": "$identify", "distinct_id": "u1", "properties": {}},
        {"event": "job_started", "distinct_id": "u1", "uuid": str(uuid.uuid4()),
         "properties": {"job": "ok-1", **app}},
        {"event": "job_started", "distinct_id": "u1", "properties": {"job": 5, **app}},
        {"event": "no_such_event", "distinct_id": "u1", "properties": app},
    ]}
    status, answer = _post(collector, "/batch/", json.dumps(batch).encode())
    assert status == 200 and answer["status"] == 1
    assert (answer["accepted"], answer["ignored"]) == (1, 1)
    assert [(r["index"], r["reason"].split(" at ")[-1]) for r in answer["rejected"]] == [
        (2, "$.batch[2].props.job"), (3, "$.batch[3].event")]
    reasons = collector.rows("SELECT batch_index, event FROM rejected_events"
                             " WHERE event IN ('job_started', 'no_such_event')"
                             " ORDER BY batch_index")
    assert reasons == [(1, "job_started"), (2, "no_such_event")]  # native positions
    # The loss account names the app and the kind of each refusal.
    assert collector.running is not None
    _, rows = run(collector.running.store, parse_query("delivery", app="refusing"))
    assert [(r[1], r[3], r[4]) for r in rows] == [
        ("refusing", {"invalid_props": 1, "unknown_event": 1}, 1)]


def test_posthog_js_forms_gzip_js_base64_and_token_in_properties(
    collector: ThreadedCollector,
) -> None:
    def ev(job: str) -> dict[str, Any]:
        return {"event": "job_started", "uuid": str(uuid.uuid4()),
                "properties": {"token": WRITE_KEY, "distinct_id": "js-user", "job": job,
                               "$lib": "web", "$session_id": "s-1"}}
    raw = json.dumps([ev("gz")]).encode()
    assert _post(collector, "/e/?compression=gzip-js&ver=1.0", gzip.compress(raw),
                 "text/plain")[0] == 200
    form = b"data=" + base64.b64encode(json.dumps(ev("b64")).encode()).replace(b"+", b"%2B")
    assert _post(collector, "/i/v0/e/?compression=base64", form,
                 "application/x-www-form-urlencoded")[0] == 200
    assert _post(collector, "/capture/", json.dumps(ev("plain")).encode())[0] == 200
    jobs = collector.rows("SELECT JSONExtractString(props, 'job'), sdk FROM events"
                          " WHERE event = 'job_started' AND sdk = 'web' ORDER BY 1")
    assert [j for j, _ in jobs] == ["b64", "gz", "plain"]
    assert _post(collector, "/e/?compression=lz64", gzip.compress(raw), "text/plain")[0] == 415


def test_keys_are_checked_like_header_keys_and_errors_read_as_posthog_s(
    collector: ThreadedCollector,
) -> None:
    body = {"batch": [{"event": "job_started", "distinct_id": "u", "properties": {"job": "k"}}]}
    status, answer = _post(collector, "/batch/", json.dumps({**body, "api_key": "nope"}).encode())
    assert status == 401 and answer["detail"] == "unknown write key"
    assert answer["type"] == "authentication_error"
    assert _post(collector, "/batch/", json.dumps(body).encode())[0] == 401
    # Keys of two projects in one request: refused whole, nothing written as either.
    mixed = {"api_key": WRITE_KEY, "batch": [
        {"event": "job_started", "distinct_id": "u",
         "properties": {"job": "m", "token": OTHER_KEY}}]}
    status, answer = _post(collector, "/batch/", json.dumps(mixed).encode())
    assert status == 400 and "different project keys" in answer["detail"]
    assert collector.count("props LIKE '%\"m\"%'") == 0
