"""The one authentication gate: every route declares who may call it, the gate checks.

A handler is declared with ``@access(Level.X)``; the ``gate`` middleware reads that
declaration from the matched route and refuses before the handler runs. A route that
declares nothing is refused (fail closed), so a new route cannot forget its check,
and ``tests/access/test_security.py`` asserts every registered route declares a level.

Who holds what (docs/security.md):
- a **write key** (public: it ships inside apps) sends events of its project;
- a **read key** reads its project's metrics, dashboard and reports;
- the **admin token** reads and administers everything.

Failures answer with aiohttp's HTTP errors (the ``errors`` middleware renders them
as JSON), are counted by reason, and are throttled per client address (authfail.py).
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from quietly_collector.access.appkeys import (
    AUTH_FAILURES,
    CREDENTIALS,
    PRINCIPAL,
    SETTINGS,
    Principal,
)
from quietly_collector.access.throttle import client_address

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Any])
ACCESS_ATTR = "__quietly_access__"


class Level(enum.Enum):
    PUBLIC = "public"  # health, the description, the login form
    WRITE = "write"  # a write key: sends events of its project
    READ = "read"  # a read key (its project only) or the admin token
    ADMIN = "admin"  # the admin token
    METRICS = "metrics"  # the admin token, or no one at all with metrics_public


class Credential(enum.Enum):
    BEARER = "bearer"  # Authorization: Bearer <key>
    BASIC_USER = "basic_user"  # Authorization: Basic, the key as user name (Segment)
    # Inside the request body (PostHog's api_key/token): the handler reads the body under
    # the admission rules of every route, then hands the key to ``authenticate_body``.
    BODY = "body"


@dataclass(frozen=True)
class Declared:
    level: Level
    credential: Credential = Credential.BEARER
    # A browser page: a dashboard session cookie counts, and a browser without
    # credentials is sent to the login form instead of getting a 401.
    browser: bool = False


def access(level: Level, credential: Credential = Credential.BEARER,
           browser: bool = False) -> Callable[[H], H]:
    """Declare who may call a handler."""
    def mark(handler: H) -> H:
        setattr(handler, ACCESS_ATTR, Declared(level, credential, browser))
        return handler
    return mark


def declared(handler: Any) -> Declared | None:
    value = getattr(handler, ACCESS_ATTR, None)
    return value if isinstance(value, Declared) else None


def bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def basic_user(request: web.Request) -> str | None:
    """Segment sends the write key as the Basic auth user name, with no password."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user or None


LOGIN_PATH = "/dashboard/login"


@web.middleware
async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    if route.resource is None:  # 404 and 405 answers: nothing to protect
        return await handler(request)
    decl = declared(route.handler)
    if decl is None:
        raise web.HTTPForbidden(reason="this route declares no access level; refused")
    if decl.credential is Credential.BODY:
        return await _body_keyed(request, handler)
    request[PRINCIPAL] = authenticate(request, decl)
    return await handler(request)


