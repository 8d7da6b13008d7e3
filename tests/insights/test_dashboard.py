"""The dashboard in a real headless browser (Debian's chromium through playwright), on
data from ``quietly simulate``: every page loads, with no console error and no request
leaving localhost; sign-in, the session cookie, sign-out; firing alerts shown.

Screenshots go to a temporary directory, or to QUIETLY_SCREENSHOTS (docs/img for the
README's pictures).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from quietly_collector.commands.simulate import run_simulate
from quietly_collector.insights.alerts.state import FIRING, AlertState, save
from tests.conftest import make_settings
from tests.helpers import ADMIN_TOKEN, WRITE_KEY
from tests.sdk.conftest import ThreadedCollector

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGES = {"executive": "/dashboard", "product": "/dashboard/product",
         "engineering": "/dashboard/engineering"}



@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory,
              chdb_path: Path) -> Iterator[ThreadedCollector]:
    c = ThreadedCollector(make_settings(tmp_path_factory.mktemp("dash"), chdb_path))
    c.start()
    try:
        args = argparse.Namespace(users=40, days=60, seed=1, app="demo-ide", url=c.url,
                                  write_key=WRITE_KEY, workers=4, data_dir=None)
        with contextlib.redirect_stdout(io.StringIO()):
            assert run_simulate(args, c.settings) == 0
        assert c.running is not None
        c.call(c.running.settle(60))
        now = datetime.now(UTC)
        # One firing alert, as the alert engine stores it: the panel must show it.
        save(c.running.store, [AlertState(
            rule="crash_rate", scope="demo-ide", app="demo-ide", state=FIRING,
            severity="critical", value=0.031, threshold=0.01, samples=120, window="1d",
            query="quietly query crash_rate --app demo-ide", since=now, last_notified=now,
            updated_at=now)], [])
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Fail, not skip: a suite that silently leaves the dashboard untested is not green.
    if not os.path.exists(CHROMIUM):
        pytest.fail("the dashboard tests need Debian's chromium at /usr/bin/chromium:"
                    " apt-get install -y chromium (.ci/run installs it when missing)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


def _shots() -> Path | None:
    target = os.environ.get("QUIETLY_SCREENSHOTS")
    return Path(target) if target else None


def test_every_page_in_a_real_browser(simulated: ThreadedCollector, browser: Any,
                                      tmp_path: Path) -> None:
    base = simulated.url
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))

    # No session: the browser is sent to the form. A write key is refused there.
    page.goto(base + "/dashboard")
    assert page.url == base + "/dashboard/login"
    page.fill("#token", WRITE_KEY)
    page.click("button[type=submit]")
    assert "write key" in page.inner_text("[role=alert]")
    problems.clear()  # the 403 of that refusal is logged as a console error, rightly
    page.fill("#token", ADMIN_TOKEN)
    page.click("button[type=submit]")
    assert page.url == base + "/dashboard"
    [cookie] = context.cookies()
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict",
                                                                        "/dashboard")
    assert ADMIN_TOKEN not in cookie["value"]

    out = _shots() or tmp_path
    out.mkdir(parents=True, exist_ok=True)
    for name, path in PAGES.items():
        response = page.goto(f"{base}{path}?days=30")
        assert response is not None and response.status == 200, name
        assert page.inner_text("h1") == name.capitalize()
        assert "crash_rate" in page.inner_text("section.alerts"), name
        assert page.locator("svg.chart").count() >= 1, name
        assert page.locator(".card").count() >= 4, name
        assert "No data in this period" not in page.inner_text("main"), name
        page.screenshot(path=str(out / f"dashboard-{name}.png"), full_page=True)
    assert page.locator("h2", has_text="Performance grades").count() == 1
    assert page.locator("span.grade").count() > 10
    # The targets panel: server-rendered, one row per row of GET /v1/metrics/targets.
    page.goto(base + "/dashboard?days=7")
    wanted = json.loads(urllib.request.urlopen(urllib.request.Request(
        base + "/v1/metrics/targets", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}),
        timeout=60).read())
    panel = page.locator("section.targets")
    assert panel.locator("h2").inner_text() == "Targets"
    assert panel.locator("tr.target").count() == len(wanted) >= 16
    for status in ("on_track", "off_track", "no_data"):
        assert panel.locator(f"tr.target.{status}").count() == sum(
            r["status"] == status for r in wanted), status
    assert panel.locator("tr.target", has_text="Stickiness (DAU / MAU)").locator(
        "td").nth(3).inner_text() == "at least 60.0%"
    assert panel.locator("tr.target", has_text="Monthly active users").locator(
        "td").last.inner_text() == "no data"  # no MAU target by default
    page.goto(base + "/dashboard/product?days=30")
    assert page.locator("h2", has_text="Jobs to be done").count() == 1
    assert page.locator("text=fix_a_bug").count() >= 1
    # Issue 24's panels, each filled by the simulation.
    for title in ("Lifecycle per week", "Days active in the last full week",
                  "Top paths from session_start", "Running experiments"):
        assert page.locator("h2", has_text=title).count() == 1, title
    flow = page.locator("svg.flow")
    assert flow.count() == 1 and flow.locator("path").count() >= 4  # bands between steps
    assert flow.locator("rect").count() >= 4 and "session_start" in flow.text_content()
    assert "onboarding_tour" in page.inner_text("main")
    assert "checklist, control, guided_tour" in page.inner_text("main")
    assert page.locator("text=returning").count() >= 1  # the lifecycle legend
    page.goto(base + "/dashboard/engineering?days=30")
    builds = page.locator("section", has=page.locator("h2", has_text="Build success rate"))
    assert builds.locator("svg.chart").count() == 2
    assert page.locator(".card", has_text="Build success rate").count() == 1

    # The segment selector: plain links; every panel then reads that segment's installs.
    page.goto(base + "/dashboard?days=30")
    everyone = page.inner_text(".card >> nth=0")
    page.click("nav.segments >> text=plan: paid")
    assert page.url == base + "/dashboard?days=30&where=plan%3Apaid"
    assert page.locator("nav.segments a.on").inner_text() == "plan: paid"
    assert page.inner_text(".card >> nth=0") != everyone
    page.click("nav[aria-label=dashboards] >> text=Product")
    assert "where=plan%3Apaid" in page.url  # the filter follows the navigation
    response = page.goto(base + "/dashboard?where=plan:gold")
    assert response is not None and response.status == 400
    page.goto(base + "/dashboard?days=30")
    # The 400 is logged as a console error, rightly, and so is the error page's favicon.
    problems.clear()

    assert problems == []
    assert requests, "no request recorded"
    outside = [u for u in requests if not u.startswith(base + "/") and not u.startswith("data:")]
    assert outside == []

    # Sign out: the cookie is gone, and the dashboard sends the browser to the form again.
    page.click("text=Sign out")
    assert page.url == base + "/dashboard/login"
    assert context.cookies() == []
    page.goto(base + "/dashboard/engineering")
    assert page.url == base + "/dashboard/login"
    context.close()


def test_sessions_are_signed_and_bound_to_the_admin_token(simulated: ThreadedCollector,
                                                           browser: Any) -> None:
    base = simulated.url
    context = browser.new_context()
    page = context.new_page()
    page.goto(base + "/dashboard/login")
    page.fill("#token", ADMIN_TOKEN)
    page.click("button[type=submit]")
    [cookie] = context.cookies()
    expires, _, mac = cookie["value"].partition(".")
    forged = [f"{int(expires) + 3600}.{mac}", f"{expires}.{'0' * 64}", "1.2", ""]
    for value in forged:
        context.clear_cookies()
        context.add_cookies([{**cookie, "value": value}])
        page.goto(base + "/dashboard")
        assert page.url == base + "/dashboard/login", value
    # The API answers as for any admin route: 401 without, 403 for a write key.
    api = context.request
    assert api.get(base + "/dashboard", max_redirects=0).status == 401
    assert api.get(base + "/dashboard", headers={"Authorization": f"Bearer {WRITE_KEY}"},
                   max_redirects=0).status == 403
    ok = api.get(base + "/dashboard?days=7",
                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert ok.status == 200 and "default-src 'none'" in ok.headers["content-security-policy"]
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert api.get(base + "/dashboard?days=0", headers=admin).status == 400
    # One app, or an app without data: the page still renders, with empty states.
    for path in PAGES.values():
        one = api.get(f"{base}{path}?days=7&app=demo-ide", headers=admin)
        assert one.status == 200 and "app <b>demo-ide</b>" in one.text(), path
        none = api.get(f"{base}{path}?app=%3Cb%3Eno-such-app", headers=admin)
        assert none.status == 200 and "&lt;b&gt;no-such-app" in none.text(), path
        assert "No data in this period" in none.text() or "No performance" in none.text()
    context.close()

