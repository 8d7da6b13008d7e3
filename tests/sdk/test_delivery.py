"""Delivery: offline periods, exits, crashes, forks, back-pressure from the collector."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from quietly import Telemetry
from tests.sdk.conftest import ThreadedCollector, run_sdk


def _script(url: str, key: str, state: Path, body: str) -> str:
    head = f"""
        from quietly import Telemetry
        t = Telemetry(endpoint={url!r}, write_key={key!r}, app="my-ide",
                      state_dir={str(state)!r}, flush_interval=0.2, request_timeout=2.0)
    """
    return textwrap.dedent(head) + textwrap.dedent(body)


def test_offline_events_are_delivered_by_the_next_process_exactly_once(
    collector: ThreadedCollector, tmp_path: Path
) -> None:
    state = tmp_path / "s"
    collector.stop()  # the first process runs offline
    first = _script(collector.url, collector.write_key, state, """
        t.set_consent("basic")
        for i in range(300):
            t.track("feature_used", feature="offline", duration_ms=i)
        print(t.flush(0.5))
        t.shutdown(0.5)
    """)
    assert run_sdk(first).strip() == "False"
    # A crash: the process dies without shutdown after its events reached the spool.
    crashed = _script(collector.url, collector.write_key, state, """
        import os, time
        for i in range(200):
            t.track("feature_used", feature="crashed", duration_ms=i)
        t.flush(0.5)  # spooled, not delivered (offline)
        os._exit(3)
    """)
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", crashed], capture_output=True, timeout=60)
    assert proc.returncode == 3
    collector.start()
    second = _script(collector.url, collector.write_key, state, """
        print(t.flush(20))
        t.shutdown(2)
    """)
    assert run_sdk(second).strip() == "True"
    # Run a third time: nothing is sent twice.
    assert run_sdk(second).strip() == "True"
    rows = collector.rows(
        "SELECT JSONExtractString(props, 'feature') AS f, count(), uniqExact(event_id)"
        " FROM events WHERE event = 'feature_used' GROUP BY f ORDER BY f"
    )
    assert [tuple(r) for r in rows] == [("crashed", 200, 200), ("offline", 300, 300)]


def test_exit_is_bounded_when_the_collector_hangs(tmp_path: Path) -> None:
    # A server that accepts connections and never answers: the worst network case.
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(100)
    url = f"http://127.0.0.1:{hang.getsockname()[1]}"
    try:
        script = textwrap.dedent(f"""
            import time
            from quietly import Telemetry
            t = Telemetry(endpoint={url!r}, write_key="k", app="my-ide",
                          state_dir={str(tmp_path / "s")!r}, exit_timeout=1.0)
            t.set_consent("basic")
            for i in range(100):
                t.track("feature_used", feature="hang")
            t.flush(0.3)  # the worker is now stuck in a request (10 s timeout)
            print(time.time())
        """)
        out = run_sdk(script)
        exit_took = time.time() - float(out.strip())
    finally:
        hang.close()
    # exit_timeout is 1 s; allow for interpreter teardown on a busy machine.
    assert exit_took < 3.0, f"the interpreter took {exit_took:.1f}s to exit"
    # Nothing was lost: the events are on disk for the next process.
    import sqlite3

    db = sqlite3.connect(tmp_path / "s" / "spool.sqlite3")
    # 100 events + session_start + session_end
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 102


def test_spool_is_bounded_oldest_dropped_and_counted(tmp_path: Path) -> None:
    t = Telemetry(
        endpoint="http://127.0.0.1:9", write_key="k", app="my-ide", state_dir=tmp_path / "s",
        max_spool_events=50, flush_interval=60,
    )
    t.set_consent("basic")
    for i in range(200):
        t.track("feature_used", feature="f", duration_ms=i)
    t.flush(0.5)
    st = t.stats()
    t.shutdown(0.2)
    import sqlite3

    db = sqlite3.connect(tmp_path / "s" / "spool.sqlite3")
    kept = [json.loads(b)["props"]["duration_ms"] for (b,) in db.execute(
        "SELECT body FROM events ORDER BY id") if b"feature_used" in b]
    assert len(kept) <= 50 and kept[-1] == 199  # the newest survive
    assert st["dropped"]["spool_full"] == 201 - 50


class _Stub(BaseHTTPRequestHandler):
    """Answers from a script of statuses and records when each request came."""

    script: ClassVar[list[tuple[int, dict[str, str], bytes]]] = []
    seen: ClassVar[list[float]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append(time.monotonic())
        status, headers, body = self.script.pop(0) if self.script else (
            200, {}, b'{"accepted":1,"duplicates":0,"rejected":[]}')
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[type[_Stub]]:
    handler = type("Handler", (_Stub,), {"script": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()


@pytest.mark.parametrize("status", [503, 429])
def test_retry_after_is_honoured(stub: type[_Stub], tmp_path: Path, status: int) -> None:
    stub.script.append((status, {"Retry-After": "2"}, b"busy"))
    t = Telemetry(
        endpoint=stub.url, write_key="k", app="my-ide", state_dir=tmp_path / "s",  # type: ignore[attr-defined]
        flush_interval=0.05,
    )
    t.set_consent("basic")
    t.track("feature_used", feature="f")
    assert t.flush(10)
    assert t.stats()["send_failures"] == 1
    t.shutdown(1)
    assert len(stub.seen) >= 2  # (shutdown sends session_end)
    assert stub.seen[1] - stub.seen[0] >= 1.9


def test_collector_rejections_are_dropped_and_counted_not_retried(
    collector: ThreadedCollector, tmp_path: Path
) -> None:
    # An event type this app declares but the collector does not know.
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "plugin_loaded.v1.toml").write_text(
        'name = "plugin_loaded"\nversion = 1\n[fields.plugin]\ntype = "keyword"\nmax_length = 64\n'
    )
    t = Telemetry(
        endpoint=collector.url, write_key=collector.write_key, app="my-ide",
        state_dir=tmp_path / "s", schema_dirs=[schemas],
    )
    t.set_consent("basic")
    t.track("plugin_loaded", plugin="vim")
    t.track("feature_used", feature="neighbour")
    assert t.flush(10)
    assert t.flush(1)  # nothing left to retry
    st = t.stats()
    t.shutdown(1)
    assert st["dropped"]["rejected_by_collector"] == 1
    assert collector.count("event = 'feature_used'") == 1


def test_worker_restarts_in_a_forked_child(collector: ThreadedCollector, tmp_path: Path) -> None:
    script = _script(collector.url, collector.write_key, tmp_path / "s", """
        import os
        t.set_consent("basic")
        t.track("feature_used", feature="parent-before")
        t.flush(10)
        pid = os.fork()
        if pid == 0:
            t.track("feature_used", feature="child")
            ok = t.flush(10)
            os._exit(0 if ok else 1)
        t.track("feature_used", feature="parent-after")
        ok = t.flush(10)
        _, status = os.waitpid(pid, 0)
        print(ok, os.waitstatus_to_exitcode(status))
        t.shutdown(2)
    """)
    assert run_sdk(script).split() == ["True", "0"]
    rows = collector.rows(
        "SELECT JSONExtractString(props, 'feature') AS f, count() FROM events"
        " WHERE event = 'feature_used' GROUP BY f ORDER BY f"
    )
    assert [tuple(r) for r in rows] == [("child", 1), ("parent-after", 1), ("parent-before", 1)]


def test_busy_host_still_gets_events_to_disk_and_memory_stays_bounded(tmp_path: Path) -> None:
    t = Telemetry(endpoint="http://127.0.0.1:9", write_key="k", state_dir=tmp_path / "s",
                  max_queue=2_000, flush_interval=0.1)
    t.set_consent("basic")
    # The host never pauses: at least 2 s, and until the worker has written something
    # (a worker that waits for an empty queue never would; 20 s bound on loaded CI).
    start = time.monotonic()
    n = 0
    while True:
        for _ in range(1000):
            t.track("feature_used", feature="busy", duration_ms=n % 1000)
            n += 1
        elapsed = time.monotonic() - start
        if elapsed > 20 or (elapsed > 2 and t.stats().get("spooled", 0) > 0):
            break
    st = t.stats()
    assert st["queued"] <= 2_000
    assert st.get("spooled", 0) > 0, "the worker made no progress while the host was busy"
    t.shutdown(2)
    # Every event is accounted for: on disk, or dropped and counted (+ session start/end).
    # On a loaded machine the worker may still be writing its last chunk: allow it time.
    deadline = time.monotonic() + 20
    while True:
        st = t.stats()
        if st["spooled"] + st["dropped"]["queue_full"] == n + 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert st["spooled"] + st["dropped"]["queue_full"] == n + 2
