"""``targets``: each KPI's current value against its target (``[targets]``).

Current values come from the metric views through a :data:`Fetch` (the store's, with a
read key's project scope, or a running collector's), pooled over apps as the report
pools them (``kpis.summarize``), so the dashboard's cards, the report and this table
never disagree. Each KPI is measured over a fixed period ending ``until``
(docs/metrics.md#targets), and its target is the one in force in ``until``'s quarter.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from quietly_collector.insights import metrics
from quietly_collector.insights.metrics import Metric, MetricError, Query
from quietly_collector.insights.report.fetch import Fetch, Rows, store_fetch
from quietly_collector.insights.report.kpis import (
    RETENTION_LOOKBACK_DAYS,
    rows,
    summarize,
    whole,
)
from quietly_collector.insights.report.periods import Window
from quietly_collector.insights.report.target_plan import KPI_BY_NAME, Target, Value
from quietly_collector.storage.store import Store

METRIC = Metric("targets", "each KPI's current value against its target ([targets]):"
                           " on_track, off_track or no_data")
COLUMNS = ["kpi", "period", "current", "target", "direction", "status"]
STATUSES = ("on_track", "off_track", "no_data")
# Longer than the 30-day window: NPS answers are few, and 90-day retention needs cohorts
# whose 90th day has passed.
NPS_DAYS = 90
RETENTION_90D_LOOKBACK_DAYS = 180
# kpis.summarize's key for each KPI it measures over the 30 days ending until.
_SUMMARY = {"mau": "mau", "wau": "wau", "stickiness": "stickiness",
            "retention_30d": "retention_30d", "churn_30d": "churn_30d",
            "activation": "activation", "features_3plus": "breadth",
            "crash_rate": "crash_free_sessions", "errors_per_session": "errors_per_session",
            "session_duration": "session_minutes",
            "sessions_per_user_day": "sessions_per_user", "deployments": "deployments"}
_DIGITS = {"rate": 6, "score": 1, "number": 4, "seconds": 1}


def parse(until: str | None, app: str | None, since: str | None = None,
          steps: tuple[str, ...] = ()) -> tuple[date, str]:
    """``until`` and ``app`` checked as every metric's are; MetricError otherwise."""
    if since is not None:
        raise MetricError("targets: each KPI has its own period ending at until;"
                          " since does not apply")
    if steps:
        raise MetricError("targets: takes no steps")
    q = metrics.parse_query("dau", until=until, app=app)  # the same date and app rules
    return q.until, q.app


def status(direction: str, current: float | None, target: Value | None) -> str:
    if current is None or target is None:
        return "no_data"
    if isinstance(target, tuple):
        ok = target[0] <= current <= target[1]
    else:
        ok = current >= target if direction == "at_least" else current <= target
    return "on_track" if ok else "off_track"


def evaluate(fetch: Fetch, plan: list[Target], until: date, app: str = "") -> Rows:
    """One row per target (per job for the per-job KPIs), in the KPI plan's order."""
    month = Window(until - timedelta(days=29), until)
    names = {t.kpi.name for t in plan}
    wanted = {_SUMMARY[n] for n in names if n in _SUMMARY}
    now = summarize(fetch, month, app, wanted) if wanted else {}
    current: dict[str, tuple[Window, float | None]] = {}
    for name, key in _SUMMARY.items():
        if name in names:
            current[name] = (month, now.get(key))
    if "wau" in current:  # the WAU and MAU of until: the 7 and 30 days ending it
        current["wau"] = (Window(until - timedelta(days=6), until), now.get("wau"))
    if "crash_rate" in current:
        free = now.get("crash_free_sessions")
        current["crash_rate"] = (month, None if free is None else 1 - free)
    if "session_duration" in current:
        minutes = now.get("session_minutes")
        current["session_duration"] = (month, None if minutes is None else 60 * minutes)
    for name in ("retention_30d", "churn_30d"):
        if name in current:  # the report's cohorts (kpis._retention)
            current[name] = (_cohorts(until, RETENTION_LOOKBACK_DAYS), current[name][1])
    if "nps" in names:
        w = Window(until - timedelta(days=NPS_DAYS - 1), until)
        current["nps"] = (w, summarize(fetch, w, app, ("nps",)).get("nps"))
    if "retention_90d" in names:
        current["retention_90d"] = _retention_90d(fetch, until, app)
    jobs = ({str(r["job"]): r for r in rows(fetch, "jobs", month, app)}
            if any(t.kpi.per_job for t in plan) else {})
    out: Rows = []
    for t in plan:
        if t.kpi.per_job:
            out += _per_job(t, plan, jobs, month)
        else:
            w, value = current[t.kpi.name]
            out.append(_row(t, t.key, w, value, until))
    return out


