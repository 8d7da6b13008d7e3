"""``quietly import``: a local events file goes through /v1/batch into ClickHouse, once."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quietly_collector.commands.importer import run_import
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import WRITE_KEY, body, event, headers

QUIETLY = [sys.executable, "-m", "quietly_collector"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIETLY_")}
    return {**env, **extra}


async def quietly(*args: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    # Async, so the in-process collector keeps serving while the CLI talks to it.
    proc = await asyncio.create_subprocess_exec(
        *QUIETLY, *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def write_local_file(path: Path) -> tuple[list[str], dict[str, int]]:
    """1,100 good events over three batches, plus the lines an import must report."""
    lines: list[str] = []
    marks: dict[str, int] = {}
    ids = []

    def add(text: str, mark: str | None = None) -> None:
        lines.append(text)
        if mark:
            marks[mark] = len(lines)

    for i in range(1100):
        ev = event(props={"feature": "search", "duration_ms": i, "success": True})
        ids.append(ev["event_id"])
        add(json.dumps(ev))
        if i == 10:
            add("")  # blank lines are skipped
            add("{not json", "garbled")
        if i == 600:
            add("[1, 2]", "array")
            add('{"event_id": NaN}', "nan")
            add("   ")
    crash = event("crash", {"kind": "OSError", "message": "disk of bob@example.com is full"})
    ids.append(crash["event_id"])
    add(json.dumps(crash))
    add(json.dumps(event(props={"feature": "search", "duration_ms": "fast"})), "wrong_type")
    path.write_text("\n".join(lines) + "\n")
    return ids, marks


async def test_import_stores_a_local_file_once_and_reports_bad_lines_by_number(
    server: Running, tmp_path: Path
) -> None:
    local = tmp_path / "events.jsonl"
    ids, at = write_local_file(local)

    code, out, err = await quietly(
        "import", str(local), cwd=tmp_path,
        env=_env(QUIETLY_URL=server.url, QUIETLY_WRITE_KEY=WRITE_KEY),
    )
    assert code == 0, err
    assert f"{local}: 1105 events: 1101 accepted, 0 duplicates, 1 rejected, 3 unreadable" in out
    report = {ln.split(": ", 1)[0].strip(): ln for ln in out.splitlines()[1:]}
    assert "rejected" in report[f"{local}:{at['wrong_type']}"]
    assert report[f"{local}:{at['wrong_type']}"].endswith("at $.props.duration_ms")
    assert "unreadable: not JSON" in report[f"{local}:{at['garbled']}"]
    assert "not a JSON object" in report[f"{local}:{at['array']}"]
    assert "NaN is not JSON" in report[f"{local}:{at['nan']}"]
    assert len(report) == 4

    await server.settle()
    stored = server.rows("SELECT toString(event_id) FROM events")
    assert sorted(r[0] for r in stored) == sorted(ids)
    [(props,)] = server.rows("SELECT props FROM events WHERE event = 'crash'")
    assert json.loads(props)["message"] == "disk of [email] is full"  # scrubbed as live

    # Again, with flags instead of variables: every event is a duplicate.
    code, out, err = await quietly(
        "import", str(local), "--url", server.url, "--write-key", WRITE_KEY,
        "--batch-size", "300", cwd=tmp_path, env=_env(),
    )
    assert code == 0, err
    assert f"{local}: 1105 events: 0 accepted, 1101 duplicates, 1 rejected, 3 unreadable" in out
    await server.settle()
    assert server.rows("SELECT count() FROM events") == [(1101,)]


async def test_import_exits_non_zero_when_it_cannot_deliver(
    server: Running, tmp_path: Path
) -> None:
    local = tmp_path / "events.jsonl"
    local.write_text(json.dumps(event()) + "\n")

    code, _, err = await quietly("import", str(local), "--url", "http://127.0.0.1:9",
                                 "--write-key", WRITE_KEY, cwd=tmp_path, env=_env())
    assert code == 1 and "cannot reach a collector at http://127.0.0.1:9" in err

    code, _, err = await quietly("import", str(local), "--url", server.url,
                                 "--write-key", "wrong-key-0123456789", cwd=tmp_path, env=_env())
    assert code == 1 and "refused the write key" in err

    code, _, err = await quietly("import", str(local), "--url", server.url,
                                 cwd=tmp_path, env=_env())
    assert code == 2 and "QUIETLY_WRITE_KEY" in err

    code, _, err = await quietly("import", str(tmp_path / "missing.jsonl"), "--url", server.url,
                                 "--write-key", WRITE_KEY, cwd=tmp_path, env=_env())
    assert code == 1 and "no such file" in err
    await server.settle()
    assert server.rows("SELECT count() FROM events") == [(0,)]


async def test_import_waits_out_a_busy_collector(
    tmp_path: Path, chdb_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("quietly_collector.receivers.intake.RETRY_AFTER_SECONDS", 1)
    running = await start(make_settings(tmp_path, chdb_path, spool_max_bytes=20_000))
    try:
        # Storage down and the spool at its limit: the collector answers 503.
        running.store.command("DETACH TABLE events")
        status = 200
        while status == 200:
            status, _ = await running.post("/v1/batch", body([event() for _ in range(5)]),
                                           headers())
        local = tmp_path / "events.jsonl"
        local.write_text("".join(json.dumps(event()) + "\n" for _ in range(5)))
        out = io.StringIO()
        importing = asyncio.create_task(
            asyncio.to_thread(run_import, [local], running.url, WRITE_KEY, 500, out)
        )
        await asyncio.sleep(0.5)
        running.store.command("ATTACH TABLE events")
        assert await asyncio.wait_for(importing, 30) == 0
        assert "collector busy (503), retrying in 1 s" in capsys.readouterr().err
        assert "5 events: 5 accepted" in out.getvalue()
    finally:
        await stop(running)


def test_import_refuses_to_start_without_a_file(tmp_path: Path) -> None:
    got = subprocess.run([*QUIETLY, "import"], cwd=tmp_path, env=_env(),
                         capture_output=True, text=True, timeout=60)
    assert got.returncode == 2 and "FILE" in got.stderr
