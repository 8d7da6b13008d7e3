"""posthog-js, run in Node with its default configuration (fetch, gzip bodies to /e/,
the key as each event's properties.token), pointed at a running collector.

The package is pinned by tests/receivers/posthog_js/package-lock.json; ``npm ci``
installs it the first time (node_modules is not committed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.helpers import WRITE_KEY
from tests.sdk.conftest import ThreadedCollector

JS = Path(__file__).resolve().parent / "posthog_js"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    assert found, "node is needed for the posthog-js test (Debian: apt-get install nodejs npm)"
    if not (JS / "node_modules" / "posthog-js").is_dir():
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=JS,
                       check=True, timeout=300)
    return found


@pytest.fixture
def collector(tmp_path: Path, chdb_path: Path) -> Iterator[ThreadedCollector]:
    c = ThreadedCollector(make_settings(tmp_path, chdb_path))
    c.start()
    try:
        yield c
    finally:
        c.close()


def test_posthog_js_in_node_is_stored_mapped_and_scrubbed(
    node: str, collector: ThreadedCollector
) -> None:
    subprocess.run([node, "capture.js", collector.url, WRITE_KEY], cwd=JS, check=True,
                   timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and collector.count() < 3:
        time.sleep(0.1)
    rows = collector.rows("SELECT event, props, install_hash, session_hash, ts_source"
                          " FROM events ORDER BY event")
    assert [(r[0], json.loads(r[1])) for r in rows] == [
        ("error", {"kind": "TypeError"}),  # message: detailed consent only
        ("feature_used", {"feature": "search", "duration_ms": 5, "success": True}),
        ("job_started", {"job": "from-js"}),
    ]
    # Its anonymous distinct_id and $session_id: one install, one session, keyed; its
    # batch sent_at corrects the clock.
    assert len({r[2] for r in rows}) == 1 and len({r[3] for r in rows}) == 1
    assert rows[0][3] != 0 and {r[4] for r in rows} == {"sent_at_skew"}
    assert collector.running is not None
    counters = collector.running.collector.counters
    assert counters["props_dropped_undeclared"] == 1  # "plan"
    assert counters["auth_failures_unknown_key"] == 0
