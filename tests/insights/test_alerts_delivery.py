"""Alerts end to end: `quietly alerts check` against a running collector (exit status
1 on a critical alert), the collector's own scheduler, webhook retries and failures,
rules from the TOML config, and the state machine's edges."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from quietly_collector.commands import main as cli
from quietly_collector.insights.alerts import notify, rules
from quietly_collector.insights.alerts.evaluate import Observation
from quietly_collector.insights.alerts.rules import effective_rules
from quietly_collector.insights.alerts.scheduler import check
from quietly_collector.insights.alerts.state import step
from quietly_collector.settings import AlertRule, Settings, SettingsError, load_settings
from tests import alert_data as d
from tests.alert_data import TODAY, at
from tests.alert_webhook import Receiver, receiver  # noqa: F401 (fixture)
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import ADMIN_TOKEN

BUSY = AlertRule(name="busy", metric="sessions", column="sessions", aggregate="sum",
                 threshold=5, severity="critical", description="more than 5 sessions today")


@pytest.fixture
def settings(tmp_path: Path, chdb_path: Path, receiver: Receiver) -> Settings:  # noqa: F811
    return make_settings(tmp_path, chdb_path, alert_webhooks=[receiver.url],
                         alert_interval_s=0)


async def test_alerts_check_asks_the_collector_and_fails_on_a_critical_alert(
        server: Running, receiver: Receiver, capsys: pytest.CaptureFixture[str],  # noqa: F811
) -> None:
    days = [TODAY - timedelta(days=k) for k in range(1, 15)]
    await d.send(server, [
        *d.active("shrinking", days[7:], 20), *d.active("shrinking", days[:7], 10),  # -50%
        *d.active("stable", days[7:], 20), *d.active("stable", days[:7], 18),  # -10%
        *d.active("small", days[7:], 3),  # gone, but it was 3 users
    ])
    argv = ["alerts", "check", "--url", server.url, "--admin-token", ADMIN_TOKEN]
    assert await asyncio.to_thread(cli.main, argv) == 1
    out = capsys.readouterr().out
    assert "FIRING   [critical] dau_drop project=proj app=shrinking: value -50," in out
    assert "quietly query dau --project proj --app shrinking" in out
    assert "stable" not in out and "small" not in out
    assert receiver.kinds() == [("dau_drop", "app=shrinking", "firing")]

    # Late events fill the gap: the drop was not real.
    await d.send(server, d.active("shrinking", days[:7], 10, first=10))
    assert await asyncio.to_thread(cli.main, [*argv, "--format", "json"]) == 0
    alerts = json.loads(capsys.readouterr().out)
    dau = next(a for a in alerts if a["scope"] == "project=proj app=shrinking")
    assert (dau["state"], dau["previous_state"], dau["value"]) == ("resolved", "firing", 0)
    assert receiver.kinds()[1:] == [("dau_drop", "app=shrinking", "resolved")]
    # Write keys cannot trigger it.
    status, _ = await server.post("/v1/admin/alerts/check", b"",
                                  {"Authorization": "Bearer test-write-key-0123456789"})
    assert status == 403


async def test_the_collector_evaluates_on_its_own(
        tmp_path: Path, chdb_path: Path, receiver: Receiver) -> None:  # noqa: F811
    running = await start(make_settings(tmp_path, chdb_path, alert_webhooks=[receiver.url],
                                        alert_interval_s=1, alert_rules=[BUSY]))
    try:
        await d.send(running, d.sessions("app1", TODAY, 10))
        deadline = asyncio.get_running_loop().time() + 20
        while not receiver.got and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert ("busy", "app=app1", "firing") in receiver.kinds()
    finally:
        await stop(running)


async def test_webhook_failures_are_retried_then_recorded(
        server: Running, settings: Settings, receiver: Receiver) -> None:  # noqa: F811
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    await d.send(server, d.sessions("app1", TODAY, 10))
    s = msgspec.structs.replace(settings, alert_rules=[BUSY])
    receiver.fail_next = 2
    [r] = [r for r in await check(server.store, s, at(TODAY, 1), sleep) if r.notified]
    assert receiver.kinds() == [("busy", "app=app1", "firing")] and receiver.requests == 3
    assert waits == list(notify.BACKOFF_S[:2])
    assert [(x.attempts, x.ok) for x in r.deliveries] == [(3, True)]

    # A receiver that stays down, another that is not there: the check still completes.
    receiver.fail_next = 100
    waits.clear()
    s = msgspec.structs.replace(s, alert_reminder_s=60,
                                alert_webhooks=[receiver.url, "http://127.0.0.1:1/hook"])
    [r] = [r for r in await check(server.store, s, at(TODAY, 2), sleep) if r.notified]
    assert r.notified == "reminder" and r.state.state == "firing"
    assert sorted((x.attempts, x.ok, x.status) for x in r.deliveries) == [
        (notify.ATTEMPTS, False, 0), (notify.ATTEMPTS, False, 500)]
    rows = server.rows("SELECT kind, target, attempts, ok, status, error"
                       " FROM alert_notifications ORDER BY at, target")
    assert [tuple(x[:5]) for x in rows] == [
        ("firing", receiver.url.rsplit("/", 1)[0], 3, 1, 200),
        ("reminder", "http://127.0.0.1:1", 4, 0, 0),
        ("reminder", receiver.url.rsplit("/", 1)[0], 4, 0, 500)]
    assert rows[-1][5] == "HTTP 500"
    async with server.session.get(server.url + "/healthz") as resp:
        assert resp.status == 200


def test_rules_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "q.toml"
    config.write_text("""
