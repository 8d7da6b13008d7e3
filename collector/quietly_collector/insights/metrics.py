"""The metric catalogue: names, meanings, and how each is read from ClickHouse.

Every metric but ``funnel`` is a parameterized view (``metric_<name>``, defined once
in storage/sql/views.sql), so ``quietly query``, ``GET /v1/metrics/<name>`` and an
engineer's own SQL read the same definition: ``run`` executes the view's own SELECT as
ClickHouse stores it (``system.tables.as_select``, parameters and SETTINGS included)
rather than ``SELECT * FROM metric_<name>(...)``, which ClickHouse plans more slowly.
``funnel`` takes its steps at query time and runs ``windowFunnel`` over the raw events;
``paths`` and ``experiment`` (paths.py, experiments.py) likewise take their start, name
and goal at query time. ``lifecycle`` and ``active_days`` are views with a fourth
parameter, ``period``.
"""

from __future__ import annotations

import json
import math
import re
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from quietly_collector.insights import params as checks
from quietly_collector.insights import segments
from quietly_collector.insights.experiments import experiment as _experiment
from quietly_collector.insights.paths import paths as _paths
from quietly_collector.insights.suppress import suppress
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
    Metric("lifecycle", "new, returning, resurrecting and dormant installs per --period"),
    Metric("active_days", "installs by days active per --period (1-7 a week, 1-31 a month)"),
    Metric("paths", "most common step sequences in sessions --from or --to a step"),
    Metric("experiment", "an experiment's variants: --name, --goal conversion, lift, p, SRM"),
    Metric("experiments", "running experiments: installs first exposed in the period"),
    Metric("builds", "builds per day: success rate and p95 duration"),
    # The loss account (storage/sql/views.sql, metric_delivery).
    Metric("delivery", "per day and app: events SDKs dropped and the collector refused, by"
                       " reason, and events stored"),
)}
# Metrics that are not views: built in Python from the query's own parameters.
NOT_VIEWS = ("funnel", "paths", "experiment")
# Views with a `period` parameter besides since, until and app.
PERIOD_VIEWS = ("lifecycle", "active_days")
# Built from raw events per session or variant, or counting the pipeline's events
# (delivery): no segment breakdown or filter.
UNSEGMENTED = ("paths", "experiment", "delivery")
_PARAM_TYPES = {"since": "Date", "until": "Date", "by": "Array(String)",
                "where": "Array(String)"}

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
    period: str = "week"
    start: str = ""  # paths --from
    end: str = ""  # paths --to
    path_steps: int = checks.DEFAULT_PATH_STEPS
    limit: int = checks.DEFAULT_PATH_LIMIT
    name: str = ""  # experiment
    goal: str = ""
    by: tuple[str, ...] = ()  # segments (insights/segments.py)
    where: tuple[tuple[str, str], ...] = ()


