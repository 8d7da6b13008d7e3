"""``quietly simulate``: simulated IDE users, through the real SDK, into a real collector."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta

import pytest

from quietly_collector.commands.main import build_parser
from quietly_collector.commands.simulate import run_simulate
from quietly_collector.commands.simulate_model import DAY, END_MARGIN, plan_user
from quietly_schemas import builtin_catalog, check_props
from tests.sdk.conftest import ThreadedCollector

EXPECTED = ("feature_used", "performance", "session_start", "session_end", "survey_response",
            "job_started", "job_step", "job_completed", "deployment", "screen_viewed",
            "experiment_exposure", "build_finished")


def simulate(collector: ThreadedCollector, *extra: str, url: str | None = None) -> int:
    args = build_parser().parse_args([
        "simulate", "--users", "8", "--days", "10", "--seed", "1",
        "--url", url or collector.url, "--write-key", collector.write_key, *extra,
    ])
    return run_simulate(args, collector.settings)


def by_event(collector: ThreadedCollector) -> dict[str, int]:
    rows = collector.rows("SELECT event, count() FROM events GROUP BY event")
    return {e: int(n) for e, n in rows}


def test_simulated_users_fill_every_event_type_over_the_requested_days(
    collector: ThreadedCollector, capsys: pytest.CaptureFixture[str]
) -> None:
    before = datetime.now(UTC)
    assert simulate(collector) == 0
    after = datetime.now(UTC)
    out = capsys.readouterr().out
    counts = by_event(collector)
    for name in EXPECTED:
        assert counts.get(name, 0) > 0, (name, counts)
    assert counts.get("crash", 0) + counts.get("error", 0) > 0
    # Every event the SDK checked was valid, and all of them arrived.
    assert re.search(r"dropped:\s+none\n", out), out
    delivered = re.search(r"events delivered: ([\d,]+)", out)
    assert delivered and int(delivered[1].replace(",", "")) == sum(counts.values())
    assert f"quietly query dau --since {(before - timedelta(days=10)).date()}" in out

    first, last, days, installs, versions, consents = collector.rows(
        "SELECT min(ts), max(ts), uniqExact(toDate(ts)), uniqExact(install_hash),"
        " uniqExact(app_version), uniqExact(consent) FROM events")[0]
    first, last = first.replace(tzinfo=UTC), last.replace(tzinfo=UTC)
    assert before - timedelta(days=10) <= first < before - timedelta(days=8)
    assert before - timedelta(days=3) < last <= after  # recent, never in the future
    assert days >= 7 and installs == 8
    assert versions >= 2 and consents == 2  # upgrades over time; basic and detailed users
    joined = collector.rows(
        "SELECT uniqExact(d) FROM (SELECT min(toDate(ts)) AS d FROM events GROUP BY install_hash)")
    assert joined[0][0] >= 3  # users join on different days: cohorts and activation have content

    # The same seed gives the same event mix (new installs, so nothing is a duplicate).
    assert simulate(collector) == 0
    assert by_event(collector) == {e: 2 * n for e, n in counts.items()}


def test_unreachable_collector_and_refused_key_fail_clearly(
    collector: ThreadedCollector, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert simulate(collector, url=closed) == 1
    assert f"cannot reach a collector at {closed}" in capsys.readouterr().err
    assert simulate(collector, "--write-key", "not-a-key") == 1
    assert "refused the write key" in capsys.readouterr().err
    assert collector.count() == 0


def test_plans_are_valid_deterministic_and_inside_the_window() -> None:
    catalog = builtin_catalog()
    days = 30
    builds: dict[str, list[bool]] = {}
    for index in range(150):
        plan = plan_user(7, index, days)
        assert plan == plan_user(7, index, days)
        exposures = [p for s in plan.segments for _, n, p in s.events
                     if n == "experiment_exposure"]
        assert len(exposures) == 1 and exposures[0]["experiment"] == "onboarding_tour"
        for s in plan.segments:
            builds.setdefault(s.version, []).extend(
                p["success"] for _, n, p in s.events if n == "build_finished")
        for segment in plan.segments:
            times = [t for t, _, _ in segment.events]
            assert times == sorted(times)
            assert times[0] >= 0 and times[-1] <= days * DAY - END_MARGIN
            for _, name, props in segment.events:
                schema = catalog.get(name, 1)
                assert schema is not None, name
                for level in ("basic", "detailed"):
                    check_props(schema, props, level)  # raises EventInvalid
    rate = {v: sum(b) / len(b) for v, b in builds.items() if b}
    assert rate["1.4.0"] < rate["1.5.0"] - 0.1, rate  # builds fail more on the old release


def test_simulated_channels_retain_differently() -> None:
    """Enterprise installs stay longest and paid-ads installs leave first, as in the
    KPI plan's cohort table, so a breakdown by channel shows a difference."""
    active: dict[str, list[int]] = {}
    for index in range(300):
        plan = plan_user(3, index, 40)
        [seg] = [e for s in plan.segments for e in s.events if e[1] == "segments"][:1]
        days = {int(e[0] // DAY) for s in plan.segments for e in s.events}
        active.setdefault(seg[2]["channel"], []).append(max(days) - min(days))
    mean = {c: sum(v) / len(v) for c, v in active.items()}
    assert mean["enterprise"] > mean["organic"] > mean["paid_ads"], mean
