"""Admin actions beyond reading (admin token only; each writes one audit row)."""

from __future__ import annotations

from aiohttp import web

from quietly_collector.access.appkeys import COLLECTOR, REQUEST_ID
from quietly_collector.access.gate import Level, access
from quietly_collector.receivers.errors import error_body
from quietly_collector.storage.maintenance import maintain
from quietly_collector.storage.store import StorageError


@access(Level.ADMIN)
async def post_gc(request: web.Request) -> web.Response:
    """Run one maintenance cycle now (what ``quietly gc`` asks a running collector)."""
    try:
        report = await maintain(request.app[COLLECTOR], "admin", request[REQUEST_ID])
    except StorageError as exc:
        return error_body(503, f"maintenance failed: {str(exc)[:500]}")
    return web.json_response(report.as_json())
