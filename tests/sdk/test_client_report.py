"""Client reports end to end: what the SDK dropped reaches the collector's loss account
(``quietly query delivery``, /v1/metrics/delivery), /metrics and the engineering page,
exactly as the SDK counted it, by reason."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from quietly import Telemetry
from quietly._report import Reporter, fields
from quietly._stats import Stats
from quietly_collector.insights.metrics import parse_query, run
from tests.helpers import ADMIN_TOKEN, WRITE_KEY
from tests.sdk.conftest import ThreadedCollector


def _get(c: ThreadedCollector, path: str) -> tuple[str, bytes]:
    req = urllib.request.Request(c.url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers.get("Content-Type", ""), resp.read()


def _account(c: ThreadedCollector) -> list[dict[str, Any]]:
    _, raw = _get(c, "/v1/metrics/delivery")
    rows: list[dict[str, Any]] = json.loads(raw)
    return rows


def _dropped_by_field(t: Telemetry) -> dict[str, int]:
    return dict(fields(t.stats()["dropped"]))


def test_drops_while_the_collector_is_down_reach_the_loss_account_exactly(
    collector: ThreadedCollector, tmp_path: Path,
) -> None:
    collector.stop()  # down: nothing is delivered, the queue and the spool fill
    t = Telemetry(collector.url, WRITE_KEY, app="lossy", state_dir=tmp_path / "s",
                  max_queue=40, max_spool_events=25, flush_interval=0.1, max_backoff=0.2,
                  max_event_age=1.0)
    t.set_consent("basic")
    # The minute between reports, shortened so the test need not wait for a second one.
    t._worker.reporter.interval = 0.0
    t.track("no_such_event")  # invalid (first: the full queue would take it otherwise)
    for i in range(300):
        t.track("job_started", job=f"j{i % 7}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not t.stats()["dropped"].get("too_old"):
        time.sleep(0.1)  # spooled events outlive max_event_age while nothing is delivered
    collector.start()  # back, on the same port
    t.track("job_started", job="after")  # a send to piggyback on
    assert t.flush(10)
    dropped = _dropped_by_field(t)
    assert {"queue_full", "spool_evicted", "too_old", "invalid"} <= set(dropped), dropped
    # Whatever was dropped after the first report goes with the next send.
    t.track("job_started", job="after-2")
    assert t.flush(10)
    t.shutdown(5)
    assert _dropped_by_field(t) == dropped  # nothing dropped since
    assert t.stats()["client_reports_sent"] >= 1

    collector.rows("SELECT 1")  # settle: everything acknowledged is in ClickHouse
    rows = _account(collector)
    assert [r["app"] for r in rows] == ["lossy"]
    assert rows[0]["sdk_dropped"] == dropped
    assert rows[0]["stored"] == collector.count("app = 'lossy' AND event != 'client_report'")
    assert rows[0]["collector_rejected"] == {}
    assert collector.running is not None
    # The CLI's path reads the same view.
    q = parse_query("delivery")
    columns, direct = run(collector.running.store, q)
    assert columns == ["day", "app", "sdk_dropped", "collector_rejected", "stored"]
    assert direct[0][2] == dropped

    _, metrics = _get(collector, "/metrics")
    for reason, n in dropped.items():
        assert f'quietly_sdk_dropped_total{{reason="{reason}"}} {float(n)}' in metrics.decode()
    ctype, page = _get(collector, "/dashboard/engineering")
    assert ctype.startswith("text/html")
    html = page.decode()
    assert "Ingestion warnings" in html and "<script" not in html
    assert f"queue_full {dropped['queue_full']:,}" in html


def test_a_report_is_frozen_until_delivered_and_sent_at_most_once_a_minute() -> None:
    now = [1000.0]
    stats = Stats()
    r = Reporter(stats, clock=lambda: now[0])
    assert r.due() is None  # nothing dropped
    stats.drop("queue_full", 3)
    stats.drop("http_400", 2)
    stats.drop("rejected_by_collector", 5)  # the collector's own count: not reported
    first = r.due()
    assert first is not None and first.counts == {"queue_full": 3, "send_gave_up": 2}
    stats.drop("queue_full", 1)
    assert r.due() is first  # a resend of the same report (same event id)
    r.delivered(first)
    now[0] += 59
    assert r.due() is None  # within the minute
    now[0] += 1
    second = r.due()
    assert second is not None and second.counts == {"queue_full": 1}
    assert second.event_id != first.event_id
