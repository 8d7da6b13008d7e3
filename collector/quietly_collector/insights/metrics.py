"""The metric catalogue: names, meanings, and how each is read from ClickHouse.

Every metric but ``funnel`` is a parameterized view (``metric_<name>``, defined once
in storage/sql/views.sql), so ``quietly query``, ``GET /v1/metrics/<name>`` and an
engineer's own SQL read the same definition: ``run`` executes the view's own SELECT as
ClickHouse stores it (``system.tables.as_select``, parameters and SETTINGS included)
rather than ``SELECT * FROM metric_<name>(...)``, which ClickHouse plans more slowly.
``funnel`` takes its steps at query time and runs ``windowFunnel`` over the raw events.
"""

from __future__ import annotations

import json
import math
import re
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from quietly_collector.storage.store import StorageError, Store


@dataclass(frozen=True)
class Metric:
    name: str
    meaning: str


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("dau", "daily active installs (any event that day)"),
    Metric("wau", "weekly active installs (the 7 days ending that day)"),
    Metric("mau", "monthly active installs (the 30 days ending that day)"),
    Metric("stickiness", "DAU / MAU per day"),
    Metric("sessions", "sessions per day, average duration, sessions per user, events per session"),
    Metric("feature_adoption", "share of active installs that used each feature, and how often"),
    Metric("feature_breadth", "installs using 3 or more distinct features"),
    Metric("activation", "new installs reaching the activation event in their first session"),
    Metric("retention", "monthly cohorts at months 1,2,3,6,12 and 30/90-day retention, churn"),
    Metric("crash_rate", "crashes per 1,000 sessions, crash-free sessions and users, errors"),
    Metric("performance", "p50/p95/p99 per operation and app version, graded by thresholds"),
    Metric("jobs", "per job: completion rate, time to complete, repeat use, satisfaction"),
    Metric("nps", "net promoter score per month (promoters 9-10 minus detractors 0-6)"),
    Metric("deployments", "successful production deployments per month (north star)"),
    Metric("funnel", "users reaching each of the given steps in order, within --window"),
    # The loss account (storage/sql/views.sql, metric_delivery).
    Metric("delivery", "per day and app: events SDKs dropped and the collector refused, by"
                       " reason, and events stored"),
)}

DEFAULT_DAYS = 30
# windowFunnel takes at most 32 conditions; a window past a year says nothing a
# product team reads, and bounds the number before it reaches the engine.
MAX_FUNNEL_STEPS = 32
MAX_WINDOW_S = 366 * 86_400
# Ten years of days at most: a wider range reads everything and says nothing more.
MAX_RANGE_DAYS = 3660
_STEP = re.compile(r"^([A-Za-z0-9_]{1,64})(?::([A-Za-z0-9_]{1,64})=(.{1,128}))?$")


class MetricError(ValueError):
    """A bad metric request (unknown name, bad date, bad step): HTTP 400."""


@dataclass(frozen=True)
class Query:
    metric: str
    since: date
    until: date
    app: str = ""
    steps: tuple[str, ...] = ()
    window_s: int = 86_400


def parse_query(
    metric: str,
    since: str | None = None,
    until: str | None = None,
    app: str | None = None,
    steps: Sequence[str] = (),
    window: str | None = None,
) -> Query:
    if metric not in METRICS:
        raise MetricError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    # Absent is the default; present but empty (?until=) is an error, not the default.
    end = _date(until, "until") if until is not None else datetime.now(UTC).date()
    start = _date(since, "since") if since is not None else end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise MetricError(f"since ({start}) is after until ({end})")
    if (end - start).days >= MAX_RANGE_DAYS:
        raise MetricError(f"since..until: at most {MAX_RANGE_DAYS} days, got"
                          f" {(end - start).days + 1}")
    for s in steps:
        # fullmatch: "$" alone would let a trailing newline through.
        if not _STEP.fullmatch(s):
            raise MetricError(f"bad step {s!r}: use 'event' or 'event:property=value'")
    if metric == "funnel" and len(steps) < 2:
        raise MetricError("funnel needs at least two steps, e.g. job_started job_completed")
    if len(steps) > MAX_FUNNEL_STEPS:
        raise MetricError(f"funnel takes at most {MAX_FUNNEL_STEPS} steps (windowFunnel's"
                          f" limit), got {len(steps)}")
    window_s = _window(window) if window is not None else 86_400
    return Query(metric, start, end, app or "", tuple(steps), window_s)


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _date(value: str, name: str) -> date:
    try:
        # YYYY-MM-DD only, as documented: fromisoformat alone also takes 20261101.
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise MetricError(f"{name}: expected a date like 2026-11-01, got {value!r}") from None


def _window(value: str) -> int:
    m = re.fullmatch(r"([0-9]{1,9})([smhd]?)", value.strip())
    if not m:
        raise MetricError(f"window: expected e.g. 3600, 30m, 2h or 7d, got {value[:40]!r}")
    seconds = int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}[m.group(2)]
    if not 1 <= seconds <= MAX_WINDOW_S:
        raise MetricError(f"window: from 1 second to 366 days, got {value[:40]!r}")
    return seconds


