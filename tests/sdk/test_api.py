"""The SDK's helpers and guarantees, observed through local analytics (a JSONL file)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from quietly import AsyncTelemetry, EventInvalid, Telemetry


def local(tmp_path: Path, consent: str = "basic", **kw: Any) -> Telemetry:
    t = Telemetry(local_path=tmp_path / "events.jsonl", app="my-ide", app_version="1.4.2",
                  state_dir=tmp_path / "state", **kw)
    t.set_consent(consent)
    return t


def written(tmp_path: Path, name: str | None = None) -> list[dict[str, Any]]:
    path = tmp_path / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [e for e in events if name is None or e["event"] == name]


def test_helpers_produce_schema_valid_events(tmp_path: Path) -> None:
    t = local(tmp_path, "detailed")
    with t.timed("file_open"):
        time.sleep(0.01)

    @t.timed("search", memory_mb=12.5)
    def search() -> int:
        return 42

    assert search() == 42
    try:
        raise ValueError("cannot open /home/alice/notes.txt for bob@example.com")
    except ValueError:
        t.crash()
    t.error("io", code="E42", message="disk at 10.0.0.7 full")
    t.survey("nps", 9, comment="love it, mail me at a@b.example")
    t.job_started("refactor")
    t.job_step("refactor", "rename")
    t.job_completed("refactor", success=True)
    t.deployment("production", success=True, duration_ms=3000)
    t.screen("settings")
    assert t.flush(5)
    t.shutdown(1)
    perf = {e["props"]["operation"]: e["props"] for e in written(tmp_path, "performance")}
    assert perf["file_open"]["duration_ms"] >= 10
    assert perf["search"]["memory_mb"] == 12.5
    crash = written(tmp_path, "crash")[0]["props"]
    assert crash["kind"] == "ValueError"
    assert "alice" not in crash["message"] and "bob@" not in crash["message"]
    assert "[email]" in crash["message"] and "test_api.py" in crash["stack"]
    assert "10.0.0.7" not in written(tmp_path, "error")[0]["props"]["message"]
    assert written(tmp_path, "survey_response")[0]["props"]["score"] == 9
    names = [e["event"] for e in written(tmp_path)]
    for name in ("job_started", "job_step", "job_completed", "deployment", "screen_viewed",
                 "session_start", "session_end"):
        assert name in names


def test_crash_stack_only_at_detailed(tmp_path: Path) -> None:
    t = local(tmp_path, "basic")
    t.crash(RuntimeError("boom"))
    t.flush(5)
    t.shutdown(1)
    assert written(tmp_path, "crash")[0]["props"] == {"kind": "RuntimeError", "message": "boom"}


def test_invalid_events_are_dropped_and_counted_but_raise_in_debug(tmp_path: Path) -> None:
    t = local(tmp_path)
    t.track("feature_used", feature="ok")
    t.track("feature_used", duration_ms=1)  # missing required feature
    t.track("feature_used", feature="x", duration_ms="slow")  # wrong type
    t.track("feature_used", feature="someone@example.com")  # PII in a keyword
    t.track("no_such_event")
    t.flush(5)
    assert t.stats()["dropped"]["invalid"] == 4
    assert [e["props"]["feature"] for e in written(tmp_path, "feature_used")] == ["ok"]
    t.shutdown(1)
    d = Telemetry(local_path=tmp_path / "d.jsonl", state_dir=tmp_path / "state", debug=True)
    with pytest.raises(EventInvalid, match=r"\$\.props\.duration_ms"):
        d.track("feature_used", feature="x", duration_ms="slow")
    d.shutdown(1)


def test_internal_errors_never_reach_the_host(tmp_path: Path) -> None:
    t = local(tmp_path)

    def broken(*a: Any, **k: Any) -> None:
        raise RuntimeError("internal bug")

    class BrokenQueue(deque[Any]):
        append = broken

    t._queue = BrokenQueue()
    t.track("feature_used", feature="x")  # must not raise
    t._state_file.save = broken  # type: ignore[method-assign]
    t.set_consent("detailed")  # must not raise
    assert t.stats()["internal_errors"] == 2
    # The session_end cannot be queued either: counted, and the client still closes,
    # so the exit hook's shutdown finds nothing left to do.
    t.shutdown(1)
    t.shutdown(1)
    assert t.stats()["internal_errors"] == 3


def test_preview_shows_exactly_what_would_be_sent(tmp_path: Path) -> None:
    t = local(tmp_path, "basic")
    ev = t.preview("feature_used", feature="debugging", project_size=3, unknown=1)
    assert ev is not None
    assert ev["props"] == {"feature": "debugging"}
    assert ev["context"]["consent"] == "basic" and ev["install_id"] == t.install_id
    assert not written(tmp_path)  # preview sends nothing
    t.set_consent("off")
    assert t.preview("feature_used", feature="debugging") is None
    t.shutdown(1)


def test_session_restarts_after_inactivity(tmp_path: Path) -> None:
    t = local(tmp_path, session_timeout=0.2)
    t.track("feature_used", feature="a")
    time.sleep(0.4)
    t.track("feature_used", feature="b")
    with t.session():
        t.track("feature_used", feature="c")
    t.flush(5)
    t.shutdown(1)
    evs = written(tmp_path)
    sessions = {e["props"]["feature"]: e["session_id"] for e in evs if e["event"] == "feature_used"}
    assert len(set(sessions.values())) == 3
    ends = [e for e in evs if e["event"] == "session_end"]
    first = next(e for e in ends if e["session_id"] == sessions["a"])
    assert 0 <= first["props"]["duration_ms"] < 200  # ended at its last activity, not later


def test_spool_encryption_at_rest(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    t = Telemetry(endpoint="http://127.0.0.1:9", write_key="k", state_dir=tmp_path / "s",
                  spool_key=key, flush_interval=60)
    t.set_consent("basic")
    t.track("feature_used", feature="secret-feature-name")
    t.flush(0.3)
    t.shutdown(0.3)
    raw = (tmp_path / "s" / "spool.sqlite3").read_bytes()
    assert b"secret-feature-name" not in raw
    # The next process with the right key reads it back; with a wrong key, drops and counts.
    t2 = Telemetry(local_path=tmp_path / "events.jsonl", state_dir=tmp_path / "s", spool_key=key)
    assert t2.flush(5)
    t2.shutdown(1)
    assert [e["props"]["feature"] for e in written(tmp_path, "feature_used")] == [
        "secret-feature-name"]
    t3 = Telemetry(endpoint="http://127.0.0.1:9", write_key="k", state_dir=tmp_path / "s",
                   spool_key=Fernet.generate_key(), flush_interval=60)
    t3.track("feature_used", feature="x")
    t3.flush(0.3)
    t3.shutdown(0.3)
    t4 = Telemetry(local_path=tmp_path / "e4.jsonl", state_dir=tmp_path / "s", spool_key=key)
    t4.flush(5)
    assert t4.stats()["dropped"].get("spool_undecryptable", 0) >= 1
    t4.shutdown(1)


async def test_async_adapter_does_not_block_the_loop(tmp_path: Path) -> None:
    async with AsyncTelemetry(endpoint="http://127.0.0.1:9", write_key="k",
                              state_dir=tmp_path / "s", request_timeout=1.0) as t:
        await t.aset_consent("basic")
        t.track("feature_used", feature="x")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        assert await t.aflush(0.5) is False  # unreachable collector
        task.cancel()
        assert ticks >= 20  # the loop kept running while flush waited


def test_track_at_backdates_events_and_their_sessions(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    t = local(tmp_path)
    day = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
    t.track_at(day, "feature_used", feature="a")
    t.track_at(day + timedelta(minutes=5), "feature_used", feature="b")
    t.track_at(day + timedelta(hours=3), "feature_used", feature="c")  # a new session
    t.flush(5)
    t.shutdown(1)
    evs = {e["props"]["feature"]: e for e in written(tmp_path, "feature_used")}
    assert evs["a"]["ts"].startswith("2026-10-01T09:00:00")
    assert evs["a"]["session_id"] == evs["b"]["session_id"] != evs["c"]["session_id"]
    first_end = next(e for e in written(tmp_path, "session_end")
                     if e["session_id"] == evs["a"]["session_id"])
    assert first_end["props"]["duration_ms"] == 5 * 60 * 1000


def test_track_at_leaves_no_empty_session_at_start_up(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    t = local(tmp_path)  # opting in opens a session now ...
    t.track_at(datetime(2026, 10, 1, 9, 0, tzinfo=UTC), "feature_used", feature="a")
    t.flush(5)
    t.shutdown(1)
    # ... but only the backdated one is sent: an importer's or simulator's installs
    # must not all look active on the day they were loaded.
    assert [e["ts"][:10] for e in written(tmp_path)] == ["2026-10-01"] * 3
    # An app that starts and tracks nothing still reports its session.
    t2 = Telemetry(local_path=tmp_path / "events.jsonl", state_dir=tmp_path / "state")
    t2.shutdown(1)
    assert [e["event"] for e in written(tmp_path)][3:] == ["session_start", "session_end"]
