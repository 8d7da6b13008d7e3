"""Everything a report shows, gathered once and rendered as Markdown or HTML."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from quietly_collector.insights.metrics import Query
from quietly_collector.insights.report import details
from quietly_collector.insights.report.fetch import Fetch, Rows
from quietly_collector.insights.report.kpis import Change, compare, summarize
from quietly_collector.insights.report.periods import Window, trailing, window

# Windows of the satisfaction trend in the jobs section, the current one included.
TREND_WINDOWS = 4


@dataclass
class Report:
    period: str
    app: str
    current: Window
    previous: Window
    kpis: list[Change]
    adoption: list[details.Adoption]
    performance: list[details.Perf]
    jobs: list[details.Job]
    trend: list[Window]
    generated_at: datetime
    # Each KPI against its target on the period's last day (targets.py's rows).
    targets: Rows
    # The segment filter every section was read with ("plan=paid"), if any.
    segment: str = ""


def build(fetch: Fetch, period: str, until: date, app: str = "", segment: str = "") -> Report:
    """``fetch`` answers the ``targets`` query too: a running collector's does (its own
    [targets]); over the store, ``targets.with_targets`` with the configuration's plan."""
    cur = window(period, until)
    prev = cur.before()
    trend = trailing(cur, TREND_WINDOWS)
    return Report(
        period=period, app=app, current=cur, previous=prev,
        kpis=compare(summarize(fetch, cur, app), summarize(fetch, prev, app)),
        adoption=details.adoption(fetch, cur, prev, app),
        performance=details.performance(fetch, cur, prev, app),
        jobs=details.jobs(fetch, trend, app),
        trend=trend,
        generated_at=datetime.now(UTC).replace(microsecond=0),
        targets=fetch(Query("targets", until, until, app)),
        segment=segment,
    )
