"""Commands that ask a running collector (embedded store): what the operator sees when
the collector is missing, refuses, or no admin token is known."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from quietly_collector.commands.main import main

COMMANDS = {
    "query": ["query", "dau"],
    "sql": ["sql", "SELECT 1"],
    "gc": ["gc"],
    "alerts check": ["alerts", "check"],
    "report": ["report", "--period", "day"],
}


class _Refusing(BaseHTTPRequestHandler):
    """A collector that refuses every call the way ours does (JSON ``error``)."""

    seen: ClassVar[list[tuple[str, str, str]]] = []

    def _refuse(self) -> None:
        self.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
        body = json.dumps({"error": "admin token not accepted"}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def refusing() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QUIETLY_URL", "QUIETLY_ADMIN_TOKEN", "QUIETLY_CLICKHOUSE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("name", COMMANDS)
def test_no_collector_running_says_how_to_start_one(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    code = main([*COMMANDS[name], "--data-dir", str(tmp_path), "--admin-token", "t" * 32,
                 "--url", url])
    err = capsys.readouterr().err
    assert code == 1
    assert f"cannot reach a collector at {url}" in err and "quietly serve" in err


@pytest.mark.parametrize("name", COMMANDS)
def test_a_refusal_shows_the_collectors_reason_and_sends_the_token(
        name: str, tmp_path: Path, refusing: str, capsys: pytest.CaptureFixture[str]) -> None:
    _Refusing.seen.clear()
    code = main([*COMMANDS[name], "--data-dir", str(tmp_path), "--admin-token", "t" * 32,
                 "--url", refusing])
    assert code == 1
    assert "admin token not accepted" in capsys.readouterr().err
    assert _Refusing.seen and all(auth == "Bearer " + "t" * 32 for _, _, auth in _Refusing.seen)


@pytest.mark.parametrize("name", COMMANDS)
def test_without_an_admin_token_nothing_is_sent(
        name: str, tmp_path: Path, refusing: str, capsys: pytest.CaptureFixture[str]) -> None:
    _Refusing.seen.clear()
    code = main([*COMMANDS[name], "--data-dir", str(tmp_path), "--url", refusing])
    assert code == 2
    assert "no admin token" in capsys.readouterr().err
    assert _Refusing.seen == []
