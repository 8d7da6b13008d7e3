"""``POST /v1/admin/alerts/check``: one evaluation in the running collector (what
``quietly alerts check`` asks when the embedded store belongs to it)."""

from __future__ import annotations

from aiohttp import web

from quietly_collector.access.appkeys import COLLECTOR
from quietly_collector.access.gate import Level, access
from quietly_collector.insights.alerts.scheduler import check
from quietly_collector.receivers.errors import error_body
from quietly_collector.storage.store import StorageError


@access(Level.ADMIN)
async def post_check(request: web.Request) -> web.Response:
    collector = request.app[COLLECTOR]
    try:
        results = await check(collector.store, collector.settings,
                              counters=collector.counters)
    except StorageError as exc:
        return error_body(503, f"alerts not evaluated: {str(exc)[:500]}")
    return web.json_response({"alerts": [r.as_json() for r in results]})
