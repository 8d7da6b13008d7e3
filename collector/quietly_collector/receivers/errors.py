"""Every error leaves as JSON with a reason; every response carries a request id."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from quietly_collector.access.appkeys import REQUEST_ID
from quietly_collector.access.logcontext import REQUEST_ID as LOG_REQUEST_ID

log = logging.getLogger("quietly.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorBody = Callable[[int, str], web.Response]
H = TypeVar("H", bound=Callable[..., Any])
_DIALECT_ATTR = "__quietly_error_body__"


def error_body(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def error_dialect(render: ErrorBody) -> Callable[[H], H]:
    """Errors of a route in its clients' own shape (Segment's ``code``/``message``,
    PostHog's ``detail``), refusals by the auth gate included: a client library logs
    the field it reads, so the reason reaches whoever reads its log."""
    def mark(handler: H) -> H:
        setattr(handler, _DIALECT_ATTR, render)
        return handler
    return mark


def _render_for(request: web.Request) -> ErrorBody:
    route = request.match_info.route
    handler = route.handler if route.resource is not None else None
    render = getattr(handler, _DIALECT_ATTR, None)
    return render if callable(render) else error_body


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id", "")[:64] or secrets.token_hex(8)
    request[REQUEST_ID] = request_id
    logged_as = LOG_REQUEST_ID.set(request_id)  # every log line of this request carries it
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _render_for(request)(exc.status, exc.reason)
        for name in ("Allow", "Retry-After", "WWW-Authenticate"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
    except (ConnectionResetError, aiohttp.ClientPayloadError) as exc:
        # The client went away mid-request: nothing an operator can act on, no answer
        # anyone reads. One line at debug level, not a traceback.
        log.debug("client disconnected during %s %s (request %s): %s", request.method,
                  request.path, request_id, exc)
        response = error_body(400, "client disconnected")
        response.force_close()
    except Exception:
        log.exception("unhandled error on %s %s (request %s)", request.method, request.path,
                      request_id)
        response = error_body(500, "internal error; see the collector log")
    finally:
        LOG_REQUEST_ID.reset(logged_as)
    response.headers["X-Request-Id"] = request_id
    return response
