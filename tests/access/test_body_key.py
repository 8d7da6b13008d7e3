"""The PostHog routes take their key from the body: read under the limits of every route
before the key is known, then checked by the gate's one key check.

Hostile cases: a body over the size bound, a body that never finishes (503, not 408:
posthog-js retries only 5xx), wrong keys (and
the address throttle they feed), stalled unauthenticated bodies that must not take
every slot, and a key of one project trying to write as another.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import uuid
from pathlib import Path
from typing import Any

from quietly_collector.pipeline.foreign import ForeignIds
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import ADMIN_TOKEN, OTHER_KEY, WRITE_KEY, body, event, headers

JSON = {"Content-Type": "application/json"}


def _batch(key: str | None, *events: dict[str, Any]) -> bytes:
    payload: dict[str, Any] = {"batch": list(events)}
    if key is not None:
        payload["api_key"] = key
    return json.dumps(payload).encode()


def _ev(job: str, distinct: str = "u-1", **props: Any) -> dict[str, Any]:
    return {"event": "job_started", "distinct_id": distinct, "uuid": str(uuid.uuid4()),
            "properties": {"job": job, **props}}


def _port(server: Running) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def _stall(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A PostHog upload that sends one byte of its body and then nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /batch/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{")
    await writer.drain()
    return reader, writer


async def test_an_oversized_body_is_refused_before_any_key_is_read(
    tmp_path: Path, chdb_path: Path
) -> None:
    server = await start(make_settings(tmp_path, chdb_path, max_batch_bytes=4096,
                                       max_decompressed_bytes=8192, max_event_bytes=2048))
    try:
        big = _batch(WRITE_KEY, *[_ev("x" * 50) for _ in range(100)])
        assert len(big) > 4096
        status, answer = await server.post("/batch/", big, JSON)
        assert status == 413 and "4096-byte limit" in answer["detail"]
        # A bomb: small as sent, inflating past the bound: stopped at it.
        bomb = gzip.compress(b'{"api_key": "' + WRITE_KEY.encode() + b'", "batch": ['
                             + b" " * 1_000_000 + b"]}")
        assert len(bomb) < 4096
        status, answer = await server.post("/batch/", bomb, {**JSON, "Content-Encoding": "gzip"})
        assert status == 413 and "8192-byte limit" in answer["detail"]
        status, answer = await server.post("/e/?compression=gzip-js", bomb, JSON)
        assert status == 413 and "8192-byte limit" in answer["detail"]
        assert server.collector.counters["events_accepted"] == 0
    finally:
        await stop(server)


async def test_a_slow_body_gets_503_and_stalled_bodies_leave_keyed_routes_served(
    tmp_path: Path, chdb_path: Path
) -> None:
    settings = make_settings(tmp_path, chdb_path, body_timeout_s=2)
    server = await start(settings)
    conns = []
    try:
        conns = [await _stall(_port(server)) for _ in range(70)]
        await asyncio.sleep(0.3)
        # Bodies whose key is not known yet hold one project's share of the slots at most.
        share = settings.max_batches_in_flight_per_project
        assert server.collector.slots.by_project["(body not yet read)"] == share
        status, result = await server.post("/v1/batch", body([event()]), headers())
        assert status == 200 and result["accepted"] == 1
        status, answer = await server.post("/batch/", _batch(WRITE_KEY, _ev("a")), JSON)
        assert status == 503 and "retry later" in answer["detail"]
        answers = await asyncio.gather(*(r.read(300) for r, _ in conns[:3]))
        # 503, not 408: posthog-js drops every 4xx, and retries a 503.
        assert all(a.startswith(b"HTTP/1.1 503") for a in answers), answers
        assert b'"detail"' in answers[0]  # PostHog's error shape
        # Every stalled body times out and gives its slot back (a loaded machine answers
        # them a little apart).
        deadline = time.monotonic() + 10
        while server.collector.slots.used and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert server.collector.slots.used == 0
        status, _ = await server.post("/batch/", _batch(WRITE_KEY, _ev("after")), JSON)
        assert status == 200
    finally:
        for _, w in conns:
            w.close()
        await stop(server)


async def test_wrong_keys_are_401_counted_and_throttled_like_header_keys(
    tmp_path: Path, chdb_path: Path
) -> None:
    server = await start(make_settings(tmp_path, chdb_path, auth_failure_burst=3,
                                       auth_failures_per_minute=60))
    try:
        # The admin token and no key at all are no write keys either.
        for key in (ADMIN_TOKEN, None, "guess-0000000000000001"):
            status, answer = await server.post("/batch/", _batch(key, _ev("x")), JSON)
            assert status == 401, (key, answer)
            assert answer["type"] == "authentication_error"
        counters = server.collector.counters
        assert counters["auth_failures_unknown_key"] == 1
        assert counters["auth_failures_forbidden"] == 1
        assert counters["auth_failures_missing"] == 1
        for i in range(2):
            await server.post("/capture/", _batch(f"guess-{i:018d}", _ev("x")), JSON)
        # Out of budget: refused before its body is read, with the right key too (the
        # key is in the body, so it cannot be told apart before reading).
        t = time.monotonic()
        status, answer = await server.post("/e/", _batch(WRITE_KEY, _ev("x")), JSON)
        assert status == 503 and "failed authentication" in answer["detail"]
        assert time.monotonic() - t < 1
        # A header-keyed route still serves the address's right key.
        status, _ = await server.post("/v1/batch", body([event()]), headers())
        assert status == 200
        await server.settle()
        assert server.rows("SELECT count() FROM events WHERE event = 'job_started'") == [(0,)]
    finally:
        await stop(server)


async def test_a_key_of_one_project_never_writes_or_names_anothers(
    tmp_path: Path, chdb_path: Path
) -> None:
    server = await start(make_settings(tmp_path, chdb_path))
    try:
        shared = str(uuid.uuid4())  # the same uuid and distinct_id sent to both projects
        ev = {**_ev("both", "same-user"), "uuid": shared}
        for key in (WRITE_KEY, OTHER_KEY):
            status, answer = await server.post("/batch/", _batch(key, ev), JSON)
            assert (status, answer["accepted"]) == (200, 1), answer
        await server.settle()
        rows = server.rows("SELECT project, event_id, install_hash FROM events ORDER BY project")
        assert [r[0] for r in rows] == ["other", "proj"]
        secret = server.collector.credentials.pseudonym_secret
        # Keyed per project: neither row's ids can be computed from the other's.
        assert str(rows[1][1]) == ForeignIds(secret, "proj").event(shared)
        assert rows[0][1] != rows[1][1] and rows[0][2] != rows[1][2]
        # One request naming both keys (batch key A, an event's token B) is refused whole.
        mixed = _batch(WRITE_KEY, _ev("mixed", token=OTHER_KEY))
        status, answer = await server.post("/batch/", mixed, JSON)
        assert status == 400 and "different project keys" in answer["detail"]
        # An array of events keyed by their tokens, B's key among A's: refused too.
        arr = json.dumps([{**_ev("arr"), "properties": {"job": "arr", "token": WRITE_KEY}},
                          {**_ev("arr"), "properties": {"job": "arr", "token": OTHER_KEY}}])
        status, _ = await server.post("/e/", arr.encode(), JSON)
        assert status == 400
        await server.settle()
        assert server.rows("SELECT count() FROM events WHERE props LIKE '%mixed%' OR"
                           " props LIKE '%arr%'") == [(0,)]
    finally:
        await stop(server)


async def test_a_body_keyed_handler_that_never_checks_the_key_is_refused(
    tmp_path: Path, chdb_path: Path
) -> None:
    from aiohttp import ClientSession

    from quietly_collector.access.gate import Credential, Level, access
    from quietly_collector.server.app import init_app, start_server

    @access(Level.WRITE, Credential.BODY)
    async def forgetful(request: Any) -> Any:
        from aiohttp import web

        await request.read()
        return web.json_response({"stored": True})  # never called authenticate_body

    app = init_app(make_settings(tmp_path, chdb_path))
    app.router.add_post("/v1/forgetful", forgetful)
    runner, port = await start_server(app, "127.0.0.1", 0)
    try:
        async with ClientSession() as session, session.post(
                f"http://127.0.0.1:{port}/v1/forgetful", data=_batch(WRITE_KEY)) as resp:
            assert resp.status == 403
            assert "without checking the key" in (await resp.json())["error"]
    finally:
        await runner.cleanup()
