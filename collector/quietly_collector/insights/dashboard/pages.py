"""Dashboard handlers: check access, read the query string, render a page in a thread."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiohttp import web

from quietly_collector.access.appkeys import Principal
from quietly_collector.access.gate import Level, access, principal
from quietly_collector.insights import segments
from quietly_collector.insights.dashboard import alerts, engineering, executive, layout, product
from quietly_collector.insights.dashboard.widgets import View
from quietly_collector.insights.http import project_read, unavailable
from quietly_collector.insights.report import target_plan, targets
from quietly_collector.insights.report.fetch import filtered, once, store_fetch
from quietly_collector.insights.report.periods import Window
from quietly_collector.pipeline.collector import COLLECTOR
from quietly_collector.storage.store import StorageError
from quietly_schemas.segments import TENURE_VALUES, UNKNOWN

MAX_DAYS = 365
Body = Callable[[View], str]
PAGES: dict[str, tuple[str, str, Body]] = {
    "executive": ("Executive", "Active users, retention, satisfaction and deployments.",
                  executive.body),
    "product": ("Product", "Adoption, funnels, jobs to be done and satisfaction.",
                product.body),
    "engineering": ("Engineering", "Crash and error rates, performance grades.",
                    engineering.body),
}


def _params(request: web.Request) -> tuple[int, str, str]:
    days_text = request.query.get("days", "30")
    if not re.fullmatch(r"[0-9]{1,3}", days_text) or not 1 <= int(days_text) <= MAX_DAYS:
        raise web.HTTPBadRequest(reason=f"days: expected a whole number from 1 to {MAX_DAYS},"
                                        f" got {days_text[:20]!r}")
    app = request.query.get("app", "")
    if len(app) > 128:
        raise web.HTTPBadRequest(reason="app: at most 128 characters")
    where = request.query.get("where", "")
    if where:
        try:
            segments.check_where([where], request.app[COLLECTOR].settings.schema_dirs)
        except segments.SegmentError as exc:
            raise web.HTTPBadRequest(reason=str(exc)) from None
    return int(days_text), app, where


def _render(name: str, params: tuple[int, str, str], request: web.Request,
            who: Principal) -> str:
    days, app, where = params
    store = request.app[COLLECTOR].store
    until = datetime.now(UTC).date()
    # Every panel of the page over the selected segment's installs only.
    filters = segments.check_where([where] if where else [], store.settings.schema_dirs)
    fetch = targets.with_targets(once(filtered(store_fetch(store, who.scope), filters)),
                                 target_plan.of(request.app[COLLECTOR].settings))
    view = View(Window(until - timedelta(days=days - 1), until), app, fetch)
    title, subtitle, body = PAGES[name]
    # Alerts are evaluated over every project: a read key's session does not see them.
    firing = alerts.render(alerts.firing(store)) if who.scope is None else alerts.scoped(
        who.scope)
    content = firing + body(view)
    choices = [(n, (*sp.values, UNKNOWN)) for n, sp in
               segments.declared(tuple(store.settings.schema_dirs)).items()]
    choices.append(("tenure", TENURE_VALUES))
    return layout.page(name, title, f"{subtitle} {view.window.label()} (UTC days).", days,
                       app, content, where, choices)


def handler(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @access(Level.READ, browser=True)
    async def page(request: web.Request) -> web.StreamResponse:
        params = _params(request)
        try:
            with project_read(request):
                text = await asyncio.to_thread(_render, name, params, request,
                                               principal(request))
        except StorageError as exc:
            raise unavailable(f"storage unavailable: {exc}") from None
        return layout.html_response(text)

    return page
