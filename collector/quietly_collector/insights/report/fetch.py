"""Where metric rows come from: the store itself, or a running collector over HTTP.

Both answer a :class:`~quietly_collector.insights.metrics.Query` with row objects, the shape
``GET /v1/metrics/<name>`` returns, so the KPI code does not care which it has.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from quietly_collector.commands.client import AdminCallError, request_json
from quietly_collector.insights.metrics import Query, as_objects, run
from quietly_collector.storage.store import Store

Rows = list[dict[str, Any]]
Fetch = Callable[[Query], Rows]


class FetchError(RuntimeError):
    """The collector could not be reached or refused the request."""


def store_fetch(store: Store, scope: str | None = None) -> Fetch:
    """Rows from the store; ``scope``: one project's only (a read key's)."""
    def fetch(q: Query) -> Rows:
        return as_objects(*run(store, q, scope))

    return fetch


def http_fetch(url: str, token: str, timeout: float = 120.0) -> Fetch:
    base = url.rstrip("/")

    def fetch(q: Query) -> Rows:
        params: list[tuple[str, str]] = [("since", q.since.isoformat()),
                                         ("until", q.until.isoformat())]
        if q.app:
            params.append(("app", q.app))
        if q.metric == "funnel":
            params.append(("window", str(q.window_s)))
            params += [("step", s) for s in q.steps]
        try:
            data: Rows = request_json(
                base, f"/v1/metrics/{urllib.parse.quote(q.metric)}?"
                f"{urllib.parse.urlencode(params)}", token, timeout=timeout)
        except AdminCallError as exc:
            status = f"{exc.status} " if exc.status else ""
            raise FetchError(f"{q.metric}: {status}{exc}") from None
        return data

    return fetch
