"""Calls from the CLI to a running collector's admin endpoints.

With the embedded store only the collector may open the data directory, so
``quietly query``, ``sql``, ``gc``, ``alerts check`` and ``report`` ask it over
HTTP with the admin token. One place for the request, the errors and their wording.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from quietly_collector.insights.metrics import Query
from quietly_collector.insights.report.fetch import Fetch, FetchError, Rows
from quietly_collector.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8080"


class AdminCallError(Exception):
    """The collector refused (``status``: its HTTP status) or could not be reached
    (``status`` None); ``str()`` says why."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


def add_read_key(p: argparse.ArgumentParser) -> None:
    p.add_argument("--read-key", help="a project's read key instead of the admin token: that"
                   " project's rows only (or QUIETLY_READ_KEY)")


def token_of(args: argparse.Namespace, settings: Settings) -> str | None:
    """What the CLI presents: a read key when given, else the admin token."""
    from quietly_collector.access.credentials import read_admin_token

    read_key: str | None = getattr(args, "read_key", None) or os.environ.get("QUIETLY_READ_KEY")
    return read_key or read_admin_token(settings)


def collector_url(args: argparse.Namespace) -> str:
    url: str = getattr(args, "url", None) or os.environ.get("QUIETLY_URL") or DEFAULT_URL
    return url.rstrip("/")


def request_json(url: str, path: str, token: str, *, data: bytes | None = None,
                 method: str | None = None, timeout: float = 120.0,
                 content_type: str | None = None) -> Any:
    """The decoded JSON answer of ``url + path``; AdminCallError on any failure."""
    return json.loads(request_bytes(url, path, token, data=data, method=method,
                                    timeout=timeout, content_type=content_type))


def request_bytes(url: str, path: str, token: str, *, data: bytes | None = None,
                  method: str | None = None, timeout: float = 120.0,
                  content_type: str | None = None) -> bytes:
    """The body of the answer of ``url + path``; AdminCallError on any failure."""
    headers = {"Authorization": f"Bearer {token}"}
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            reason = exc.reason
        raise AdminCallError(str(reason), exc.code) from None
    except urllib.error.URLError as exc:
        raise AdminCallError(
            f"cannot reach a collector at {url} ({exc.reason}). Start one with"
            " 'quietly serve', or use --direct when no collector holds the data directory."
        ) from None


def call(args: argparse.Namespace, settings: Settings, path: str, *, raw: bool = False,
         **kwargs: Any) -> Any:
    """``request_json`` (``request_bytes`` if ``raw``) for a CLI command: prints the
    reason and returns an exit status (2 without an admin token, 1 on failure) instead
    of raising."""
    token = token_of(args, settings)
    if not token:
        print("quietly: no admin token: set QUIETLY_ADMIN_TOKEN or --admin-token", file=sys.stderr)
        return 2
    try:
        fetch = request_bytes if raw else request_json
        return fetch(collector_url(args), path, token, **kwargs)
    except AdminCallError as exc:
        print(f"quietly: {exc}", file=sys.stderr)
        return 1


def extra_params(q: Query) -> list[tuple[str, str]]:
    """The HTTP parameters of a metric's own options (period, paths, experiment)."""
    out = []
    if q.metric in ("lifecycle", "active_days"):
        out.append(("period", q.period))
    if q.metric == "paths":
        out += [("from", q.start), ("to", q.end), ("steps", str(q.path_steps)),
                ("limit", str(q.limit))]
    if q.metric == "experiment":
        out += [("name", q.name), ("goal", q.goal)]
    return out


def http_fetch(url: str, token: str, timeout: float = 120.0) -> Fetch:
    base = url.rstrip("/")

    def fetch(q: Query) -> Rows:
        params: list[tuple[str, str]] = [("until", q.until.isoformat())]
        if q.metric != "targets":  # each target has its own period ending until
            params.insert(0, ("since", q.since.isoformat()))
        if q.app:
            params.append(("app", q.app))
        if q.metric in ("funnel", "experiment"):
            params.append(("window", str(q.window_s)))
            params += [("step", s) for s in q.steps]
        params += [(k, v) for k, v in extra_params(q) if v]
        params += [("by", b) for b in q.by]
        params += [("where", f"{s}:{v}") for s, v in q.where]
        try:
            data: Rows = request_json(
                base, f"/v1/metrics/{urllib.parse.quote(q.metric)}?"
                f"{urllib.parse.urlencode(params)}", token, timeout=timeout)
        except AdminCallError as exc:
            status = f"{exc.status} " if exc.status else ""
            raise FetchError(f"{q.metric}: {status}{exc}") from None
        return data

    return fetch
