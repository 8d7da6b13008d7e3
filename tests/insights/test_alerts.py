"""Each default alert rule on generated data: it fires on data that breaches it, stays
quiet on data that does not (small samples included), resolves when the data
recovers, and a real local webhook receiver hears of each change exactly once.

Clocks are injected: ``check(now=...)`` decides the windows (UTC days) and the
``for`` and reminder durations, so nothing waits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from quietly_collector.insights.alerts.rules import DEFAULT_RULES
from quietly_collector.insights.alerts.scheduler import Result, check
from quietly_collector.insights.alerts.state import firing
from quietly_collector.settings import Settings
from tests import alert_data as d
from tests.alert_data import TODAY, YESTERDAY, at
from tests.alert_webhook import Receiver, receiver  # noqa: F401 (fixture)
from tests.conftest import Running, make_settings

REMINDER_S = 3600


@pytest.fixture
def settings(tmp_path: Path, chdb_path: Path, receiver: Receiver) -> Settings:  # noqa: F811
    return make_settings(tmp_path, chdb_path, alert_webhooks=[receiver.url],
                         alert_reminder_s=REMINDER_S, alert_interval_s=0)


def only(settings: Settings, *names: str) -> Settings:
    """The default rules named, the others turned off (as a config file would)."""
    off = [msgspec.structs.replace(r, enabled=False) for r in DEFAULT_RULES
           if r.name not in names]
    return msgspec.structs.replace(settings, alert_rules=off)


async def no_sleep(seconds: float) -> None:
    return None


async def run(server: Running, settings: Settings, when: datetime) -> dict[str, Result]:
    results = await check(server.store, settings, now=when, sleep=no_sleep)
    # Every scope names its project first (alerts are per project); the tests' data is
    # all project proj's (tests/alert_data.py sends it with its write key).
    assert all(r.state.scope.startswith("project=proj app=") for r in results)
    return {f"{r.state.rule} {r.state.scope.removeprefix('project=proj ')}": r
            for r in results}


def states(results: dict[str, Result]) -> dict[str, str]:
    return {k: r.state.state for k, r in results.items()}


async def test_crash_rate_and_errors_per_session(server: Running, settings: Settings,
                                                 receiver: Receiver) -> None:  # noqa: F811
    s = only(settings, "crash_rate", "errors_per_session")
    await d.send(server, [
        *d.sessions("crashy", YESTERDAY, 200, crashed=6),  # 3% of sessions crashed
        *d.sessions("steady", YESTERDAY, 200, crashed=1),  # 0.5%
        *d.sessions("tiny", YESTERDAY, 10, crashed=3, errors_each=10),  # below 100 sessions
        *d.sessions("noisy", YESTERDAY, 150, errors_each=6),
        # The next day is healthy again.
        *d.sessions("crashy", TODAY, 200), *d.sessions("noisy", TODAY, 150, errors_each=1),
    ])
    crash, errors = "crash_rate app=crashy", "errors_per_session app=noisy"

    got = await run(server, s, at(YESTERDAY, 12))
    assert states(got) == {
        crash: "pending", "crash_rate app=steady": "ok", "crash_rate app=tiny": "ok",
        "crash_rate app=noisy": "ok", errors: "pending", "errors_per_session app=crashy": "ok",
        "errors_per_session app=steady": "ok", "errors_per_session app=tiny": "ok"}
    assert got[crash].state.value == pytest.approx(0.03)
    assert got["errors_per_session app=tiny"].observation is not None
    assert not got["errors_per_session app=tiny"].observation.enough
    assert receiver.got == []  # pending is not notified: `for` has not passed

    got = await run(server, s, at(YESTERDAY, 12, 11))  # past both rules' 10 minutes
    assert (got[crash].state.state, got[errors].state.state) == ("firing", "firing")
    assert sorted(receiver.kinds()) == [("crash_rate", "app=crashy", "firing"),
                                        ("errors_per_session", "app=noisy", "firing")]
    msg = next(m for m in receiver.got if m["rule"] == "crash_rate")
    assert msg["severity"] == "critical" and msg["value"] == pytest.approx(0.03)
    assert msg["threshold"] == 0.01 and msg["window"] == YESTERDAY.isoformat()
    assert (f"quietly query crash_rate --project proj --app crashy --since {YESTERDAY}"
            in msg["text"])
    assert "value 0.03" in msg["text"] and "threshold 0.01" in msg["text"]
    assert msg["link"].endswith(f"/v1/metrics/crash_rate?since={YESTERDAY}&until={YESTERDAY}"
                                "&app=crashy&project=proj")

    fired = await _firing(server)
    assert [(f.rule, f.app, f.severity) for f in fired] == [
        ("crash_rate", "crashy", "critical"), ("errors_per_session", "noisy", "warning")]
    assert fired[0].since == at(YESTERDAY, 12, 11) and fired[0].threshold == 0.01

    await run(server, s, at(YESTERDAY, 12, 40))  # still firing: nothing new to say
    assert len(receiver.got) == 2
    await run(server, s, at(YESTERDAY, 13, 11))  # an hour on: one reminder each
    assert sorted(receiver.kinds())[1::2] == [("crash_rate", "app=crashy", "reminder"),
                                              ("errors_per_session", "app=noisy", "reminder")]

    got = await run(server, s, at(TODAY, 12))  # today's data is healthy
    assert (got[crash].state.state, got[errors].state.state) == ("resolved", "resolved")
    await run(server, s, at(TODAY, 12, 5))
    assert sorted(receiver.kinds()) == [
        ("crash_rate", "app=crashy", "firing"), ("crash_rate", "app=crashy", "reminder"),
        ("crash_rate", "app=crashy", "resolved"),
        ("errors_per_session", "app=noisy", "firing"),
        ("errors_per_session", "app=noisy", "reminder"),
        ("errors_per_session", "app=noisy", "resolved")]
    assert await _firing(server) == []
    history = server.rows("SELECT from_state, to_state FROM alert_history"
                          " WHERE rule = 'crash_rate' AND scope = 'project=proj app=crashy'"
                          " ORDER BY at")
    assert [tuple(r) for r in history] == [("ok", "pending"), ("pending", "firing"),
                                           ("firing", "resolved"), ("resolved", "ok")]


async def _firing(server: Running) -> list:  # type: ignore[type-arg]
    import asyncio

    return await asyncio.to_thread(firing, server.store)


async def test_performance_thresholds(server: Running, settings: Settings,
                                      receiver: Receiver) -> None:  # noqa: F811
    s = only(settings, "api_latency", "startup_slow", "idle_memory")
    events = []
    for app, api, startup, memory, n in (("slowapp", 800, 7000, 1500, 60),
                                         ("steady", 200, 1500, 400, 60),
                                         ("tiny", 900, 9000, 2000, 10)):
        events += d.timings(app, YESTERDAY, "api_request", api, n)
        events += d.timings(app, YESTERDAY, "startup", startup, n)
        events += d.timings(app, YESTERDAY, "idle", memory, n, measure="memory_mb")
    events += d.timings("slowapp", TODAY, "api_request", 150, 60)
    events += d.timings("slowapp", TODAY, "startup", 1200, 60)
    events += d.timings("slowapp", TODAY, "idle", 500, 60, measure="memory_mb")
    await d.send(server, events)
    rules = ("api_latency", "startup_slow", "idle_memory")

    got = await run(server, s, at(YESTERDAY, 12))
    assert {k: v for k, v in states(got).items() if v != "ok"} == {
        f"{r} app=slowapp": "pending" for r in rules}
    got = await run(server, s, at(YESTERDAY, 12, 16))
    assert {k: v for k, v in states(got).items() if v != "ok"} == {
        f"{r} app=slowapp": "firing" for r in rules}
    assert got["startup_slow app=slowapp"].state.value == pytest.approx(7000, rel=0.01)
    assert got["idle_memory app=slowapp"].state.value == pytest.approx(1500, rel=0.01)
    assert sorted(receiver.kinds()) == [(r, "app=slowapp", "firing") for r in sorted(rules)]

    got = await run(server, s, at(TODAY, 12))
    assert {k: v for k, v in states(got).items() if v != "ok"} == {
        f"{r} app=slowapp": "resolved" for r in rules}
    assert sorted(receiver.kinds())[1::2] == [(r, "app=slowapp", "resolved")
                                              for r in sorted(rules)]
    assert len(receiver.got) == 6


async def test_performance_regression_against_the_previous_version(
        server: Running, settings: Settings, receiver: Receiver) -> None:  # noqa: F811
    s = only(settings, "performance_regression")
    await d.send(server, [
        *d.timings("slower", TODAY, "startup", 1000, 60, version="1.0.0"),
        *d.timings("slower", TODAY, "startup", 1500, 60, version="1.1.0"),  # +50%
        *d.timings("stable", TODAY, "startup", 1000, 60, version="1.0.0"),
        *d.timings("stable", TODAY, "startup", 1050, 60, version="1.1.0"),  # +5%
        *d.timings("tiny", TODAY, "startup", 1000, 60, version="1.0.0"),
        *d.timings("tiny", TODAY, "startup", 3000, 10, version="1.1.0"),  # too few samples
    ])
    key = "performance_regression app=slower operation=startup measure=duration_ms"
    got = await run(server, s, at(TODAY, 1))
    assert {k: v for k, v in states(got).items() if v != "ok"} == {key: "pending"}
    assert got[key].state.value == pytest.approx(50, abs=2)
    got = await run(server, s, at(TODAY, 2, 1))  # `for` is an hour
    assert got[key].state.state == "firing"
    assert receiver.kinds() == [("performance_regression",
                                 "app=slower operation=startup measure=duration_ms", "firing")]

    # The fix ships: 1.2.0 is as fast as 1.0.0 was.
    await d.send(server, d.timings("slower", TODAY, "startup", 1000, 60, version="1.2.0"))
    got = await run(server, s, at(TODAY, 2, 10))
    assert got[key].state.state == "resolved"
    change = got[key].state.value
    assert change is not None and change < 0
    assert [k for _, _, k in receiver.kinds()] == ["firing", "resolved"]


async def test_performance_week_over_week(server: Running, settings: Settings,
                                          receiver: Receiver) -> None:  # noqa: F811
    s = only(settings, "performance_weekly")
    before, during = TODAY - timedelta(days=10), TODAY - timedelta(days=3)
    await d.send(server, [
        *d.timings("weekslow", before, "startup", 1000, 200),
        *d.timings("weekslow", during, "startup", 1500, 60),
        *d.timings("weekok", before, "startup", 1000, 200),
        *d.timings("weekok", during, "startup", 1100, 60),
    ])
    key = "performance_weekly app=weekslow operation=startup measure=duration_ms"
    await run(server, s, at(TODAY, 1))
    got = await run(server, s, at(TODAY, 2, 1))
    assert {k: v for k, v in states(got).items() if v != "ok"} == {key: "firing"}
    assert "vs" in got[key].state.window
    # The rest of the week was fast: its p95 is back to 1000 ms.
    await d.send(server, d.timings("weekslow", during, "startup", 1000, 1500, first=10))
    got = await run(server, s, at(TODAY, 3))
    assert got[key].state.state == "resolved"
    assert [k for _, _, k in receiver.kinds()] == ["firing", "resolved"]


async def test_nps_drop(server: Running, settings: Settings,
                        receiver: Receiver) -> None:  # noqa: F811
    s = only(settings, "nps_drop")
    before, during = TODAY - timedelta(days=40), TODAY - timedelta(days=5)
    await d.send(server, [
        *d.nps("unhappy", before, 25, 10, 5),  # NPS 50
        *d.nps("unhappy", during, 15, 13, 12, first=100),  # NPS 7.5
        *d.nps("content", before, 25, 10, 5), *d.nps("content", during, 25, 10, 5, first=100),
        *d.nps("few", before, 5, 0, 0), *d.nps("few", during, 0, 0, 5, first=100),
    ])
    got = await run(server, s, at(TODAY, 1))
    assert {k: v for k, v in states(got).items() if v != "ok"} == {"nps_drop app=unhappy": "firing"}
    assert got["nps_drop app=unhappy"].state.value == pytest.approx(-42.5)
    assert not got["nps_drop app=few"].observation.enough  # type: ignore[union-attr]
    await d.send(server, d.nps("unhappy", during, 40, 0, 0, first=200))
    got = await run(server, s, at(TODAY, 2))
    assert got["nps_drop app=unhappy"].state.state == "resolved"
    assert receiver.kinds() == [("nps_drop", "app=unhappy", "firing"),
                                ("nps_drop", "app=unhappy", "resolved")]


async def test_churn(server: Running, settings: Settings,
                     receiver: Receiver) -> None:  # noqa: F811
    s = only(settings, "churn")
    first, back = TODAY - timedelta(days=60), TODAY - timedelta(days=20)
    await d.send(server, [
        *d.active("leaky", [first], 60), *d.active("leaky", [back], 30),  # 50% churn
        *d.active("loyal", [first], 60), *d.active("loyal", [back], 57),  # 5%
        *d.active("few", [first], 5),  # 100%, of five installs
    ])
    got = await run(server, s, at(TODAY, 1))
    assert states(got) == {"churn app=leaky": "firing", "churn app=loyal": "ok",
                           "churn app=few": "ok"}
    assert got["churn app=leaky"].state.value == pytest.approx(0.5)
    # The other half of the cohort comes back.
    await d.send(server, d.active("leaky", [TODAY - timedelta(days=5)], 30, first=30))
    got = await run(server, s, at(TODAY, 2))
    assert got["churn app=leaky"].state.state == "resolved"
    assert receiver.kinds() == [("churn", "app=leaky", "firing"),
                                ("churn", "app=leaky", "resolved")]


async def test_another_projects_events_neither_hide_nor_fire_a_projects_alert(
    server: Running, settings: Settings, receiver: Receiver,  # noqa: F811
) -> None:
    """App names are whatever a client sends: project other's write key (public, in its
    app) sending clean sessions as app "crashy" must not resolve proj's crash alert,
    and its crashes must not fire one for proj."""
    from tests.helpers import OTHER_KEY, body, headers

    s = only(settings, "crash_rate")
    await d.send(server, d.sessions("crashy", YESTERDAY, 200, crashed=6))  # proj: 3%
    clean = d.sessions("crashy", YESTERDAY, 3000, crashed=0)
    for i in range(0, len(clean), 500):
        status, _ = await server.post("/v1/batch", body(clean[i:i + 500]), headers(OTHER_KEY))
        assert status == 200
    await server.settle(60)
    results = await check(server.store, s, now=at(YESTERDAY, 12), sleep=no_sleep)
    by_scope = {r.state.scope: r.state for r in results}
    assert by_scope["project=proj app=crashy"].state == "pending"
    assert by_scope["project=proj app=crashy"].value == pytest.approx(0.03)
    assert by_scope["project=other app=crashy"].state == "ok"


async def test_a_rule_filtered_by_segment_watches_only_those_installs(
    server: Running, settings: Settings, receiver: Receiver,  # noqa: F811
) -> None:
    from quietly_collector.settings import AlertRule

    rule = AlertRule(name="nps_paid", metric="nps", column="nps", op="<", threshold=0,
                     where={"plan": "paid"}, samples="responses", min_samples=10,
                     window="30d")
    s = msgspec.structs.replace(only(settings), alert_rules=[
        *[msgspec.structs.replace(r, enabled=False) for r in DEFAULT_RULES], rule])
    day = TODAY - timedelta(days=3)
    # Paying users (0-19) are unhappy, free users (20-59) happy: only paid fires.
    events = d.nps("app", day, 2, 3, 15) + d.nps("app", day, 40, 0, 0, first=20)
    events += [d.ev("segments", at(day, 0, 0, 1), d.install("app", i), "app",
                    plan="paid" if i < 20 else "free") for i in range(60)]
    await d.send(server, events)
    got = await run(server, s, at(TODAY, 1))
    assert states(got) == {"nps_paid app=app": "firing"}
    assert got["nps_paid app=app"].state.value == pytest.approx(100 * (2 - 15) / 20)
    assert receiver.kinds() == [("nps_paid", "app=app", "firing")]
