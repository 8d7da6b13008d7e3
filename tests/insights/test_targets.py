"""``targets``: every KPI's current value and status, against the same KPI computed in
plain Python from the generated events (tests/metrics_truth.py), by definition
(docs/metrics.md#targets) and not through the views; then the CLI, HTTP, the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from quietly_collector.commands.main import main
from quietly_collector.insights.report import html, markdown, target_plan, targets
from quietly_collector.insights.report.fetch import store_fetch
from quietly_collector.insights.report.model import build
from tests import metrics_truth as truth
from tests.conftest import Running, make_settings, start, stop
from tests.helpers import ADMIN_TOKEN, body, headers

UNTIL = truth.END
READ_KEY = "other-read-key-0123456789"


@pytest.fixture
async def loaded(tmp_path: Path, chdb_path: Path) -> AsyncIterator[tuple[Running, list[truth.Ev]]]:
    # A read key of the project that sent nothing: its targets have no data.
    running = await start(make_settings(tmp_path, chdb_path, read_keys={"other": READ_KEY}))
    try:
        events = truth.generate(installs=24)
        for i in range(0, len(events), 400):
            status, payload = await running.post(
                "/v1/batch", body([e.wire() for e in events[i:i + 400]]), headers())
            assert status == 200 and not payload["rejected"], payload
        await running.settle(60)
        yield running, events
    finally:
        await stop(running)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _in(e: truth.Ev, since: date, until: date = UNTIL) -> bool:
    return since <= e.ts.date() <= until


def expected_current(evs: list[truth.Ev], until: date) -> dict[str, Any]:
    """Each KPI from its definition: counts summed over apps, rates from summed parts."""
    month = until - timedelta(days=29)
    out: dict[str, Any] = {}
    for name, width in (("mau", 30), ("wau", 7)):
        users = {(e.app, e.install) for e in evs if _in(e, until - timedelta(days=width - 1))}
        out[name] = len(users) or None
    ratios = []
    for k in range(30):  # the mean of each day's DAU / MAU, over days with activity
        d = until - timedelta(days=k)
        apps = {e.app for e in evs if e.ts.date() == d}
        dau = len({(e.app, e.install) for e in evs if e.ts.date() == d})
        mau = len({(e.app, e.install) for e in evs if e.app in apps and
                   _in(e, d - timedelta(days=29), d)})
        if dau:
            ratios.append(dau / mau)
    out["stickiness"] = sum(ratios) / len(ratios) if ratios else None
    days: dict[str, set[date]] = defaultdict(set)
    for e in evs:
        days[e.install].add(e.ts.date())
    for name, n, lookback in (("retention_30d", 30, 120), ("retention_90d", 90, 180)):
        first_month = (until - timedelta(days=lookback)).replace(day=1)
        cohort = [ds for ds in days.values() if min(ds) >= first_month
                  and min(ds) + timedelta(days=n) <= until]
        kept = sum(max(ds) >= min(ds) + timedelta(days=n) for ds in cohort)
        out[name] = kept / len(cohort) if cohort else None
    out["churn_30d"] = None if out["retention_30d"] is None else 1 - out["retention_30d"]
    new = [v for (d, _), v in truth.activation(evs).items() if month <= date.fromisoformat(d)]
    out["activation"] = _ratio(sum(a for _, a in new), sum(n for n, _ in new))
    breadth = truth.feature_breadth([e for e in evs if _in(e, month)]).values()
    out["features_3plus"] = _ratio(sum(b["users_3plus_features"] for b in breadth),
                                   sum(b["active_users"] for b in breadth))
    nps = [e.props["score"] for e in evs if e.event == "survey_response"
           and e.props["survey"] == "nps" and _in(e, until - timedelta(days=89))]
    out["nps"] = (100 * (sum(s >= 9 for s in nps) - sum(s <= 6 for s in nps)) / len(nps)
                  if nps else None)
    sessions = [s for s in truth.sessions(evs).values() if month <= s["start"].date() <= until]
    out["crash_rate"] = _ratio(sum(s["crashes"] > 0 for s in sessions), len(sessions))
    out["errors_per_session"] = _ratio(sum(s["errors"] for s in sessions), len(sessions))
    out["session_duration"] = _ratio(sum(
        s["ended_ms"] / 1000 if s["ended_ms"] else (s["stop"] - s["start"]).total_seconds()
        for s in sessions), len(sessions))
    user_days = {(s["start"].date(), s["app"], s["install"]) for s in sessions}
    out["sessions_per_user_day"] = _ratio(len(sessions), len(user_days))
    out["deployments"] = sum(e.event == "deployment" and e.props["environment"] == "production"
                             and e.props["success"] is True and _in(e, month) for e in evs)
    for job in truth.JOBS:
        seen: dict[str, list[Any]] = {}
        for e in sorted(evs, key=lambda e: e.ts):
            if e.event.startswith("job_") and e.props.get("job") == job:
                p = seen.setdefault(e.install, [e.ts.date(), False, False])
                p[1] |= e.event == "job_started"
                p[2] |= e.event == "job_completed" and e.props.get("success") is not False
        met = [p for p in seen.values() if month <= p[0] <= until]  # first met in the period
        started = [p for p in met if p[1]]
        out[f"job_completion.{job}"] = (sum(p[2] for p in started) / len(started)
                                        if started else None)
        scores = [e.props["score"] for e in evs if e.event == "survey_response"
                  and e.props["survey"] == "job_satisfaction" and e.props["job"] == job
                  and _in(e, month)]
        out[f"job_satisfaction.{job}"] = sum(scores) / len(scores) if scores else None
    return out


def _judge(direction: str, current: float | None, target: Any) -> str:
    if current is None or target is None:
        return "no_data"
    ok = (target[0] <= current <= target[1] if direction == "between" else
          current >= target if direction == "at_least" else current <= target)
    return "on_track" if ok else "off_track"


def _near(x: float, kpi: str) -> list[tuple[Any, str]]:
    """Targets that ``x`` meets and misses, in each direction, valid for the KPI."""
    kind = target_plan.KPI_BY_NAME[kpi.partition(".")[0]].kind
    d = 0.01 if kind == "rate" else 0.05 * max(1.0, abs(x))
    low, high = (0.0, 1.0) if kind == "rate" else (-100.0, 100.0) if kind == "score" else (
        0.0, None)
    lo = max(low, x - d)
    hi = x + d if high is None else min(high, x + d)
    out = [({"between": [lo, hi]}, "on_track"), ({"at_least": lo}, "on_track"),
           ({"at_most": hi}, "on_track")]
    if x - d >= low:
        out.append(({"at_most": x - d}, "off_track"))
    if high is None or x + d <= high:
        out.append(({"at_least": x + d}, "off_track"))
    return out


def _rows(server: Running, configured: dict[str, Any], app: str = "") -> dict[str, dict[str, Any]]:
    plan = target_plan.plan(configured)
    columns, rows = targets.run(server.store, plan, UNTIL, app)
    assert columns == ["kpi", "period", "current", "target", "direction", "status"]
    return {r[0]: dict(zip(columns, r, strict=True)) for r in rows}


async def test_current_and_status_match_python(loaded: tuple[Running, list[truth.Ev]]) -> None:
    server, evs = loaded
    for app in ("", "my-cli"):
        want = expected_current([e for e in evs if not app or e.app == app], UNTIL)
        got = _rows(server, {}, app)
        assert set(got) == set(want), app
        for kpi, value in want.items():
            r = got[kpi]
            if value is None:
                assert r["current"] is None, (app, kpi)
            else:
                # 1e-3: the views round their own rates and means before they are pooled.
                assert r["current"] == pytest.approx(value, abs=1e-3, rel=1e-3), (app, kpi)
            target = target_plan.plan({})[[t.key for t in target_plan.plan({})].index(
                kpi.partition(".")[0])].value_at(UNTIL)
            assert r["target"] == (list(target) if isinstance(target, tuple) else target)
            assert r["status"] == _judge(r["direction"], value, target), (app, kpi)
    assert got["mau"]["period"] == "2026-10-02..2026-10-31"
    assert got["wau"]["period"] == "2026-10-25..2026-10-31"
    assert got["nps"]["period"] == "2026-08-03..2026-10-31"
    assert got["retention_30d"]["period"] == "2026-07-01..2026-10-31"
    assert (got["nps"]["target"], got["mau"]["target"], got["mau"]["status"]) == (50, None,
                                                                                  "no_data")

    # Every direction, met and missed, around the true value of every KPI that has one.
    want = expected_current(evs, UNTIL)
    trials: list[tuple[str, Any, str]] = [
        (kpi, t, s) for kpi, x in want.items() if x is not None for t, s in _near(x, kpi)]
    assert {s for _, _, s in trials} == {"on_track", "off_track"}
    for i in range(max(len(_near(1.0, "mau")), 5)):
        configured = {}
        for kpi in want:
            mine = [(t, s) for k, t, s in trials if k == kpi]
            if mine:
                configured[kpi] = mine[i % len(mine)][0]
        got = _rows(server, configured)
        for kpi, t in configured.items():
            status = next(s for k, tt, s in trials if k == kpi and tt == t)
            assert got[kpi]["status"] == status, (kpi, t, got[kpi])
            assert got[kpi]["direction"] == next(iter(t))

    # A dated schedule takes until's quarter (2026-Q4); a job may have its own target.
    got = _rows(server, {"mau": {"2026-Q3": 1, "2026-Q4": 10**6}, "wau": False,
                         "job_completion.fix-a-bug": {"at_least": 0}})
    assert (got["mau"]["target"], got["mau"]["status"]) == (10**6, "off_track")
    assert "wau" not in got
    assert (got["job_completion.fix-a-bug"]["direction"],
            got["job_completion.fix-a-bug"]["status"]) == ("at_least", "on_track")
    assert got["job_completion.ship-a-feature"]["direction"] == "between"


async def test_cli_http_and_report_show_the_collectors_targets(
        loaded: tuple[Running, list[truth.Ev]], tmp_path: Path) -> None:
    server, _ = loaded
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    url = f"{server.url}/v1/metrics/targets?until={UNTIL}"
    direct = _rows(server, {})
    async with server.session.get(url, headers=admin) as resp:
        assert resp.status == 200
        assert {r["kpi"]: r for r in await resp.json()} == direct
    async with server.session.get(url + "&format=csv", headers=admin) as resp:
        assert (await resp.text()).splitlines()[0] == "kpi,period,current,target,direction,status"
    async with server.session.get(f"{server.url}/v1/metrics", headers=admin) as resp:
        assert "targets" in {m["name"] for m in await resp.json()}
    async with server.session.get(url + "&since=2026-10-01", headers=admin) as resp:
        assert resp.status == 400
        assert "since does not apply" in (await resp.json())["error"]
    # A read key reads its own project's figures: that project sent nothing.
    async with server.session.get(url, headers={"Authorization": f"Bearer {READ_KEY}"}) as resp:
        scoped = {r["kpi"]: r for r in await resp.json()}
    assert direct["mau"]["current"] > 0 and scoped["mau"]["current"] is None
    assert scoped["stickiness"]["status"] == "no_data"

    async def cli(*args: str) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = await asyncio.to_thread(main, [*args, "--url", server.url,
                                                  "--admin-token", ADMIN_TOKEN])
        return code, out.getvalue()

    code, out = await cli("query", "targets", "--until", str(UNTIL), "--format", "json")
    assert code == 0 and {r["kpi"]: r for r in json.loads(out)} == direct
    code, out = await cli("query", "targets", "--until", str(UNTIL), "--app", "my-cli")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["kpi", "period", "current", "target",
                                              "direction", "status"]
    assert lines[-1] == f"({len(_rows(server, {}, 'my-cli'))} rows)"
    code, out = await cli("query", "--list")
    assert code == 0 and any(line.startswith("targets ") for line in out.splitlines())
    report = tmp_path / "r.md"
    code, _ = await cli("report", "--period", "month", "--until", str(UNTIL), "-o", str(report))
    text = report.read_text()
    assert code == 0 and "## Targets" in text
    stickiness = direct["stickiness"]
    assert (f"| Stickiness (DAU / MAU) | {UNTIL - timedelta(days=29)} \u2013 {UNTIL} |"
            f" {targets.shown('stickiness', stickiness['current'])} | at least 60.0% |"
            f" {stickiness['status'].replace('_', ' ')} |") in text

    # The report of the store itself, in HTML: one row per target, its status as a class.
    fetch = targets.with_targets(store_fetch(server.store), target_plan.plan({}))
    page = html.render(build(fetch, "month", UNTIL))
    assert page.count('<tr class="target') == len(direct)
    assert page.count('class="target on_track') == sum(
        r["status"] == "on_track" for r in direct.values())
    assert "Job completion rate: fix-a-bug" in page
    assert "## Targets" in markdown.render(build(fetch, "month", UNTIL))
