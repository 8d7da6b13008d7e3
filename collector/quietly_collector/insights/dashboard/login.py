"""The login form (admin token or read key for a session cookie) and sign-out."""

from __future__ import annotations

import asyncio
import urllib.parse
from html import escape

from aiohttp import web

from quietly_collector.access import session
from quietly_collector.access.appkeys import AUTH_FAILURES, CREDENTIALS, SETTINGS
from quietly_collector.access.gate import LOGIN_PATH, Level, access, principal_for
from quietly_collector.access.throttle import client_address
from quietly_collector.insights.dashboard.layout import document, html_response
from quietly_collector.pipeline.body import BodyError, read_body

MAX_FORM_BYTES = 4096


def _form(message: str = "") -> str:
    error = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    return document("Sign in", (
        '<form class="login" method="post" action="/dashboard/login">'
        "<h1>Quietly dashboard</h1>"
        '<p class="sub">Enter the collector\'s admin token (<code>QUIETLY_ADMIN_TOKEN</code>,'
        " or the file <code>admin-token</code> in the data directory), or a project's read"
        " key to see that project only.</p>"
        f'{error}<label for="token">Admin token or read key</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password"'
        ' required autofocus><button type="submit">Sign in</button></form>'))


@access(Level.PUBLIC)
async def get_login(request: web.Request) -> web.StreamResponse:
    return html_response(_form())


@access(Level.PUBLIC)
async def post_login(request: web.Request) -> web.StreamResponse:
    failures = request.app[AUTH_FAILURES]
    address = client_address(request)
    try:
        # The form holds one token: a few KiB at most, read within the body deadline,
        # so open logins never hold more than that each.
        async with asyncio.timeout(request.app[SETTINGS].body_timeout_s):
            raw = await read_body(request, MAX_FORM_BYTES, MAX_FORM_BYTES)
        form = urllib.parse.parse_qs(bytes(raw).decode("utf-8"))
    except TimeoutError:
        return html_response(_form("The form did not arrive in time."), 408)
    except BodyError as exc:
        return html_response(_form(f"The form could not be read: {exc.reason}."), exc.status)
    except (ValueError, UnicodeDecodeError):
        return html_response(_form("The form could not be read."), 400)
    token = (form.get("token") or [""])[0].strip()
    if not token:
        return html_response(_form("Enter the admin token or a read key."), 401)
    who = principal_for(request.app[CREDENTIALS].keys, token)
    if who is None:
        wait = failures.blocked(address)
        if wait:
            failures.count("throttled", request.path)
            resp = html_response(_form("Too many failed attempts from this address; try"
                                       " again later."), 429)
            resp.headers["Retry-After"] = str(wait)
            return resp
        failures.failed(address, "unknown_key", request.path)
        return html_response(_form("Unknown admin token or read key."), 401)
    if who.kind == "write":
        failures.count("forbidden", request.path)
        # A write key is valid, but only for sending events.
        return html_response(_form("That is a write key; the dashboard needs the admin"
                                   " token or a read key."), 403)
    resp = _see_other("/dashboard")
    session.issue(request, who, token, resp)
    return resp


@access(Level.PUBLIC)
async def post_logout(request: web.Request) -> web.StreamResponse:
    resp = _see_other(LOGIN_PATH)
    session.clear(resp)
    return resp


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})
