"""The report's tables: feature adoption, performance grades, jobs-to-be-done."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from quietly_collector.insights.report.fetch import Fetch, Rows
from quietly_collector.insights.report.kpis import rows
from quietly_collector.insights.report.periods import Window

# Within a job's funnel, a completion counts when it follows the start within a day.
JOB_FUNNEL_WINDOW_S = 86_400
GRADE_ORDER = ("target", "good", "acceptable", "poor", "unacceptable", "ungraded")


@dataclass(frozen=True)
class Adoption:
    feature: str
    users: int
    rate: float | None
    previous: float | None


def adoption(fetch: Fetch, cur: Window, prev: Window, app: str = "",
             limit: int = 12) -> list[Adoption]:
    def rates(rs: Rows) -> dict[str, tuple[int, float | None]]:
        # One row per app: users add up, since an install belongs to one app.
        users: dict[str, int] = defaultdict(int)
        active: dict[str, int] = defaultdict(int)
        # A feature with a suppressed row is left out: a partial sum would give it away.
        hidden = {r["feature"] for r in rs if r.get("suppressed")}
        for r in rs:
            if r["feature"] not in hidden:
                users[r["feature"]] += r["users"] or 0
                active[r["feature"]] += r["active_users"] or 0
        return {f: (u, u / active[f] if active[f] else None) for f, u in users.items()}

    now = rates(rows(fetch, "feature_adoption", cur, app))
    before = rates(rows(fetch, "feature_adoption", prev, app))
    out = [Adoption(f, u, r, before.get(f, (0, None))[1]) for f, (u, r) in now.items()]
    out.sort(key=lambda a: (-(a.rate or 0), a.feature))
    return out[:limit]


@dataclass(frozen=True)
class Perf:
    operation: str
    measure: str
    unit: str
    version: str
    samples: int
    p50: float | None
    p95: float | None
    grade: str
    previous_p95: float | None


def version_key(v: str) -> tuple[tuple[int, str], ...]:
    # 1.10.0 after 1.9.2: numbers compare as numbers, anything else as text.
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.\-+]", v))


def _latest(rs: Rows) -> dict[tuple[str, str], dict[str, object]]:
    best: dict[tuple[str, str], dict[str, object]] = {}
    for r in rs:
        if r.get("suppressed"):
            continue  # too few installs behind it to show
        k = (r["operation"], r["measure"])
        if k not in best or version_key(str(r["app_version"])) > version_key(
                str(best[k]["app_version"])):
            best[k] = r
    return best


def performance(fetch: Fetch, cur: Window, prev: Window, app: str = "") -> list[Perf]:
    """Per operation and measure, the newest app version seen in the window."""
    now = _latest(rows(fetch, "performance", cur, app))
    before = _latest(rows(fetch, "performance", prev, app))
    out = []
    for (op, measure), r in now.items():
        b = before.get((op, measure))
        out.append(Perf(op, measure, str(r["unit"]), str(r["app_version"]),
                        int(str(r["samples"])), _num(r["p50_ms"]), _num(r["p95_ms"]),
                        str(r["grade"]), _num(b["p95_ms"]) if b else None))
    out.sort(key=lambda p: (p.measure != "duration_ms", p.operation, p.measure))
    return out


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) else None


@dataclass
class Job:
    job: str
    started: int
    completed: int
    completion_rate: float | None
    previous_rate: float | None
    # Reached each funnel step (started, then completed within a day), in order.
    funnel: list[tuple[str, int]] = field(default_factory=list)
    # Mean job_satisfaction score per window, oldest first (None: no answers).
    satisfaction: list[float | None] = field(default_factory=list)


def jobs(fetch: Fetch, trend: list[Window], app: str = "") -> list[Job]:
    """Jobs of the last window in ``trend``, with satisfaction over every window."""
    per_window = [{r["job"]: r for r in rows(fetch, "jobs", w, app)} for w in trend]
    cur, prev = trend[-1], per_window[-2] if len(per_window) > 1 else {}
    out = []
    for name, r in sorted(per_window[-1].items()):
        if r.get("suppressed"):
            continue  # too few installs to show (docs/privacy.md, small cells)
        job = Job(name, r["started_users"] or 0, r["completed_users"] or 0,
                  r["completion_rate"], (prev.get(name) or {}).get("completion_rate"))
        steps = [f"job_started:job={name}", f"job_completed:job={name}"]
        got = rows(fetch, "funnel", cur, app, steps=tuple(steps), window_s=JOB_FUNNEL_WINDOW_S)
        if not any(s.get("suppressed") for s in got):
            job.funnel = [(label, int(s["users"])) for label, s in
                          zip(("started", "completed"), got, strict=False)]
        job.satisfaction = [(w.get(name) or {}).get("avg_satisfaction") for w in per_window]
        out.append(job)
    return out
