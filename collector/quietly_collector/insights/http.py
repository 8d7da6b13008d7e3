"""HTTP routes of the insights: the metrics API and one alert evaluation on demand.

Who may call each is declared with ``@access``; errors are raised as aiohttp HTTP
errors, which the errors middleware turns into ``{"error": reason}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import io
from collections import Counter
from collections.abc import Iterator

from aiohttp import web

from quietly_collector.access.gate import Level, access, principal
from quietly_collector.insights import metrics
from quietly_collector.insights.alerts.scheduler import check
from quietly_collector.insights.report import target_plan, targets
from quietly_collector.pipeline.collector import COLLECTOR
from quietly_collector.storage.store import StorageError

# Metric queries and dashboard pages of one read key's project at once: a project's
# slow queries take at most this many of the store's readers (storage/store.py).
READS_PER_PROJECT = 1
READING = web.AppKey("reading", Counter)


@contextlib.contextmanager
def project_read(request: web.Request) -> Iterator[None]:
    """A slot for a read key's query; 429 while its project has one running. Admin
    reads are not counted."""
    scope = principal(request).scope
    if scope is None:
        yield
        return
    reading = request.app[READING]
    if reading[scope] >= READS_PER_PROJECT:
        raise web.HTTPTooManyRequests(
            reason=f"project {scope!r} has a metrics query running; retry when it is done",
            headers={"Retry-After": "1"})
    reading[scope] += 1
    try:
        yield
    finally:
        reading[scope] -= 1
        if not reading[scope]:
            del reading[scope]


def unavailable(message: str) -> web.HTTPServiceUnavailable:
    """A 503 whose reason is one line (storage errors span several)."""
    return web.HTTPServiceUnavailable(reason=" ".join(message.split())[:500])


@access(Level.READ)
async def get_metrics_list(request: web.Request) -> web.Response:
    return web.json_response([{"name": m.name, "meaning": m.meaning}
                              for m in (*metrics.METRICS.values(), targets.METRIC)])


@access(Level.READ)
async def get_metric(request: web.Request) -> web.Response:
    """GET /v1/metrics/<name>?since=&until=&app=&project=&step=&window=&by=&where=&format=
    plus period= (lifecycle, active_days), from=, to=, steps=, limit= (paths), name=,
    goal= (experiment); ``targets``: until, app, project and format."""
    qs = request.query
    fmt = qs.get("format", "json")
    if fmt not in ("json", "csv"):
        raise web.HTTPBadRequest(reason=f"format: expected json or csv, got {fmt[:20]!r}")
    name = request.match_info["name"]
    collector = request.app[COLLECTOR]
    try:
        if name == targets.METRIC.name:
            until, app = targets.parse(qs.get("until"), qs.get("app"), qs.get("since"),
                                       tuple(qs.getall("step", [])))
            read = functools.partial(targets.run, collector.store,
                                     target_plan.of(collector.settings), until, app)
        else:
            read = functools.partial(metrics.run, collector.store, metrics.parse_query(
                name, qs.get("since"), qs.get("until"), qs.get("app"),
                qs.getall("step", []), qs.get("window"), period=qs.get("period"),
                start=qs.get("from"), end=qs.get("to"), path_steps=qs.get("steps"),
                limit=qs.get("limit"), name=qs.get("name"), goal=qs.get("goal"),
                by=qs.getall("by", []), where=qs.getall("where", []),
                schema_dirs=collector.settings.schema_dirs))
    except metrics.MetricError as exc:
        if name in metrics.METRICS or name == targets.METRIC.name:
            raise web.HTTPBadRequest(reason=str(exc)) from None
        raise web.HTTPNotFound(reason=str(exc)) from None
    scope = principal(request).scope
    project = qs.get("project")
    if project is not None:
        if len(project) > 128:
            raise web.HTTPBadRequest(reason="project: at most 128 characters")
        if scope is not None and project != scope:
            raise web.HTTPForbidden(reason="a read key reads its own project only")
        scope = project
    try:
        with project_read(request):
            columns, rows = await asyncio.to_thread(read, scope)
    except StorageError as exc:
        raise unavailable(f"storage unavailable: {exc}") from None
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(columns)
        # A by-reason column (a Map, in delivery) as compact JSON, not Python's repr.
        w.writerows([[metrics.cell(v) for v in r] for r in rows])
        return web.Response(text=buf.getvalue(), content_type="text/csv")
    return web.json_response(metrics.as_objects(columns, rows))


@access(Level.ADMIN)
async def post_check(request: web.Request) -> web.Response:
    collector = request.app[COLLECTOR]
    try:
        results = await check(collector.store, collector.settings,
                              counters=collector.counters)
    except StorageError as exc:
        raise unavailable(f"alerts not evaluated: {exc}") from None
    return web.json_response({"alerts": [r.as_json() for r in results]})
