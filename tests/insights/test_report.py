"""``quietly report``: KPIs and their changes against the previous period, checked by hand
on a small dataset whose every figure is known, in Markdown and HTML, in-process and
through the CLI over HTTP.

Period: the week of 2026-10-25..31 against 2026-10-18..24.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from quietly_collector.commands.main import main
from quietly_collector.insights.report import fmt, html, markdown, target_plan, targets
from quietly_collector.insights.report.fetch import Fetch, store_fetch
from quietly_collector.insights.report.model import Report, build
from tests.conftest import Running, make_settings
from tests.helpers import ADMIN_TOKEN, body, event, headers
from tests.sdk.conftest import ThreadedCollector

UNTIL = date(2026, 10, 31)
A, B, C, D, E = (f"00000000-0000-4000-8000-{i:012d}" for i in range(1, 6))


def _ev(name: str, props: dict[str, Any], day: int, hour: float, install: str,
        session: int) -> dict[str, Any]:
    ts = datetime(2026, 10, day, int(hour), int(hour % 1 * 60), tzinfo=UTC)
    return event(name, props, ts=ts, install_id=install,
                 session_id=f"00000000-0000-4000-9000-{session:012d}")


def _session(day: int, hour: float, install: str, session: int,
             *more: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = [_ev("session_start", {}, day, hour, install, session)]
    out += [_ev(n, p, day, hour + (i + 1) / 60, install, session) for i, (n, p) in
            enumerate(more)]
    return out


def nps(score: int) -> tuple[str, dict[str, Any]]:
    return "survey_response", {"survey": "nps", "score": score}


def deploy(env: str = "production", ok: bool = True) -> tuple[str, dict[str, Any]]:
    return "deployment", {"environment": env, "success": ok}


def satisfaction(score: int) -> tuple[str, dict[str, Any]]:
    return "survey_response", {"survey": "job_satisfaction", "score": score, "job": "fix"}


EVENTS = [
    # The previous week: 3 sessions, NPS 10 and 3, one deployment, a job started only.
    *_session(20, 10, A, 1, nps(10)),
    *_session(20, 11, B, 2, nps(3)),
    *_session(21, 9, E, 3, ("job_started", {"job": "fix"}), satisfaction(4), deploy()),
    # This week: 5 sessions, one crash, NPS 10, 9 and 5, two successful production
    # deployments (a failed one and a staging one do not count), the job done once of two.
    *_session(28, 10, A, 4, nps(10), ("job_started", {"job": "fix"}),
              ("job_completed", {"job": "fix", "success": True}), satisfaction(8)),
    *_session(28, 12, B, 5, nps(9), ("crash", {"kind": "SIGSEGV"}),
              ("job_started", {"job": "fix"}), satisfaction(6)),
    *_session(29, 9, C, 6, nps(5), deploy(), deploy(), deploy(ok=False), deploy("staging")),
    *_session(30, 9, D, 7),
    *_session(31, 9, A, 8),
]


def _fetch(server: Running) -> Fetch:
    # A report also shows the targets: over the store, those of a plan (the defaults).
    return targets.with_targets(store_fetch(server.store), target_plan.plan({}))


async def _load(server: Running) -> None:
    status, payload = await server.post("/v1/batch", body(EVENTS), headers())
    assert status == 200 and payload["accepted"] == len(EVENTS), payload
    await server.settle()


def check(r: Report) -> None:
    k = {c.kpi.key: c for c in r.kpis}
    assert (r.current.since, r.previous.since, r.previous.until) == (
        date(2026, 10, 25), date(2026, 10, 18), date(2026, 10, 24))
    assert (k["dau"].current, k["dau"].previous) == pytest.approx((5 / 7, 3 / 7))
    assert fmt.change(k["dau"]) == "+0.29 (+66.7%)"
    assert (k["wau"].current, k["wau"].previous) == (4, 3)  # A B C D; A B E
    assert (k["mau"].current, k["mau"].previous) == (5, 3)
    assert (k["sessions"].current, k["sessions"].previous) == (5, 3)
    assert fmt.change(k["sessions"]) == "+2 (+66.7%)"
    assert (k["crashes_per_1000"].current, k["crashes_per_1000"].previous) == (200, 0)
    assert k["crashes_per_1000"].verdict == "worse"
    assert fmt.change(k["crash_free_sessions"]) == "-20.0 pp"
    assert (k["nps"].current, k["nps"].previous) == pytest.approx((100 / 3, 0))
    assert fmt.change(k["nps"]) == "+33.3 pts" and k["nps"].verdict == "better"
    assert (k["deployments"].current, k["deployments"].previous) == (2, 1)
    assert fmt.change(k["deployments"]) == "+1 (+100.0%)"
    [job] = r.jobs
    assert (job.job, job.started, job.completed) == ("fix", 2, 1)
    assert (job.completion_rate, job.previous_rate) == (0.5, 0.0)
    assert job.funnel == [("started", 2), ("completed", 1)]
    assert job.satisfaction == [None, None, 4.0, 7.0]


async def test_report_changes_against_the_previous_week(server: Running) -> None:
    await _load(server)
    r = build(_fetch(server), "week", UNTIL)
    check(r)

    md = markdown.render(r)
    assert md.startswith("# Weekly report: 2026-10-25 \u2013 2026-10-31\n")
    assert "| Sessions | 5 | 3 | ↑ +2 (+66.7%) |" in md
    assert "| Net promoter score | +33.3 | 0.0 | ↑ +33.3 pts |" in md
    assert "| Crash-free sessions | 80.0% | 100.0% | ↓ -20.0 pp |" in md
    assert "| Successful production deployments | 2 | 1 | ↑ +1 (+100.0%) |" in md
    assert "### fix" in md and "| started | 2 | 100.0% |" in md
    assert "| completed | 1 | 50.0% |" in md
    assert "over the last 4 weeks: \u2013 → \u2013 → 4.0 → 7.0" in md

    page = html.render(r)
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    assert '<td class="n better">↑ +33.3 pts</td>' in page
    assert '<td class="n worse">↓ -20.0 pp</td>' in page

    day = build(_fetch(server), "day", UNTIL)  # Oct 31 against Oct 30
    dau = next(c for c in day.kpis if c.kpi.key == "dau")
    assert (dau.current, dau.previous) == (1, 1) and dau.verdict == "same"


@pytest.fixture
def threaded(tmp_path: Path, chdb_path: Path) -> Iterator[ThreadedCollector]:
    c = ThreadedCollector(make_settings(tmp_path, chdb_path))
    c.start()
    try:
        yield c
    finally:
        c.close()


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_the_cli_reports_over_http(threaded: ThreadedCollector, tmp_path: Path) -> None:
    assert threaded.running is not None
    threaded.call(_load(threaded.running))
    common = ("--url", threaded.url, "--admin-token", ADMIN_TOKEN,
              "--data-dir", str(tmp_path / "cli"), "--until", "2026-10-31")
    code, md, err = _cli("report", "--period", "week", *common)
    assert code == 0, err
    assert "| Sessions | 5 | 3 | ↑ +2 (+66.7%) |" in md
    target = tmp_path / "report.html"
    code, _, err = _cli("report", "--period", "month", "--format", "html", "-o", str(target),
                        *common)
    assert code == 0, err
    assert "<h1>Monthly report: 2026-10-02 \u2013 2026-10-31</h1>" in target.read_text()
    code, _, err = _cli("report", "--admin-token", "wrong-token-0123456789", *common[:2],
                        *common[4:])
    assert code == 1 and "401" in err
    with pytest.raises(SystemExit) as exc:  # argparse: only day, week and month
        _cli("report", "--period", "year")
    assert exc.value.code == 2

    # Over one segment's installs only: A pays (sessions on the 20th, 28th and 31st).
    paid = event("segments", {"plan": "paid"}, ts=datetime(2026, 10, 20, 9, tzinfo=UTC),
                 install_id=A, session_id=None)

    async def send_paid() -> None:
        assert threaded.running is not None
        status, _ = await threaded.running.post("/v1/batch", body([paid]), headers())
        assert status == 200
        await threaded.running.settle()

    threaded.call(send_paid())
    code, md, err = _cli("report", "--period", "week", "--where", "plan=paid", *common)
    assert code == 0, err
    assert "\u2013 installs with plan=paid" in md.splitlines()[0]
    assert "| Sessions | 2 | 1 | ↑ +1 (+100.0%) |" in md
    code, _, err = _cli("report", "--where", "plan=gold", *common)
    assert code == 2 and "plan is one of free, paid, enterprise" in err


@pytest.fixture
def k_settings(tmp_path: Path, chdb_path: Path) -> Any:
    return make_settings(tmp_path, chdb_path, min_cell_installs=5)


@pytest.fixture
async def k_server(k_settings: Any) -> Any:
    from tests.conftest import start, stop

    running = await start(k_settings)
    try:
        yield running
    finally:
        await stop(running)


async def test_a_report_and_the_dashboard_withhold_small_cells(k_server: Running) -> None:
    """Five installs are fewer than min_cell_installs: every figure built on them is
    withheld, and the report and the pages still render."""
    await _load(k_server)
    r = build(_fetch(k_server), "week", UNTIL)
    k = {c.kpi.key: c for c in r.kpis}
    assert k["wau"].current is None and k["sessions"].current is None
    text = markdown.render(r)
    assert "| Sessions |" in text and "| Sessions | 5 |" not in text
    html.render(r)
    from tests.helpers import ADMIN_TOKEN as token

    for path in ("/dashboard", "/dashboard/product", "/dashboard/engineering"):
        async with k_server.session.get(f"{k_server.url}{path}?days=90",
                                        headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200, path
            page = await resp.text()
        if path == "/dashboard/product":
            assert "Too few installs to show" in page
