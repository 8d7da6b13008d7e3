"""Where metric rows come from: the store itself, or a running collector over HTTP.

Both answer a :class:`~quietly_collector.metrics.Query` with row objects, the shape
``GET /v1/metrics/<name>`` returns, so the KPI code does not care which it has.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from quietly_collector.metrics import Query, as_objects, run
from quietly_collector.store import Store

Rows = list[dict[str, Any]]
Fetch = Callable[[Query], Rows]


class FetchError(RuntimeError):
    """The collector could not be reached or refused the request."""


def store_fetch(store: Store) -> Fetch:
    def fetch(q: Query) -> Rows:
        return as_objects(*run(store, q))

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
        req = urllib.request.Request(
            f"{base}/v1/metrics/{urllib.parse.quote(q.metric)}?"
            f"{urllib.parse.urlencode(params)}",
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                data: Rows = json.loads(resp.read())
                return data
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                reason = exc.reason
            raise FetchError(f"{q.metric}: {exc.code} {reason}") from None
        except urllib.error.URLError as exc:
            raise FetchError(
                f"cannot reach a collector at {base} ({exc.reason}). Start one with"
                " 'quietly serve', or use --direct when no collector holds the data directory."
            ) from None

    return fetch
