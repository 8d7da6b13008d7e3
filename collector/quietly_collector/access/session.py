"""Dashboard sessions: the admin token or a read key, exchanged for a signed cookie.

A browser cannot send ``Authorization: Bearer``, so the login form exchanges the
admin token (every project) or a project's read key (that project) for a cookie.
The cookie holds no key: an expiry, for a read session the project, and
HMAC(key, expiry | [read | project |] SHA-256(token)), the key derived from the
collector's pseudonymization secret. So it is checked without server-side state,
survives a restart, and dies when its token is rotated (no digest matches it any
more) or when it expires. HttpOnly keeps it from scripts, SameSite=Strict from
other sites' requests (no cross-site request forgery), Path=/dashboard from the API.
The auth gate (auth.py) reads it for routes declared ``browser=True``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time

from aiohttp import web

from quietly_collector.access.appkeys import CREDENTIALS, Principal

COOKIE = "quietly_dashboard"
SESSION_SECONDS = 12 * 3600
# expiry.mac (admin) or expiry.mac.project (read, base64url): anything else is forged.
_VALUE = re.compile(r"([0-9]{1,12})\.([0-9a-f]{64})(?:\.([A-Za-z0-9_-]{1,200}))?")


def _key(request: web.Request) -> bytes:
    secret = request.app[CREDENTIALS].pseudonym_secret
    # Domain separation: the pseudonymization key itself never signs anything.
    return hmac.new(secret, b"quietly dashboard session v1", hashlib.sha256).digest()


def _mac(key: bytes, expires: int, digest: bytes, project: str | None) -> str:
    scope = b"" if project is None else b"read|" + project.encode() + b"|"
    return hmac.new(key, f"{expires}|".encode() + scope + digest, hashlib.sha256).hexdigest()


def issue(request: web.Request, who: Principal, token: str, response: web.StreamResponse
          ) -> None:
    """Set the session cookie for ``token`` (already checked by the caller as ``who``)."""
    expires = int(time.time()) + SESSION_SECONDS
    digest = hashlib.sha256(token.encode("utf-8")).digest()
    project = who.project if who.kind == "read" else None
    value = f"{expires}.{_mac(_key(request), expires, digest, project)}"
    if project is not None:
        value += "." + base64.urlsafe_b64encode(project.encode()).decode().rstrip("=")
    response.set_cookie(COOKIE, value, max_age=SESSION_SECONDS, path="/dashboard",
                        httponly=True, samesite="Strict", secure=request.secure)


def clear(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/dashboard")


def session_principal(request: web.Request) -> Principal | str | None:
    """Who the cookie names; ``"bad_cookie"`` or ``"expired_cookie"`` when it names no
    one; None without a cookie."""
    value = request.cookies.get(COOKIE)
    if value is None:
        return None
    m = _VALUE.fullmatch(value)
    if m is None:
        return "bad_cookie"
    expires, mac, encoded = int(m.group(1)), m.group(2), m.group(3)
    project: str | None = None
    if encoded is not None:
        try:
            project = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "bad_cookie"
    keys = request.app[CREDENTIALS].keys
    digests = (keys.snapshot()[1] if project is None
               else keys.read_snapshot().get(project, frozenset()))
    key = _key(request)
    ok = False
    for digest in digests:
        # Every digest compared: the time taken does not tell which one matched.
        if hmac.compare_digest(_mac(key, expires, digest, project), mac):
            ok = True
    if not ok:
        return "bad_cookie"
    if expires < time.time():
        return "expired_cookie"
    return Principal("admin") if project is None else Principal("read", project)