alert_webhooks = ["https://hooks.example.com/T000/B000"]
[[alert_rules]]
name = "crash_rate"
metric = "crash_rate"
column = "crashed_sessions"
aggregate = "ratio"
per = "sessions"
samples = "sessions"
min_samples = 500
threshold = 0.02
for = "30m"
severity = "critical"
apps = ["my-ide"]

[[alert_rules]]
name = "churn"
metric = "retention"
column = "churn_rate"
threshold = 0.15
enabled = false
""")
    s = load_settings(config, env={})
    rules = {r.name: r for r in effective_rules(s.alert_rules)}
    assert "churn" not in rules and "dau_drop" in rules and len(rules) == 9
    crash = rules["crash_rate"]
    assert (crash.threshold, crash.for_s, crash.min_samples, crash.apps) == (
        0.02, 1800, 500, ["my-ide"])


@pytest.mark.parametrize(("rule", "message"), [
    ('name = "x"\nmetric = "dau"\ncolumn = "users"\nthreshold = 1\naggregate = "median"',
     "alert_rules.x: aggregate"),
    ('name = "x"\nmetric = "revenue"\ncolumn = "users"\nthreshold = 1', "alert_rules.x: metric"),
    ('name = "x"\nmetric = "dau"\ncolumn = "users"\nthreshold = 1\nfor = "soon"',
     "alert_rules.x: for"),
    ('name = "x"\nmetric = "dau"\ncolumn = "users"', "threshold"),
])
def test_bad_rules_name_the_rule(tmp_path: Path, rule: str, message: str) -> None:
    config = tmp_path / "q.toml"
    config.write_text("[[alert_rules]]\n" + rule + "\n")
    with pytest.raises(SettingsError, match=message):
        rules.check(load_settings(config, env={}))


def _obs(breached: bool) -> Observation:
    return Observation(rule="busy", scope="app=a", app="a", value=9.0, current=9.0,
                       baseline=None, samples=9, enough=True, breached=breached,
                       window="2026-11-23", query="quietly query sessions", link="")


def test_a_breach_shorter_than_for_is_never_notified() -> None:
    rule = msgspec.structs.replace(BUSY, for_="10m")
    t0 = datetime(2026, 11, 23, 12, tzinfo=UTC)
    s1, n1 = step(None, _obs(True), rule, "critical", t0, 3600)
    s2, n2 = step(s1, _obs(True), rule, "critical", t0 + timedelta(minutes=9), 3600)
    s3, n3 = step(s2, _obs(False), rule, "critical", t0 + timedelta(minutes=12), 3600)
    assert [s1.state, s2.state, s3.state] == ["pending", "pending", "ok"]
    assert (n1, n2, n3) == (None, None, None)
    assert s2.since == t0  # pending counts from the first breach
    s4, n4 = step(s3, _obs(True), rule, "critical", t0 + timedelta(minutes=13), 3600)
    s5, n5 = step(s4, _obs(True), rule, "critical", t0 + timedelta(minutes=23), 3600)
    assert (s4.state, n4, s5.state, n5) == ("pending", None, "firing", "firing")
