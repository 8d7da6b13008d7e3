"""``quietly report --period day|week|month [--format md|html]``.

As ``quietly query``: with the embedded store it asks the running collector
(``GET /v1/metrics/<name>``, admin token); with ``--direct`` or a ClickHouse server
it reads the views itself.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

from quietly_collector.commands.client import add_read_key
from quietly_collector.insights.report.periods import PERIOD_DAYS
from quietly_collector.settings import Settings


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "report", help="KPI report for a day, week or month, with changes against the one before",
        description="Summarize the KPIs (active users, stickiness, sessions, retention, NPS,"
        " deployments, adoption, crash and error rates, performance grades, jobs) over the"
        " last day, 7 days or 30 days ending --until, with changes against the period before.",
    )
    p.add_argument("--period", choices=tuple(PERIOD_DAYS), default="week",
                   help="day, week (7 days) or month (30 days); default week")
    p.add_argument("--format", choices=("md", "html"), default="md", help="default md")
    p.add_argument("--until", help="last day of the period, YYYY-MM-DD (default: yesterday,"
                   " the last complete UTC day)")
    p.add_argument("--app", help="only this app (default: every app)")
    p.add_argument("--where", action="append", default=[], metavar="SEGMENT=VALUE",
                   help="every section over these installs only (repeatable; as for"
                        " quietly query)")
    p.add_argument("--output", "-o", help="write to this file instead of standard output")
    p.add_argument("--url", help="collector URL (or QUIETLY_URL; default http://127.0.0.1:8080)")
    p.add_argument("--direct", action="store_true",
                   help="read ClickHouse directly (a ClickHouse server, or no collector running)")
    add_read_key(p)
    return p


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    from quietly_collector.commands.client import collector_url, http_fetch
    from quietly_collector.insights import segments
    from quietly_collector.insights.report import html, markdown
    from quietly_collector.insights.report.fetch import FetchError, filtered, once, store_fetch
    from quietly_collector.insights.report.model import build

    try:
        until = (date.fromisoformat(args.until) if args.until
                 else datetime.now(UTC).date() - timedelta(days=1))
    except ValueError:
        print(f"quietly: --until: expected a date like 2026-11-01, got {args.until!r}",
              file=sys.stderr)
        return 2
    try:
        where = segments.check_where(args.where, settings.schema_dirs)
    except segments.SegmentError as exc:
        print(f"quietly: --{exc}", file=sys.stderr)
        return 2
    store = None
    if args.direct or not settings.embedded:
        from quietly_collector.insights.report import target_plan, targets
        from quietly_collector.storage.store import Store

        store = Store(settings)
        # Reading the store itself, the targets are this configuration's; over HTTP
        # they are the running collector's.
        fetch = targets.with_targets(once(filtered(store_fetch(store), where)),
                                     target_plan.of(settings))
    else:
        from quietly_collector.commands.client import token_of

        token = token_of(args, settings)
        if not token:
            print("quietly: no admin token: set QUIETLY_ADMIN_TOKEN or --admin-token",
                  file=sys.stderr)
            return 2
        fetch = once(filtered(http_fetch(collector_url(args), token), where))
    try:
        if store is not None:
            store.connect()
        report = build(fetch, args.period, until, args.app or "",
                       ", ".join(f"{s}={v}" for s, v in where))
    except FetchError as exc:
        print(f"quietly: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # storage errors: one line, not a traceback
        print(f"quietly: {exc}", file=sys.stderr)
        return 1
    finally:
        if store is not None:
            store.close()
    text = html.render(report) if args.format == "html" else markdown.render(report)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0
