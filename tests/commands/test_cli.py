"""The README path: serve with no arguments, send one event, see it; migrate; errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from tests.helpers import body, event, headers

QUIETLY = [sys.executable, "-m", "quietly_collector"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("QUIETLY_")}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*QUIETLY, *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=120)


def _serve(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    proc = subprocess.Popen([*QUIETLY, "serve", "--port", "0", *extra], cwd=tmp_path,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    url = ""
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        lines.append(line)
        if "listening on" in line:
            url = line.split("listening on ")[1].split()[0]
            break
        assert time.monotonic() < deadline
    return proc, url, lines


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    proc, url, lines = _serve(tmp_path)
    try:
        yield proc, url, lines
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_with_no_keys_prints_a_dev_key_that_works(
    served: tuple[subprocess.Popen[str], str, list[str]], tmp_path: Path
) -> None:
    _, url, lines = served
    out = "".join(lines)
    assert "QUIETLY_WRITE_KEYS" in out  # says how to set real keys
    key = (tmp_path / "quietly-data" / "dev-write-key").read_text().strip()
    assert key in out
    assert (tmp_path / "quietly-data" / "clickhouse").is_dir()  # embedded store by default

    ev = event("crash", {"kind": "OSError", "message": "disk of carol@example.org is full"})
    req = urllib.request.Request(url + "/v1/batch", data=body([ev]), headers=headers(key))
    with urllib.request.urlopen(req) as resp:
        assert json.loads(resp.read())["accepted"] == 1

    deadline = time.monotonic() + 20
    while True:
        got = run("sql", "SELECT event, props FROM events", "--url", url, "--format", "json",
                  cwd=tmp_path)
        assert got.returncode == 0, got.stderr
        rows = json.loads(got.stdout)["rows"]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows == [["crash", '{"kind":"OSError","message":"disk of [email] is full"}']]
    table = run("sql", "SELECT event FROM events", "--url", url, cwd=tmp_path)
    assert "crash" in table.stdout and "(1 row)" in table.stdout

    # Metrics through the running collector (the data directory is its alone).
    dau = run("query", "dau", "--url", url, "--format", "json", cwd=tmp_path)
    assert dau.returncode == 0, dau.stderr
    today = time.strftime("%Y-%m-%d", time.gmtime())
    # One install is fewer than min_cell_installs (5 by default): its row is kept,
    # its count withheld.
    assert json.loads(dau.stdout) == [
        {"day": today, "app": "my-ide", "users": None, "suppressed": True}]
    csv_out = run("query", "crash_rate", "--url", url, "--format", "csv", cwd=tmp_path)
    assert csv_out.stdout.splitlines()[0].startswith("day,app,sessions,crashed_sessions")
    # No data in the window: the header alone, so a script reading the CSV still works.
    none = run("query", "dau", "--since", "2001-01-01", "--until", "2001-01-02", "--url", url,
               "--format", "csv", cwd=tmp_path)
    assert none.returncode == 0 and none.stdout.splitlines() == ["day,app,users,suppressed"]
    none = run("query", "dau", "--since", "2001-01-01", "--until", "2001-01-02", "--url", url,
               cwd=tmp_path)
    assert none.stdout.split() == ["day", "app", "users", "suppressed", "---", "---", "-----",
                                   "----------", "(0", "rows)"]
    listed = run("query", "--list", cwd=tmp_path)
    assert listed.returncode == 0 and "retention" in listed.stdout
    listed = run("query", "--list", "--url", url, cwd=tmp_path)
    assert "lifecycle" in listed.stdout and "running experiments" in listed.stdout, listed
    lifecycle = run("query", "lifecycle", "--period", "month", "--url", url, "--format", "json",
                    cwd=tmp_path)
    [month] = json.loads(lifecycle.stdout)  # one install: counted, and withheld
    assert (month["new"], month["suppressed"]) == (None, True), lifecycle.stderr
    bad = run("query", "paths", "--from", "a b", "--url", url, cwd=tmp_path)
    assert bad.returncode == 2 and "from:" in bad.stderr
    bad = run("query", "daily", "--url", url, cwd=tmp_path)
    assert bad.returncode == 2 and "unknown metric 'daily'" in bad.stderr


def test_a_second_collector_on_the_same_data_dir_explains_the_lock(
    served: tuple[subprocess.Popen[str], str, list[str]], tmp_path: Path
) -> None:
    second = run("serve", "--port", "0", cwd=tmp_path)
    assert second.returncode == 1
    assert "in use by another process" in second.stderr


def test_migrate_is_idempotent_and_sql_direct_reads_a_stopped_store(tmp_path: Path) -> None:
    first = run("migrate", cwd=tmp_path)
    assert first.returncode == 0 and "applied: 0001_events.sql" in first.stdout
    again = run("migrate", cwd=tmp_path)
    assert again.returncode == 0 and "up to date" in again.stdout
    direct = run("sql", "SELECT count() FROM events", "--direct", "--format", "json",
                 cwd=tmp_path)
    assert json.loads(direct.stdout)["rows"] == [[0]]


def test_sql_without_a_running_collector_says_what_to_do(tmp_path: Path) -> None:
    got = run("sql", "SELECT 1", "--url", "http://127.0.0.1:9", "--admin-token", "x" * 20,
              cwd=tmp_path)
    assert got.returncode == 1
    assert "quietly serve" in got.stderr and "--direct" in got.stderr


def test_bad_settings_exit_2_with_the_reason(tmp_path: Path) -> None:
    got = run("serve", "--port", "http", cwd=tmp_path)
    assert got.returncode == 2 and "port" in got.stderr


@pytest.mark.parametrize("choice", ["auto", "asyncio"])
def test_serve_runs_on_the_event_loop_chosen_and_stores_on_it(
    tmp_path: Path, choice: str
) -> None:
    # auto is uvloop wherever it is installed (a dependency except on Windows).
    expected = "asyncio" if choice == "asyncio" or sys.platform == "win32" else "uvloop"
    proc, url, lines = _serve(tmp_path, "--event-loop", choice, "--write-keys",
                              "p=key-0123456789abcdef")
    try:
        assert f"event loop {expected})" in lines[-1]
        ev = event("feature_used", {"feature": "search"})
        req = urllib.request.Request(url + "/v1/batch", data=body([ev]),
                                     headers=headers("key-0123456789abcdef"))
        with urllib.request.urlopen(req) as resp:
            assert json.loads(resp.read())["accepted"] == 1
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    # Stored before exit, on either loop (the drain at shutdown runs on it too).
    got = run("sql", "SELECT event FROM events", "--direct", "--format", "json", cwd=tmp_path)
    assert json.loads(got.stdout)["rows"] == [["feature_used"]]


def test_an_unavailable_event_loop_is_a_settings_error_that_says_what_to_do() -> None:
    from quietly_collector.commands.main import loop_factory
    from quietly_collector.settings import SettingsError

    with mock.patch.dict(sys.modules, {"uvloop": None}):  # as where it is not installed
        assert loop_factory("auto") == (None, "asyncio")
        with pytest.raises(SettingsError, match="uvloop is not installed"):
            loop_factory("uvloop")


def test_sigterm_stores_everything_acknowledged_before_exiting(tmp_path: Path) -> None:
    # A long flush interval: without the drain at shutdown nothing would be stored yet.
    proc, url, _ = _serve(tmp_path, "--flush-interval-ms", "600000")
    key = (tmp_path / "quietly-data" / "dev-write-key").read_text().strip()
    ids: set[str] = set()
    for _ in range(20):
        events = [event() for _ in range(50)]
        ids.update(e["event_id"] for e in events)
        req = urllib.request.Request(url + "/v1/batch", data=body(events), headers=headers(key))
        with urllib.request.urlopen(req) as resp:
            assert json.loads(resp.read())["accepted"] == 50
    started = time.monotonic()
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    assert time.monotonic() - started < 15  # the drain is bounded
    got = run("sql", "SELECT toString(event_id) FROM events", "--direct", "--format", "json",
              cwd=tmp_path)
    assert {r[0] for r in json.loads(got.stdout)["rows"]} == ids
    # Nothing was left behind in the spool for the next start.
    spool = tmp_path / "quietly-data" / "spool"
    checkpoint = (spool / "checkpoint").read_text().split()
    segment = spool / f"{int(checkpoint[0]):012d}.wal"
    assert segment.stat().st_size == int(checkpoint[1])
