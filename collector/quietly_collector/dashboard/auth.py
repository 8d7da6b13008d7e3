"""Who may see the dashboard: the admin token, as a header or as a session cookie.

A browser cannot send ``Authorization: Bearer``, so the login form exchanges the
admin token for a cookie. The cookie holds no token: only an expiry and
HMAC(key, expiry | SHA-256(admin token)), the key derived from the collector's
pseudonymization secret. So it is checked without server-side state, survives a
restart, and dies when the admin token is rotated (no admin digest matches it any
more) or when it expires. HttpOnly keeps it from scripts, SameSite=Strict from
other sites' requests (no cross-site request forgery), Path=/dashboard from the API.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from aiohttp import web

from quietly_collector.keys import COLLECTOR
from quietly_collector.views import require_admin

COOKIE = "quietly_dashboard"
SESSION_SECONDS = 12 * 3600
LOGIN_PATH = "/dashboard/login"


def _key(request: web.Request) -> bytes:
    secret = request.app[COLLECTOR].credentials.pseudonym_secret
    # Domain separation: the pseudonymization key itself never signs anything.
    return hmac.new(secret, b"quietly dashboard session v1", hashlib.sha256).digest()


def _mac(key: bytes, expires: int, admin_digest: bytes) -> str:
    return hmac.new(key, f"{expires}|".encode() + admin_digest, hashlib.sha256).hexdigest()


def _admin_digests(request: web.Request) -> frozenset[bytes]:
    return request.app[COLLECTOR].credentials.keys.snapshot()[1]


def issue(request: web.Request, token: str, response: web.StreamResponse) -> None:
    """Set the session cookie for an admin ``token`` (already checked by the caller)."""
    expires = int(time.time()) + SESSION_SECONDS
    digest = hashlib.sha256(token.encode("utf-8")).digest()
    value = f"{expires}.{_mac(_key(request), expires, digest)}"
    response.set_cookie(COOKIE, value, max_age=SESSION_SECONDS, path="/dashboard",
                        httponly=True, samesite="Strict", secure=request.secure)


def clear(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/dashboard")


def session_ok(request: web.Request) -> bool:
    value = request.cookies.get(COOKIE, "")
    expires_text, _, mac = value.partition(".")
    if not expires_text.isdigit() or len(mac) != 64 or int(expires_text) < time.time():
        return False
    key, expires = _key(request), int(expires_text)
    ok = False
    for digest in _admin_digests(request):
        # Every digest compared: the time taken does not tell which one matched.
        if hmac.compare_digest(_mac(key, expires, digest), mac):
            ok = True
    return ok


def check(request: web.Request) -> web.StreamResponse | None:
    """None when the request may see the dashboard, else the answer to give instead.

    A browser with no credentials is sent to the login form; anything else gets the
    API's answers (401 without or with an unknown token, 403 for a write key).
    """
    if session_ok(request):
        return None
    if "Authorization" not in request.headers and "text/html" in request.headers.get(
            "Accept", ""):
        raise web.HTTPSeeOther(LOGIN_PATH)
    return require_admin(request)