def parse_query(
    metric: str,
    since: str | None = None,
    until: str | None = None,
    app: str | None = None,
    steps: Sequence[str] = (),
    window: str | None = None,
    *,
    period: str | None = None,
    start: str | None = None,
    end: str | None = None,
    path_steps: str | None = None,
    limit: str | None = None,
    name: str | None = None,
    goal: str | None = None,
    by: Sequence[str] = (),
    where: Sequence[str] = (),
    schema_dirs: Sequence[str] = (),
) -> Query:
    if metric not in METRICS:
        raise MetricError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    # Absent is the default; present but empty (?until=) is an error, not the default.
    last = _date(until, "until") if until is not None else datetime.now(UTC).date()
    first = _date(since, "since") if since is not None else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise MetricError(f"since ({first}) is after until ({last})")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise MetricError(f"since..until: at most {MAX_RANGE_DAYS} days, got"
                          f" {(last - first).days + 1}")
    for s in steps:
        # fullmatch: "$" alone would let a trailing newline through.
        if not _STEP.fullmatch(s):
            raise MetricError(f"bad step {s!r}: use 'event' or 'event:property=value'")
    if metric == "funnel" and len(steps) < 2:
        raise MetricError("funnel needs at least two steps, e.g. job_started job_completed")
    if len(steps) > MAX_FUNNEL_STEPS:
        raise MetricError(f"funnel takes at most {MAX_FUNNEL_STEPS} steps (windowFunnel's"
                          f" limit), got {len(steps)}")
    default_window = checks.DEFAULT_EXPERIMENT_WINDOW_S if metric == "experiment" else 86_400
    window_s = _window(window) if window is not None else default_window
    try:
        by_ = segments.check_by(by, schema_dirs)
        where_ = segments.check_where(where, schema_dirs)
    except segments.SegmentError as exc:
        raise MetricError(str(exc)) from None
    if (by_ or where_) and metric in UNSEGMENTED:
        raise MetricError(f"{metric} takes no by or where: segments cut metrics of installs,"
                          f" and {metric} is counted per session, variant or pipeline event")
    try:
        extra = Query(
            metric, first, last, app or "", tuple(steps), window_s, checks.period(period),
            checks.path_step(start, "from"), checks.path_step(end, "to"),
            checks.bounded(path_steps, "steps", checks.DEFAULT_PATH_STEPS,
                           checks.MAX_PATH_STEPS),
            checks.bounded(limit, "limit", checks.DEFAULT_PATH_LIMIT, checks.MAX_PATH_LIMIT),
            checks.experiment_name(name), checks.goal(goal), by_, where_,
        )
    except ValueError as exc:
        raise MetricError(str(exc)) from None
    if metric == "paths" and bool(extra.start) == bool(extra.end):
        raise MetricError("paths needs one of from or to, e.g. --from session_start")
    if metric == "experiment" and not (extra.name and extra.goal):
        raise MetricError("experiment needs a name and a goal, e.g. --name onboarding_tour"
                          " --goal job_completed")
    return extra


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
    store: Store, q: Query, scope: str | None = None, min_cell_installs: int | None = None
) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows, values made JSON-friendly (dates as ISO text, NaN as None).
    ``scope``: only this project's rows (a read key's), else every project's. Rows
    counting fewer than ``min_cell_installs`` installs (default: the setting) are
    suppressed (insights/suppress.py)."""
    k = store.settings.min_cell_installs if min_cell_installs is None else min_cell_installs
    columns, rows = _answer(store, q, scope)
    if k <= 0:
        return columns, rows
    # A filtered answer is checked against the unfiltered one: their difference
    # must not single anyone out.
    whole = _answer(store, replace(q, where=()), scope)[1] if q.where else None
    return suppress(q.metric, columns, rows, k, q.by, whole)


def _answer(store: Store, q: Query, scope: str | None) -> tuple[list[str], list[list[Any]]]:
    params: dict[str, Any] = {"since": q.since, "until": q.until, "app": q.app,
                              **segments.view_params(q.by, q.where)}
    settings = scope_settings(store, scope)
    if q.metric == "funnel":
        cols, raw = _funnel(store, q, params, settings)
    elif q.metric == "paths":
        cols, raw = _paths(store, params, q.start, q.end, q.path_steps, q.limit, settings)
    elif q.metric == "experiment":
        cols, raw = _experiment(store, params, q.name, q.goal, q.window_s, settings)
    else:
        if q.metric in PERIOD_VIEWS:
            params["period"] = q.period
        # The plain view has no join to the segments, most calls; the _by_segment one
        # joins one segment's rows (storage/views.py).
        name = f"metric_{q.metric}{_view_suffix(q)}"
        if not (q.by or q.where):
            del params["by"], params["where"]
        elif _one_segment(q):
            del params["where"]
        cols, raw = _view(store, name, params, settings)
    columns, rows = segments.name_columns(cols, [[_plain(v) for v in r] for r in raw], q.by)
    if q.metric == "retention" and q.by:
        rows = segments.pool_cohorts(columns, rows, q.by)
    return columns, rows


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
        args = ", ".join(f"{k} = {{{k}:{_PARAM_TYPES.get(k, 'String')}}}" for k in params)
        return store.query(f"SELECT * FROM {name}({args})", params, settings)
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


def _one_segment(q: Query) -> bool:
    """One ``by`` other than tenure and no ``where``: metric_install_segment answers."""
    return len(q.by) == 1 and not q.where and q.by[0] != "tenure"


def _view_suffix(q: Query) -> str:
    if _one_segment(q):
        return "_by_segment"
    return "_by" if q.by or q.where else ""


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
    # The join to the segments only with a breakdown or filter: it costs even empty.
    segs = ("metric_install_segment(by = {by:Array(String)})" if _one_segment(q) else
            "metric_install_segments(until = {until:Date}, by = {by:Array(String)},"
            " where = {where:Array(String)})")
    join = (f" ANY LEFT JOIN {segs} AS g"
            " ON g.project = t.f_project AND g.app = t.f_app"
            " AND g.install_hash = t.install_hash"
            " WHERE level > 0 AND (empty({where:Array(String)}) OR g.matched = 1)"
            " GROUP BY level, if(g.matched = 1, g.seg1, 'unknown') AS seg1, g.seg2 AS seg2"
            if q.by or q.where else " WHERE level > 0 GROUP BY level, '' AS seg1, '' AS seg2")
    _, rows = store.query(
        "SELECT level, seg1, seg2, count() FROM (SELECT install_hash, any(project) AS f_project,"
        " any(app) AS f_app,"
        f" windowFunnel({{window:UInt64}})(toDateTime(ts), {', '.join(conds)}) AS level"
        " FROM events WHERE toDate(ts) BETWEEN {since:Date} AND {until:Date}"
        " AND ({app:String} = '' OR app = {app:String}) AND event IN {events:Array(String)}"
        f" GROUP BY install_hash) AS t{join} ORDER BY seg1, seg2",
        params, settings,
    )
    cells: dict[tuple[str, str], dict[int, int]] = {}
    for level, s1, s2, n in rows:
        cells.setdefault((s1, s2), {})[int(level)] = int(n)
    out: list[Sequence[Any]] = []
    groups = sorted(cells.items()) if q.by else [(("", ""), cells.get(("", ""), {}))]
    for (s1, s2), at_level in groups:
        previous = None
        for i, step in enumerate(q.steps, start=1):
            users = sum(n for lvl, n in at_level.items() if lvl >= i)
            rate: float | None = None
            if previous:
                rate = round(users / previous, 4)
            out.append([i, step, s1, s2, users, rate])
            previous = users
    return ["position", "step", "seg1", "seg2", "users", "conversion_from_previous"], out


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