async def _body_keyed(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A route whose key is in its body. An address out of its failure budget is refused
    before anything is read; an answer that is not an error without the handler having
    passed the key through ``authenticate_body`` is refused (fail closed)."""
    wait = request.app[AUTH_FAILURES].blocked(client_address(request))
    if wait:
        request.app[AUTH_FAILURES].count("throttled", request.path)
        raise web.HTTPTooManyRequests(
            reason="too many failed authentication attempts from this address; retry after"
                   " Retry-After", headers={"Retry-After": str(wait)})
    response = await handler(request)
    if PRINCIPAL not in request and response.status < 400:
        raise web.HTTPForbidden(reason="the handler answered without checking the key; refused")
    return response


def authenticate_body(request: web.Request, key: str | None) -> Principal:
    """The caller of a ``Credential.BODY`` route, from the key its body holds: the same
    checks, counters and throttle as a key in a header (raised HTTP errors)."""
    decl = declared(request.match_info.route.handler)
    if decl is None or decl.credential is not Credential.BODY:
        raise web.HTTPForbidden(reason="this route does not take its key from the body")
    found = _check_key(request, decl, key.strip() if isinstance(key, str) else None)
    request[PRINCIPAL] = found
    return found


def authenticate(request: web.Request, decl: Declared) -> Principal:
    """The caller, or the HTTP error to answer (raised)."""
    level = decl.level
    if level is Level.PUBLIC or (level is Level.METRICS and request.app[SETTINGS].metrics_public
                                 and "Authorization" not in request.headers):
        return Principal("anonymous")
    failures = request.app[AUTH_FAILURES]
    address = client_address(request)
    if decl.browser:
        from quietly_collector.access.session import session_principal

        found = session_principal(request)
        if isinstance(found, Principal):
            return found
        if found == "expired_cookie":
            failures.count(found, request.path)
        elif found is not None:
            _guess(failures, address, "bad_cookie", request.path)  # a forged cookie
        if "Authorization" not in request.headers and "text/html" in request.headers.get(
                "Accept", ""):
            raise web.HTTPSeeOther(LOGIN_PATH)
    key = basic_user(request) if decl.credential is Credential.BASIC_USER else bearer(request)
    return _check_key(request, decl, key)


def _check_key(request: web.Request, decl: Declared, key: str | None) -> Principal:
    """The one key check, wherever the key came from."""
    level = decl.level
    failures = request.app[AUTH_FAILURES]
    address = client_address(request)
    if not key:
        failures.count("missing", request.path)
        raise _unauthorized(decl, _missing(decl))
    principal = principal_for(request.app[CREDENTIALS].keys, key)
    if principal is None:
        _guess(failures, address, "unknown_key", request.path)
        raise _unauthorized(decl, "unknown write key" if level is Level.WRITE
                            else "unknown key or token")
    if level is Level.WRITE and principal.kind != "write":
        # Only write keys are credentials here; a token of another kind is no write key.
        failures.count("forbidden", request.path)
        raise _unauthorized(decl, "unknown write key")
    refusal = _refusal(level, principal)
    if refusal:
        failures.count("forbidden", request.path)
        raise web.HTTPForbidden(reason=refusal)
    return principal


def _guess(failures: Any, address: str, reason: str, path: str) -> None:
    """A wrong credential: 429 once the address has used its budget of them, else
    counted against it (the caller answers 401). A right credential is never refused
    for its address: clients behind one NAT or proxy share it."""
    wait = failures.blocked(address)
    if wait:
        failures.count("throttled", path)
        raise web.HTTPTooManyRequests(
            reason="too many failed authentication attempts from this address; retry after"
                   " Retry-After", headers={"Retry-After": str(wait)})
    failures.failed(address, reason, path)


def principal_for(keys: Any, key: str) -> Principal | None:
    """Who a presented key or token is (every kind compared, in constant time)."""
    admin = keys.is_admin(key)
    write = keys.project_for(key)
    read = keys.project_for_read(key)
    if admin:
        return Principal("admin")
    if read is not None:
        return Principal("read", read)
    if write is not None:
        return Principal("write", write)
    return None


def _refusal(level: Level, p: Principal) -> str:
    if level is Level.WRITE:
        return ""  # kinds other than write were refused as unknown write keys
    if level is Level.READ:
        if p.kind in ("admin", "read"):
            return ""
        return "write keys can only send events; use a read key or the admin token"
    # ADMIN and METRICS
    if p.kind == "admin":
        return ""
    if p.kind == "read":
        return "read keys read their project's metrics and dashboard only; use the admin token"
    return "write keys can only send events; use the admin token"


def _missing(decl: Declared) -> str:
    if decl.credential is Credential.BASIC_USER:
        return "missing 'Authorization: Basic' with the write key as user name"
    if decl.credential is Credential.BODY:
        return "missing the project key: api_key or token in the body"
    what = {Level.WRITE: "write key", Level.READ: "read key or admin token"}.get(
        decl.level, "admin token")
    return f"missing 'Authorization: Bearer <{what}>'"


def _unauthorized(decl: Declared, reason: str) -> web.HTTPUnauthorized:
    scheme = "Basic" if decl.credential is Credential.BASIC_USER else "Bearer"
    return web.HTTPUnauthorized(reason=reason,
                                headers={"WWW-Authenticate": f'{scheme} realm="quietly"'})


def principal(request: web.Request) -> Principal:
    """The caller the gate let through."""
    return request[PRINCIPAL]


__all__ = ["Credential", "Level", "Principal", "access", "authenticate_body", "bearer", "gate",
           "principal"]
