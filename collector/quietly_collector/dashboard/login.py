"""The login form (admin token for a session cookie) and sign-out."""

from __future__ import annotations

from html import escape

from aiohttp import web

from quietly_collector.dashboard import auth
from quietly_collector.dashboard.layout import document, html_response
from quietly_collector.keys import COLLECTOR


def _form(message: str = "") -> str:
    error = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    return document("Sign in", (
        '<form class="login" method="post" action="/dashboard/login">'
        "<h1>Quietly dashboard</h1>"
        '<p class="sub">Enter the collector\'s admin token (<code>QUIETLY_ADMIN_TOKEN</code>,'
        " or the file <code>admin-token</code> in the data directory).</p>"
        f'{error}<label for="token">Admin token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password"'
        ' required autofocus><button type="submit">Sign in</button></form>'))


async def get_login(request: web.Request) -> web.StreamResponse:
    return html_response(_form())


async def post_login(request: web.Request) -> web.StreamResponse:
    try:
        form = await request.post()
    except (ValueError, UnicodeDecodeError):
        return html_response(_form("The form could not be read."), 400)
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    keys = request.app[COLLECTOR].credentials.keys
    if not token:
        return html_response(_form("Enter the admin token."), 401)
    if not keys.is_admin(token):
        if keys.project_for(token) is not None:
            # A write key is valid, but only for sending events.
            return html_response(_form("That is a write key; the dashboard needs the admin"
                                       " token."), 403)
        return html_response(_form("Unknown admin token."), 401)
    resp = _see_other("/dashboard")
    auth.issue(request, token, resp)
    return resp


async def post_logout(request: web.Request) -> web.StreamResponse:
    resp = _see_other(auth.LOGIN_PATH)
    auth.clear(resp)
    return resp


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})