def run(
    store: Store, q: Query, scope: str | None = None
) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows, values made JSON-friendly (dates as ISO text, NaN as None).
    ``scope``: only this project's rows (a read key's), else every project's."""
    params: dict[str, Any] = {"since": q.since, "until": q.until, "app": q.app}
    settings = scope_settings(store, scope)
    if q.metric == "funnel":
        columns, rows = _funnel(store, q, params, settings)
    else:
        columns, rows = _view(store, f"metric_{q.metric}", params, settings)
    return columns, [[_plain(v) for v in r] for r in rows]


# Per store: (monotonic time read, tables of the database with a `project` column).
_project_tables: weakref.WeakKeyDictionary[Store, tuple[float, tuple[str, ...]]] = (
    weakref.WeakKeyDictionary()
)


def scope_settings(store: Store, project: str | None) -> dict[str, Any] | None:
    """Query settings that restrict every read of a table with a ``project`` column to one
    project (ClickHouse's ``additional_table_filters``): the views, joins and subqueries
    of a metric see that project's rows only, with no view written twice."""
    if project is None:
        return None
    hit = _project_tables.get(store)
    now = time.monotonic()
    if hit is None or now - hit[0] >= VIEW_SQL_TTL_S:
        _, rows = store.query(
            "SELECT DISTINCT table FROM system.columns WHERE database = currentDatabase()"
            " AND name = 'project'"
        )
        hit = (now, tuple(sorted(str(r[0]) for r in rows)))
        _project_tables[store] = hit
    literal = "'" + project.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return {"additional_table_filters": {t: f"project = {literal}" for t in hit[1]}}


# A view's SELECT is re-read this long after it was read, so a migration that replaces
# a view (another process, on a ClickHouse server) reaches a running collector.
VIEW_SQL_TTL_S = 60.0
# Per store: view name -> (monotonic time read, its SELECT).
_view_sql: weakref.WeakKeyDictionary[Store, dict[str, tuple[float, str]]] = (
    weakref.WeakKeyDictionary()
)


def _view(
    store: Store, name: str, params: dict[str, Any], settings: dict[str, Any] | None = None
) -> tuple[list[str], list[Sequence[Any]]]:
    sql = view_select(store, name)
    if sql is None:  # not a view here: let ClickHouse say what is wrong
        return store.query(
            f"SELECT * FROM {name}(since = {{since:Date}}, until = {{until:Date}},"
            " app = {app:String})",
            params, settings,
        )
    try:
        return store.query_named(sql, params, settings)
    except StorageError:
        # A SELECT read before a migration may name tables it dropped: read it again.
        fresh = view_select(store, name, refresh=True)
        if fresh is None or fresh == sql:
            raise
        return store.query_named(fresh, params, settings)


def view_select(store: Store, name: str, refresh: bool = False) -> str | None:
    """The stored SELECT of view ``name`` in the store's database, or None."""
    cache = _view_sql.setdefault(store, {})
    now = time.monotonic()
    hit = cache.get(name)
    if hit is not None and not refresh and now - hit[0] < VIEW_SQL_TTL_S:
        return hit[1]
    _, rows = store.query(
        "SELECT as_select FROM system.tables WHERE database = currentDatabase()"
        " AND name = {name:String} AND engine = 'View'",
        {"name": name},
    )
    sql = str(rows[0][0]) if rows and rows[0][0] else None
    if sql is None:
        cache.pop(name, None)
    else:
        cache[name] = (now, sql)
    return sql


def _funnel(
    store: Store, q: Query, params: dict[str, Any], settings: dict[str, Any] | None = None
) -> tuple[list[str], list[Sequence[Any]]]:
    conds = []
    for i, step in enumerate(q.steps):
        m = _STEP.match(step)
        assert m is not None
        event, prop, value = m.groups()
        params[f"e{i}"] = event
        cond = f"event = {{e{i}:String}}"
        if prop:
            params[f"p{i}"], params[f"v{i}"] = prop, value
            cond += f" AND JSONExtractString(props, {{p{i}:String}}) = {{v{i}:String}}"
        conds.append(cond)
    params["window"] = q.window_s
    params["events"] = sorted({p for k, p in params.items() if re.fullmatch(r"e\d+", k)})
    _, rows = store.query(
        "SELECT level, count() FROM (SELECT install_hash,"
        f" windowFunnel({{window:UInt64}})(toDateTime(ts), {', '.join(conds)}) AS level"
        " FROM events WHERE toDate(ts) BETWEEN {since:Date} AND {until:Date}"
        " AND ({app:String} = '' OR app = {app:String}) AND event IN {events:Array(String)}"
        " GROUP BY install_hash) WHERE level > 0 GROUP BY level",
        params, settings,
    )
    at_level = {int(r[0]): int(r[1]) for r in rows}
    out: list[Sequence[Any]] = []
    previous = None
    for i, step in enumerate(q.steps, start=1):
        users = sum(n for lvl, n in at_level.items() if lvl >= i)
        rate = None if previous is None else (round(users / previous, 4) if previous else None)
        out.append([i, step, users, rate])
        previous = users
    return ["position", "step", "users", "conversion_from_previous"], out


def _plain(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    return v


def cell(v: Any) -> Any:
    """A value for a CSV or table cell: maps as compact JSON."""
    if isinstance(v, dict):
        return json.dumps(v, separators=(",", ":"), sort_keys=True)
    return v


def as_objects(columns: list[str], rows: list[list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, r, strict=True)) for r in rows]
