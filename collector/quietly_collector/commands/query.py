"""``quietly query <metric>``: a metric as a table, JSON or CSV.

With the embedded store the data directory belongs to the running collector, so
the command asks it over HTTP (``GET /v1/metrics/<name>``, admin token). With
``--direct`` (no collector running, or a ClickHouse server) it reads the views
itself.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from quietly_collector.commands.client import add_read_key
from quietly_collector.insights.metrics import (
    METRICS,
    MetricError,
    Query,
    as_objects,
    cell,
    parse_query,
    run,
)
from quietly_collector.insights.report import target_plan, targets
from quietly_collector.settings import Settings


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "query", help="print a product metric (quietly query --list names them)",
        description="Print a product metric. Dates are UTC days, inclusive; the default"
        " is the last 30 days. With the embedded store this asks the running collector.",
    )
    p.add_argument("metric", nargs="?", help="metric name, e.g. dau (see --list)")
    p.add_argument("steps", nargs="*", help="funnel steps: event or event:property=value")
    p.add_argument("--list", action="store_true", help="name every metric with its meaning")
    p.add_argument("--since", help="first day, YYYY-MM-DD (default: 29 days before --until)")
    p.add_argument("--until", help="last day, YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--app", help="only this app (default: every app, one row per app)")
    p.add_argument("--project", help="only this project's rows (default: every project;"
                   " a read key reads its own)")
    p.add_argument("--window", help="funnel or experiment window: seconds, or 30m, 2h, 7d"
                   " (default 1d; 7d for an experiment)")
    p.add_argument("--period", choices=("week", "month"),
                   help="lifecycle, active_days: ISO weeks or calendar months (default week)")
    p.add_argument("--from", dest="start", metavar="STEP",
                   help="paths after this step: an event, or feature_used:<feature>,"
                   " screen_viewed:<screen>")
    p.add_argument("--to", dest="end", metavar="STEP", help="paths before this step")
    p.add_argument("--steps", dest="path_steps", metavar="N",
                   help="paths: steps in a path, 1-5 (default 3)")
    p.add_argument("--limit", metavar="K", help="paths: the K most common (default 10, at"
                   " most 100)")
    p.add_argument("--name", help="experiment: its name")
    p.add_argument("--goal", metavar="EVENT", help="experiment: the goal event")
    p.add_argument("--by", action="append", default=[], metavar="SEGMENT",
                   help="break down by a segment (at most twice): channel, plan, team,"
                        " platform, app_version, tenure, or one of your own")
    p.add_argument("--where", action="append", default=[], metavar="SEGMENT=VALUE",
                   help="only installs with this segment value (repeatable; values of one"
                        " segment are alternatives, different segments must all match)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--url", help="collector URL (or QUIETLY_URL; default http://127.0.0.1:8080)")
    p.add_argument("--direct", action="store_true",
                   help="read ClickHouse directly (a ClickHouse server, or no collector running)")
    add_read_key(p)
    return p


def run_query(args: argparse.Namespace, settings: Settings) -> int:
    if args.list or not args.metric:
        listed = [*METRICS.values(), targets.METRIC]
        width = max(len(m.name) for m in listed)
        for m in listed:
            print(f"{m.name:<{width}}  {m.meaning}")
        if args.list:
            _running_experiments(args, settings)
        return 0 if args.list else 2
    if args.metric == targets.METRIC.name:
        return _targets(args, settings)
    try:
        q = parse_query(args.metric, args.since, args.until, args.app, args.steps, args.window,
                        **_options(args), by=args.by, where=args.where,
                        schema_dirs=settings.schema_dirs)
    except MetricError as exc:
        print(f"quietly: {exc}", file=sys.stderr)
        return 2
    got = _fetch(args, settings, q)
    if isinstance(got, int):
        return got
    _print(got[1], got[0], args.format)
    return 0


def _running_experiments(args: argparse.Namespace, settings: Settings) -> None:
    """After the list: the experiments with installs first exposed in the last 30 days
    (the `experiments` metric), so a reader sees what `experiment --name` can take."""
    args.metric, args.steps, args.format = "experiments", [], "json"
    with contextlib.redirect_stderr(io.StringIO()) as err:
        got = _fetch(args, settings, parse_query("experiments", args.since, args.until,
                                                 args.app))
    if isinstance(got, int):
        reason = err.getvalue().strip().splitlines()
        print("\nrunning experiments: not read (" + (reason[-1] if reason else "no store")
              + ")", file=sys.stderr)
        return
    print("\nrunning experiments (first exposures in the last 30 days):")
    for o in got[1] or [{"experiment": "(none)", "app": "", "variants": "",
                         "exposed_users": 0}]:
        print(f"  {o['experiment']}  {o['app']}  variants: {o['variants']}"
              f"  exposed: {o['exposed_users']}")


def _fetch(
    args: argparse.Namespace, settings: Settings, q: Query
) -> tuple[list[str], list[dict[str, Any]]] | int:
    if args.direct or not settings.embedded:
        from quietly_collector.storage.store import Store

        store = Store(settings)
        try:
            store.connect()
            columns, rows = run(store, q, args.project or None)
        except Exception as exc:
            print(f"quietly: {exc}", file=sys.stderr)
            return 1
        finally:
            store.close()
        return columns, as_objects(columns, rows)
    return _over_http(args, settings, q.since.isoformat(), q.until.isoformat())


def _options(args: argparse.Namespace) -> dict[str, str | None]:
    return {k: getattr(args, k, None) for k in (
        "period", "start", "end", "path_steps", "limit", "name", "goal")}


def _http_options(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    o = _options(args)
    return [("period", o["period"]), ("from", o["start"]), ("to", o["end"]),
            ("steps", o["path_steps"]), ("limit", o["limit"]), ("name", o["name"]),
            ("goal", o["goal"])]


def _targets(args: argparse.Namespace, settings: Settings) -> int:
    """The targets of the collector's configuration: its own over HTTP; with --direct,
    those of the configuration this command was given."""
    try:
        until, app = targets.parse(args.until, args.app, args.since, tuple(args.steps))
    except MetricError as exc:
        print(f"quietly: {exc}", file=sys.stderr)
        return 2
    if args.direct or not settings.embedded:
        from quietly_collector.storage.store import Store

        store = Store(settings)
        try:
            store.connect()
            columns, rows = targets.run(store, target_plan.of(settings), until, app,
                                        args.project or None)
        except Exception as exc:
            print(f"quietly: {exc}", file=sys.stderr)
            return 1
        finally:
            store.close()
        objects = as_objects(columns, rows)
    else:
        got = _over_http(args, settings, None, until.isoformat())
        if isinstance(got, int):
            return got
        columns, objects = got
    _print(objects, columns, args.format)
    return 0


def _over_http(
    args: argparse.Namespace, settings: Settings, since: str | None, until: str
) -> tuple[list[str], list[dict[str, Any]]] | int:
    """Columns and row objects from the running collector. Tables and CSV are read as
    its CSV, whose header names the columns even when no row matched."""
    from quietly_collector.commands import client as admin_client

    params: list[tuple[str, str]] = [("until", until)]
    if since is not None:  # targets take none: each KPI has its own period
        params.insert(0, ("since", since))
    if args.app:
        params.append(("app", args.app))
    if args.project:
        params.append(("project", args.project))
    if args.window:
        params.append(("window", args.window))
    params += [("step", s) for s in args.steps]
    params += [(k, v) for k, v in _http_options(args) if v is not None]
    params += [("by", s) for s in args.by]
    params += [("where", w.replace("=", ":", 1)) for w in args.where]
    if args.format != "json":
        params.append(("format", "csv"))
    path = f"/v1/metrics/{urllib.parse.quote(args.metric)}?{urllib.parse.urlencode(params)}"
    if args.format == "json":
        objects: list[dict[str, Any]] | int = admin_client.call(args, settings, path)
        if isinstance(objects, int):
            return objects
        return (list(objects[0]) if objects else []), objects
    body: bytes | int = admin_client.call(args, settings, path, raw=True)
    if isinstance(body, int):
        return body
    table = list(csv.reader(io.StringIO(body.decode())))
    columns = table[0] if table else []
    return columns, [dict(zip(columns, r, strict=True)) for r in table[1:]]


def _print(objects: list[dict[str, Any]], columns: list[str], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(objects))
        return
    if fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        w.writerows([[cell(o.get(c)) for c in columns] for o in objects])
        return
    cells = [columns] + [["" if o.get(c) is None else str(cell(o.get(c))) for c in columns]
                         for o in objects]
    if not columns:
        print("(no rows)")
        return
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for n, row in enumerate(cells):
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(f"({len(objects)} row{'s' if len(objects) != 1 else ''})")
