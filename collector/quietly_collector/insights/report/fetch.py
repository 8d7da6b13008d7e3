"""Where metric rows come from: the store itself, or a running collector over HTTP.

Both answer a :class:`~quietly_collector.insights.metrics.Query` with row objects, the shape
``GET /v1/metrics/<name>`` returns, so the KPI code does not care which it has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from quietly_collector.insights.metrics import Query, as_objects, run
from quietly_collector.storage.store import Store

Rows = list[dict[str, Any]]
Fetch = Callable[[Query], Rows]


class FetchError(RuntimeError):
    """The collector could not be reached or refused the request."""


def once(fetch: Fetch) -> Fetch:
    """``fetch``, asking each query once: a page or a report reads some twice (its cards
    and its targets over the same 30 days). For one rendering: rows are not re-read."""
    seen: dict[Query, Rows] = {}

    def cached(q: Query) -> Rows:
        if q not in seen:
            seen[q] = fetch(q)
        return seen[q]

    return cached


def filtered(fetch: Fetch, where: tuple[tuple[str, str], ...]) -> Fetch:
    """``fetch`` with every query restricted to these segment values (checked ones)."""
    if not where:
        return fetch

    def narrowed(q: Query) -> Rows:
        return fetch(replace(q, where=where))

    return narrowed


def store_fetch(store: Store, scope: str | None = None) -> Fetch:
    """Rows from the store; ``scope``: one project's only (a read key's)."""
    def fetch(q: Query) -> Rows:
        return as_objects(*run(store, q, scope))

    return fetch
