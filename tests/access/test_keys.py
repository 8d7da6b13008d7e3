"""Write keys and admin tokens from ``keys_file`` change while the collector runs:
on a change of the file, and on SIGHUP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import Running, make_settings, start, stop
from tests.helpers import ADMIN_TOKEN, OTHER_KEY, WRITE_KEY, body, event, headers


async def _status_becomes(running: Running, key: str, want: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status, result = await running.post("/v1/batch", body([event()]), headers(key))
        if status == want:
            return
        assert time.monotonic() < deadline, f"key still answers {status}: {result}"
        await asyncio.sleep(0.1)


def replace(path: Path, text: str) -> None:
    """As an operator should: write aside, then rename over (never a half-written file)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def test_keys_file_changes_apply_without_a_restart(
    tmp_path: Path, chdb_path: Path
) -> None:
    first, second = "first-rotating-key-0123", "second-rotating-key-0123"
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[write_keys]\nide = "{first}"\n')
    running = await start(make_settings(tmp_path, chdb_path, keys_file=str(keys)))
    try:
        await _status_becomes(running, first, 200, timeout=0)
        await _status_becomes(running, second, 401, timeout=0)
        # Rotation with overlap: the new key next to the old one, both valid.
        replace(keys, f'[write_keys]\nide = ["{second}", "{first}"]\n')
        await _status_becomes(running, second, 200)
        await _status_becomes(running, first, 200, timeout=0)
        # The old one removed: refused at once, while the new one and the keys from
        # the settings go on.
        replace(keys, f'[write_keys]\nide = "{second}"\n')
        await _status_becomes(running, first, 401)
        for key in (second, WRITE_KEY, OTHER_KEY):
            await _status_becomes(running, key, 200, timeout=0)
        # A broken file changes nothing.
        replace(keys, '[write_keys]\nide = "short"\n')
        await asyncio.sleep(1.5)
        await _status_becomes(running, second, 200, timeout=0)
        await running.settle()
        assert {p for (p,) in running.rows("SELECT DISTINCT project FROM events")} == {
            "ide", "proj", "other"}
        # One audit row per reload, naming projects, never keys.
        reloads = running.rows("SELECT outcome, detail FROM audit_log"
                               " WHERE action = 'key_reload' ORDER BY at")
        assert [o for o, _ in reloads] == ["ok", "ok", "error"]
        assert json.loads(reloads[1][1])["changed"] == ["ide"]
        assert "at least 16 characters" in json.loads(reloads[2][1])["error"]
        assert not any(k in d for _, d in reloads for k in (first, second))
    finally:
        await stop(running)


def _post_status(url: str, key: str) -> int:
    req = urllib.request.Request(url + "/v1/batch", data=body([event()]), headers=headers(key))
    try:
        with urllib.request.urlopen(req) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_sighup_reloads_the_keys_file(tmp_path: Path) -> None:
    from tests.commands.test_cli import _serve, run

    first, second = "sighup-key-one-0123456", "sighup-key-two-0123456"
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[write_keys]\nide = "{first}"\n')
    proc, url, _ = _serve(tmp_path, "--keys-file", str(keys), "--admin-token", ADMIN_TOKEN)
    try:
        assert (_post_status(url, first), _post_status(url, second)) == (200, 401)
        # Same size, inode and modification time: the once-a-second check sees no change.
        st = os.stat(keys)
        with open(keys, "r+") as fh:
            fh.write(f'[write_keys]\nide = "{second}"\n')
        os.utime(keys, ns=(st.st_atime_ns, st.st_mtime_ns))
        time.sleep(1.5)
        assert _post_status(url, first) == 200
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while _post_status(url, second) != 200:
            assert time.monotonic() < deadline, "SIGHUP did not reload the keys"
            time.sleep(0.05)
        assert _post_status(url, first) == 401
        got = run("sql", "SELECT actor, outcome, detail FROM audit_log"
                  " WHERE action = 'key_reload'", "--url", url, "--admin-token", ADMIN_TOKEN,
                  "--format", "json", cwd=tmp_path)
        [[actor, outcome, detail]] = json.loads(got.stdout)["rows"]
        assert (actor, outcome) == ("system", "ok")
        assert json.loads(detail) == {"source": "sighup", "projects": 1, "added": [],
                                      "removed": [], "changed": ["ide"],
                                      "admin_token_changed": False, "read_keys_changed": False}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_bad_keys_file_stops_the_start_with_the_reason(tmp_path: Path) -> None:
    from tests.commands.test_cli import run

    (tmp_path / "keys.toml").write_text('[write_keys]\nide = "short"\n')
    got = run("serve", "--port", "0", "--keys-file", "keys.toml", cwd=tmp_path)
    assert got.returncode == 1
    assert "write_keys.ide: keys must be at least 16 characters" in got.stderr
