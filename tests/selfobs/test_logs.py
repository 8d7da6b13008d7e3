"""Structured logs: one JSON object a line, the request id of the request that logged
it, and never a key, token or Authorization header."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from quietly_collector.access.gate import Level, access
from quietly_collector.access.logcontext import redact
from quietly_collector.selfobs.logs import JsonFormatter, TextFormatter, configure_logging
from quietly_collector.server.app import init_app, start_server
from quietly_collector.settings import load_settings
from tests.conftest import make_settings
from tests.helpers import ADMIN_TOKEN, WRITE_KEY, body, event, headers

log = logging.getLogger("quietly.test")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged anywhere (DEBUG and up), as the JSON formatter writes it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@access(Level.PUBLIC)
async def _boom(request: web.Request) -> web.Response:
    # A thread started by the handler logs with the request's id too (to_thread copies it).
    await asyncio.to_thread(log.warning, "working in a thread")
    raise RuntimeError(f"failed; header was {request.headers.get('Authorization')}")


async def test_json_lines_carry_the_request_id_and_no_secret(
    tmp_path: Path, chdb_path: Path, captured: io.StringIO
) -> None:
    app = init_app(make_settings(tmp_path, chdb_path))
    app.router.add_get("/boom", _boom)
    runner, port = await start_server(app, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/boom", headers={"X-Request-Id": "req-boom-1",
                                                     "Authorization": f"Bearer {WRITE_KEY}"}) as r:
                assert r.status == 500 and r.headers["X-Request-Id"] == "req-boom-1"
            async with s.post(url + "/v1/batch", data=body([event(), event("nope")]),
                              headers=headers(WRITE_KEY)) as r:
                assert r.status == 200
            async with s.get(url + "/v1/stats", headers=headers(ADMIN_TOKEN)) as r:
                assert r.status == 200
            async with s.get(url + "/v1/stats", headers=headers(WRITE_KEY)) as r:
                assert r.status == 403
        log.info("outside any request")
    finally:
        await runner.cleanup()
    text = captured.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    error = next(line for line in lines if line["msg"].startswith("unhandled error on GET"))
    assert error["request_id"] == "req-boom-1" and error["level"] == "error"
    assert "RuntimeError" in error["exc"] and "Bearer [redacted]" in error["exc"]
    threaded = next(line for line in lines if line["msg"] == "working in a thread")
    assert threaded["request_id"] == "req-boom-1"
    outside = next(line for line in lines if line["msg"] == "outside any request")
    assert "request_id" not in outside
    for secret in (WRITE_KEY, ADMIN_TOKEN):
        assert secret not in text


def test_redaction() -> None:
    settings = load_settings(env={}, overrides={"admin_token": "configured-admin-secret-1",
                                                "write_keys": {"p": "configured-write-key-1"}})
    root = logging.getLogger()
    before = list(root.handlers), root.level
    configure_logging(settings)
    try:
        assert redact("Authorization: Bearer abc.def-ghi") == "Authorization: Bearer [redacted]"
        assert redact("{'authorization': 'Basic dXNlcjpwYXNz'}") == (
            "{'authorization': '[redacted]'}")
        assert redact("key qk_dev_ABCDEFGHIJKLMNOPQRST and qa_0123456789abcdefXYZ") == (
            "key [redacted] and [redacted]")
        assert redact("tokens configured-admin-secret-1, configured-write-key-1") == (
            "tokens [redacted], [redacted]")
        record = logging.LogRecord("quietly.x", logging.INFO, __file__, 1,
                                   "sent %s", ("configured-write-key-1",), None)
        assert "configured-write-key-1" not in TextFormatter().format(record)
        assert json.loads(JsonFormatter().format(record))["msg"] == "sent [redacted]"
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])


def test_log_format_setting_picks_the_formatter() -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        configure_logging(load_settings(env={"QUIETLY_LOG_FORMAT": "json"}))
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        configure_logging(load_settings(env={}))
        assert isinstance(root.handlers[0].formatter, TextFormatter)  # the default
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])


def test_keys_from_the_keys_file_are_redacted_by_name(tmp_path: Path) -> None:
    from quietly_collector.access.keyfile import KeysWatcher
    from quietly_collector.access.keyring import KeyRing

    keys = tmp_path / "keys.toml"
    keys.write_text('admin_token = "file-admin-token-aaaa"\n'
                    '[write_keys]\nide = ["file-write-key-bbbb", "file-write-key-cccc"]\n')
    KeysWatcher(keys, KeyRing()).reload()
    assert redact("file-write-key-bbbb file-write-key-cccc file-admin-token-aaaa") == (
        "[redacted] [redacted] [redacted]")
