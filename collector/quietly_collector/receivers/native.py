"""``POST /v1/batch``: Quietly's own batch format, read as it is."""

from __future__ import annotations

from aiohttp import web

from quietly_collector.access.gate import Level, access
from quietly_collector.receivers.errors import error_body
from quietly_collector.receivers.intake import admit_and_ingest, native, sender


@access(Level.WRITE)
async def post_batch(request: web.Request) -> web.Response:
    project = sender(request, ("application/json",))
    outcome = await admit_and_ingest(request, project, native, error_body)
    if isinstance(outcome, web.Response):
        return outcome
    return web.json_response(outcome[0].as_json())
