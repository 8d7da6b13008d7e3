"""The headline KPIs of one window, each a single number (or None without data).

Rates are combined from counts (crashed sessions over sessions, not a mean of daily
rates) wherever the views give the counts, so a week's figure is the week's, not
an average that gives a quiet Sunday the weight of a busy Monday.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from quietly_collector.insights.metrics import Query
from quietly_collector.insights.report.fetch import Fetch, Rows
from quietly_collector.insights.report.periods import Window

# Cohorts whose 30-day retention is reported: installs first seen in these months.
RETENTION_LOOKBACK_DAYS = 120


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    kind: str  # count | rate | number | score: how it is printed and compared
    better: int  # +1 higher is better, -1 lower is better
    group: str


KPIS: tuple[Kpi, ...] = (
    Kpi("dau", "Daily active users (average)", "number", 1, "Active users"),
    Kpi("wau", "Weekly active users (last day)", "count", 1, "Active users"),
    Kpi("mau", "Monthly active users (last day)", "count", 1, "Active users"),
    Kpi("stickiness", "Stickiness (DAU / MAU)", "rate", 1, "Active users"),
    Kpi("sessions", "Sessions", "count", 1, "Engagement"),
    Kpi("session_minutes", "Average session (minutes)", "number", 1, "Engagement"),
    Kpi("sessions_per_user", "Sessions per user and day", "number", 1, "Engagement"),
    Kpi("activation", "Activation rate (new installs)", "rate", 1, "Adoption"),
    Kpi("breadth", "Users of 3+ features", "rate", 1, "Adoption"),
    Kpi("retention_30d", "30-day retention", "rate", 1, "Retention"),
    Kpi("churn_30d", "30-day churn", "rate", -1, "Retention"),
    Kpi("nps", "Net promoter score", "score", 1, "Satisfaction"),
    Kpi("nps_responses", "NPS responses", "count", 1, "Satisfaction"),
    Kpi("deployments", "Successful production deployments", "count", 1, "Deployments"),
    Kpi("crashes_per_1000", "Crashes per 1,000 sessions", "number", -1, "Quality"),
    Kpi("crash_free_sessions", "Crash-free sessions", "rate", 1, "Quality"),
    Kpi("crash_free_users", "Crash-free users (daily average)", "rate", 1, "Quality"),
    Kpi("errors_per_session", "Errors per session", "number", -1, "Quality"),
    Kpi("build_success", "Build success rate", "rate", 1, "Builds"),
    Kpi("build_p95_s", "Build duration p95 (seconds, worst day)", "number", -1, "Builds"),
)
KPI_BY_KEY = {k.key: k for k in KPIS}


def rows(fetch: Fetch, metric: str, w: Window, app: str = "", **kw: Any) -> Rows:
    return fetch(Query(metric, w.since, w.until, app, **kw))


def whole(fetch: Fetch, metric: str, w: Window, app: str = "", **kw: Any) -> Rows:
    """``rows``, or none at all when one of them is suppressed (too few installs): a
    KPI adds rows up, and a sum over the visible rows would be neither the true total
    nor safe (the total minus the visible rows gives the withheld one away)."""
    got = rows(fetch, metric, w, app, **kw)
    return [] if any(r.get("suppressed") for r in got) else got


def _sum(rs: Rows, col: str) -> float:
    return float(sum(r.get(col) or 0 for r in rs))


def _ratio(num: float, den: float, scale: float = 1.0) -> float | None:
    return scale * num / den if den else None


Part = Callable[[Fetch, Window, str], dict[str, float | None]]


def _active(fetch: Fetch, w: Window, app: str) -> dict[str, float | None]:
    dau = whole(fetch, "dau", w, app)
    return {"dau": _sum(dau, "users") / w.days if dau else None}


def _last_day(name: str) -> Part:
    def part(fetch: Fetch, w: Window, app: str) -> dict[str, float | None]:
        got = whole(fetch, name, Window(w.until, w.until), app)
        return {name: _sum(got, "users") if got else None}

    return part


def _stickiness(fetch: Fetch, w: Window, app: str) -> dict[str, float | None]:
    by_day: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in whole(fetch, "stickiness", w, app):
        by_day[r["day"]][0] += r["dau"] or 0
        by_day[r["day"]][1] += r["mau"] or 0
    ratios = [d / m for d, m in by_day.values() if m]
    return {"stickiness": sum(ratios) / len(ratios) if ratios else None}


def _sessions(fetch: Fetch, w: Window, app: str) -> dict[str, float | None]:
    sessions = whole(fetch, "sessions", w, app)
    n = _sum(sessions, "sessions")
    weighted = sum((r["avg_duration_s"] or 0) * (r["sessions"] or 0) for r in sessions)
    return {"sessions": n if sessions else None,
            "session_minutes": _ratio(weighted, n, 1 / 60),
            "sessions_per_user": _ratio(n, _sum(sessions, "users"))}


def _activation(fetch: Fetch, w: Window, app: str) -> dict[str, float | None]:
    act = whole(fetch, "activation", w, app)
    return {"activation": _ratio(_sum(act, "activated_installs"), _sum(act, "new_installs"))}


def _breadth(fetch: Fetch, w: Window, app: str) -> dict[str, float | None]:
    got = whole(fetch, "feature_breadth", w, app)
    return {"breadth": _ratio(_sum(got, "users_3plus_features"), _sum(got, "active_users"))}


def _retention(fetch: Fetch, w: Window, app: str) -> dict[str, float | None]:
    cohorts = Window(w.until - timedelta(days=RETENTION_LOOKBACK_DAYS), w.until)
    d30 = [r for r in whole(fetch, "retention", cohorts, app) if r["period"] == "day_30"]
    kept = _ratio(_sum(d30, "retained_users"), _sum(d30, "cohort_users"))
    return {"retention_30d": kept, "churn_30d": None if kept is None else 1 - kept}


def _nps(fetch: Fetch, w: Window, app: str) -> dict[str, float | None]:
    nps = whole(fetch, "nps", w, app)
    responses = _sum(nps, "responses")
    return {"nps": _ratio(_sum(nps, "promoters") - _sum(nps, "detractors"), responses, 100),
            "nps_responses": responses}


def _deployments(fetch: Fetch, w: Window, app: str) -> dict[str, float | None]:
    got = whole(fetch, "deployments", w, app)
    return {"deployments": _sum(got, "successful_production_deployments")}


def _crashes(fetch: Fetch, w: Window, app: str) -> dict[str, float | None]:
    crash = whole(fetch, "crash_rate", w, app)
    n = _sum(crash, "sessions")
    crashed = _ratio(_sum(crash, "crashed_sessions"), n)
    free_users = [r["crash_free_users_rate"] for r in crash
                  if r.get("crash_free_users_rate") is not None]
    errors = sum((r["errors_per_session"] or 0) * (r["sessions"] or 0) for r in crash)
    return {"crashes_per_1000": _ratio(_sum(crash, "crashes"), n, 1000),
            "crash_free_sessions": None if crashed is None else 1 - crashed,
            "crash_free_users": sum(free_users) / len(free_users) if free_users else None,
            "errors_per_session": _ratio(errors, n)}


def _builds(fetch: Fetch, w: Window, app: str) -> dict[str, float | None]:
    got = rows(fetch, "builds", w, app)
    p95 = [float(r["p95_duration_ms"]) for r in got if r.get("p95_duration_ms") is not None]
    # Quantiles do not add up over days: the worst day's p95 is the honest bound.
    return {"build_success": _ratio(_sum(got, "successful_builds"), _sum(got, "builds")),
            "build_p95_s": max(p95) / 1000 if p95 else None}


# Which KPIs each part yields: a page asks only for the parts it shows.
PARTS: tuple[tuple[tuple[str, ...], Part], ...] = (
    (("dau",), _active), (("wau",), _last_day("wau")), (("mau",), _last_day("mau")),
    (("stickiness",), _stickiness),
    (("sessions", "session_minutes", "sessions_per_user"), _sessions),
    (("activation",), _activation), (("breadth",), _breadth),
    (("retention_30d", "churn_30d"), _retention), (("nps", "nps_responses"), _nps),
    (("deployments",), _deployments),
    (("crashes_per_1000", "crash_free_sessions", "crash_free_users", "errors_per_session"),
     _crashes),
    (("build_success", "build_p95_s"), _builds),
)


def summarize(fetch: Fetch, w: Window, app: str = "",
              keys: Iterable[str] | None = None) -> dict[str, float | None]:
    """The KPIs of window ``w`` (all of them, or those named in ``keys``)."""
    wanted = set(KPI_BY_KEY if keys is None else keys)
    out: dict[str, float | None] = {}
    for produces, part in PARTS:
        if wanted.intersection(produces):
            out.update(part(fetch, w, app))
    return out


@dataclass(frozen=True)
class Change:
    kpi: Kpi
    current: float | None
    previous: float | None

    @property
    def delta(self) -> float | None:
        if self.current is None or self.previous is None:
            return None
        return self.current - self.previous

    @property
    def relative(self) -> float | None:
        d = self.delta
        return None if d is None or not self.previous else d / abs(self.previous)

    @property
    def verdict(self) -> str:
        """better, worse or same: from the KPI's direction, for colour and arrows."""
        d = self.delta
        if d is None or abs(d) < 1e-9:
            return "same"
        return "better" if d * self.kpi.better > 0 else "worse"


def compare(current: dict[str, float | None],
            previous: dict[str, float | None]) -> list[Change]:
    return [Change(k, current.get(k.key), previous.get(k.key)) for k in KPIS]