def _per_job(t: Target, plan: list[Target], jobs: dict[str, dict[str, Any]],
             w: Window) -> Rows:
    """The KPI's general target applies to every job without one of its own."""
    column = "completion_rate" if t.kpi.name == "job_completion" else "avg_satisfaction"
    own = {p.key.partition(".")[2] for p in plan if p.kpi is t.kpi and "." in p.key}
    if "." in t.key:
        job = t.key.partition(".")[2]
        return [_row(t, t.key, w, (jobs.get(job) or {}).get(column), w.until)]
    if not jobs:
        return [_row(t, t.key, w, None, w.until)]
    return [_row(t, f"{t.key}.{job}", w, r.get(column), w.until)
            for job, r in sorted(jobs.items()) if job not in own]


def _row(t: Target, label: str, w: Window, value: float | None, until: date) -> dict[str, Any]:
    if value is not None:
        digits = _DIGITS.get(t.kpi.kind)
        value = round(value, digits) if digits is not None else round(value)
    target = t.value_at(until)
    return {"kpi": label, "period": f"{w.since.isoformat()}..{w.until.isoformat()}",
            "current": value, "target": _plain(target), "direction": t.direction,
            "status": status(t.direction, value, target)}


def _plain(v: Value | None) -> Any:
    """10000 rather than 10000.0, and a range as a [low, high] list (JSON)."""
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return int(v) if v is not None and v == int(v) else v


def _cohorts(until: date, days: int) -> Window:
    # The retention view takes whole months from since's month on.
    return Window((until - timedelta(days=days)).replace(day=1), until)


def _retention_90d(fetch: Fetch, until: date, app: str) -> tuple[Window, float | None]:
    w = _cohorts(until, RETENTION_90D_LOOKBACK_DAYS)
    got = [r for r in whole(fetch, "retention", w, app) if r["period"] == "day_90"]
    n = sum(r["cohort_users"] or 0 for r in got)
    return w, (sum(r["retained_users"] or 0 for r in got) / n if n else None)


def with_targets(fetch: Fetch, plan: list[Target]) -> Fetch:
    """``fetch``, which also answers ``Query("targets", ...)`` from the views it reads."""
    def both(q: Query) -> Rows:
        return evaluate(fetch, plan, q.until, q.app) if q.metric == METRIC.name else fetch(q)

    return both


def run(store: Store, plan: list[Target], until: date, app: str = "",
        scope: str | None = None) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows, as metrics.run gives them (``scope``: a read key's project)."""
    got = evaluate(store_fetch(store, scope), plan, until, app)
    return COLUMNS, [[r[c] for c in COLUMNS] for r in got]


def label(kpi: str) -> str:
    """A row's KPI as people read it: "Job completion rate: fix_a_bug"."""
    name, _, job = kpi.partition(".")
    text = KPI_BY_NAME[name].label if name in KPI_BY_NAME else name
    return f"{text}: {job}" if job else text


def shown(kpi: str, v: Any) -> str:
    """A current or target value as people read it (a range as low-high)."""
    known = KPI_BY_NAME.get(kpi.partition(".")[0])
    kind = known.kind if known else "number"  # a newer collector's KPI: as it is
    if v is None:
        return "\u2013"
    if isinstance(v, list):
        return "\u2013".join(shown(kpi, x) for x in v)
    if kind == "rate":
        return f"{100 * v:.{1 if v >= 0.01 or v == 0 else 2}f}%"
    if kind == "seconds":
        return f"{v / 60:.1f} min"
    if kind == "count":
        return f"{v:,.0f}"
    if kind == "score":
        return f"{v:+.1f}"
    return f"{v:,.2f}".rstrip("0").rstrip(".")


DIRECTION_TEXT = {"at_least": "at least", "at_most": "at most", "between": "between"}


def cells(row: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """KPI, period, current, target and status of a row as the report and dashboard
    print them."""
    kpi = str(row["kpi"])
    since, _, until = str(row["period"]).partition("..")
    target = row["target"]
    return (label(kpi), f"{since} \u2013 {until}", shown(kpi, row["current"]),
            "\u2013" if target is None else
            f"{DIRECTION_TEXT.get(str(row['direction']), row['direction'])}"
            f" {shown(kpi, target)}",
            str(row["status"]).replace("_", " "))
