"""Read keys: one project's metrics, dashboard and reports, and nothing else."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from quietly_collector.access.keyfile import KeysFileError, read_keys_file
from quietly_collector.commands.main import main
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import ADMIN_TOKEN, OTHER_KEY, WRITE_KEY, body, event, headers

READ_KEY = "test-read-key-proj-0123456789"


@pytest.fixture
async def two_projects(tmp_path: Path, chdb_path: Path) -> AsyncIterator[Running]:
    """Project proj with 2 installs, project other with 3 (one shared install id)."""
    server = await start(make_settings(tmp_path, chdb_path, read_keys={"proj": READ_KEY}))
    shared = str(uuid.uuid4())
    installs = {WRITE_KEY: [shared, str(uuid.uuid4())],
                OTHER_KEY: [shared, str(uuid.uuid4()), str(uuid.uuid4())]}
    for key, ids in installs.items():
        status, _ = await server.post("/v1/batch", body([event(install_id=i) for i in ids]),
                                      headers(key))
        assert status == 200
    await server.settle()
    try:
        yield server
    finally:
        await stop(server)


async def _get(server: Running, path: str, token: str | None,
               **hdrs: str) -> tuple[int, Any]:
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    async with server.session.get(server.url + path, headers=hdrs,
                                  allow_redirects=False) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


async def test_a_read_key_reads_its_projects_metrics_only(two_projects: Running) -> None:
    status, rows = await _get(two_projects, "/v1/metrics/dau", READ_KEY)
    assert status == 200 and [r["users"] for r in rows] == [2]
    status, rows = await _get(two_projects, "/v1/metrics/dau", ADMIN_TOKEN)
    # Every project's: the shared id is one install per project (docs/metrics.md).
    assert status == 200 and [r["users"] for r in rows] == [5]
    status, rows = await _get(two_projects, "/v1/metrics/sessions", READ_KEY)
    assert status == 200 and sum(r["sessions"] for r in rows) == 2
    status, rows = await _get(
        two_projects, "/v1/metrics/funnel?step=feature_used&step=crash", READ_KEY)
    assert status == 200 and rows[0]["users"] == 2
    status, names = await _get(two_projects, "/v1/metrics", READ_KEY)
    assert status == 200 and "dau" in {m["name"] for m in names}


async def test_a_read_key_can_do_nothing_else(two_projects: Running) -> None:
    for path in ("/v1/stats", "/metrics"):
        status, result = await _get(two_projects, path, READ_KEY)
        assert status == 403 and "read keys" in result["error"], path
    for path, data in (("/v1/sql", b'{"sql": "SELECT 1"}'), ("/v1/admin/gc", b"{}"),
                       ("/v1/admin/alerts/check", b"{}")):
        status, result = await two_projects.post(path, data, headers(READ_KEY))
        assert status == 403 and "read keys" in result["error"], path
    status, result = await two_projects.post("/v1/batch", body([event()]), headers(READ_KEY))
    assert status == 401 and result["error"] == "unknown write key"
    # A write key is no read key.
    status, _ = await _get(two_projects, "/v1/metrics/dau", WRITE_KEY)
    assert status == 403


async def _login(server: Running, token: str) -> tuple[int, str]:
    async with server.session.post(server.url + "/dashboard/login", data={"token": token},
                                   allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Set-Cookie", "")


async def test_a_read_key_signs_in_to_its_projects_dashboard(two_projects: Running) -> None:
    status, cookie = await _login(two_projects, READ_KEY)
    assert status == 303 and "quietly_dashboard=" in cookie and READ_KEY not in cookie
    value = re.search(r"quietly_dashboard=([^;]+)", cookie)
    assert value is not None
    status, page = await _get(two_projects, "/dashboard", None,
                              Cookie=f"quietly_dashboard={value.group(1)}")
    assert status == 200 and "reads project proj only" in page
    # The admin's page shows the alerts instead.
    status, page = await _get(two_projects, "/dashboard", ADMIN_TOKEN)
    assert status == 200 and "reads project" not in page
    # The session cookie is of that project: naming another breaks its signature.
    expires, mac, _ = value.group(1).split(".")
    other = base64.urlsafe_b64encode(b"other").decode().rstrip("=")
    status, _ = await _get(two_projects, "/dashboard", None,
                           Cookie=f"quietly_dashboard={expires}.{mac}.{other}")
    assert status == 401
    # A write key does not sign in.
    status, _ = await _login(two_projects, WRITE_KEY)
    assert status == 403


async def test_quietly_query_and_report_take_a_read_key(
    two_projects: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["query", "dau", "--format", "json", "--url", two_projects.url,
            "--read-key", READ_KEY, "--admin-token", "not-used-0123456789"]
    assert await asyncio.to_thread(main, argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["users"] for r in rows] == [2]
    argv = ["report", "--period", "day", "--url", two_projects.url, "--read-key", READ_KEY,
            "--until", rows[0]["day"]]
    assert await asyncio.to_thread(main, argv) == 0
    assert "Active users" in capsys.readouterr().out


def test_a_keys_file_holds_read_keys_apart_from_write_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text('[write_keys]\nide = "write-key-0123456789"\n'
                    '[read_keys]\nide = "read-key-0123456789ab"\n')
    keys = read_keys_file(path)
    assert keys.read == [("ide", "read-key-0123456789ab")]
    path.write_text('[write_keys]\nide = "same-key-0123456789"\n'
                    '[read_keys]\nide = "same-key-0123456789"\n')
    with pytest.raises(KeysFileError, match="read key must differ"):
        read_keys_file(path)
