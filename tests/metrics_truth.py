"""A generated telemetry dataset and every metric computed from it in plain Python.

The definitions here are written from docs/metrics.md, independently of the SQL
views; tests/insights/test_metrics.py checks that the two agree.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

START = date(2026, 8, 1)
END = date(2026, 10, 31)
FEATURES = ["debugging", "search", "refactor.rename", "git.commit", "terminal"]
JOBS = ["fix-a-bug", "ship-a-feature"]


@dataclass
class Ev:
    event: str
    ts: datetime
    install: str
    app: str
    session: str | None
    props: dict[str, Any]
    event_id: str = ""

    def wire(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "event": self.event,
            "ts": self.ts.isoformat().replace("+00:00", "Z"),
            "install_id": self.install, "session_id": self.session,
            "context": {"app": self.app, "app_version": "1.4.2", "consent": "basic"},
            "props": self.props,
        }


def generate(seed: int = 7, installs: int = 16) -> list[Ev]:
    rng = random.Random(seed)
    out: list[Ev] = []
    days = (END - START).days + 1
    for n in range(installs):
        install = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        app = "my-ide" if n % 3 else "my-cli"
        first = rng.randrange(0, days - 10)
        for d in range(first, days):
            if d != first and rng.random() > 0.25:
                continue
            day = START + timedelta(days=d)
            for s in range(rng.choice([1, 1, 2])):
                out += _session(rng, install, app, day, 8 + 5 * s)
    for i, e in enumerate(out):
        e.event_id = str(uuid.UUID(int=random.Random(seed * 1_000_003 + i).getrandbits(128),
                                   version=4))
    return out


def _session(rng: random.Random, install: str, app: str, day: date, hour: int) -> list[Ev]:
    sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    t = datetime(day.year, day.month, day.day, hour, rng.randrange(60), tzinfo=UTC)
    evs = [Ev("session_start", t, install, app, sid, {})]

    def at(minutes: float, name: str, props: dict[str, Any], session: str | None = sid) -> None:
        evs.append(Ev(name, t + timedelta(minutes=minutes), install, app, session, props))

    at(0.1, "performance", {"operation": "startup", "duration_ms": rng.uniform(800, 6000)})
    minute = 1.0
    for _ in range(rng.randrange(0, 5)):
        at(minute, "feature_used", {"feature": rng.choice(FEATURES), "duration_ms": 100})
        minute += rng.uniform(0.5, 5)
    if rng.random() < 0.5:
        at(minute, "performance", {"operation": "file_open", "duration_ms": rng.uniform(20, 700)})
    if rng.random() < 0.15:
        at(minute + 1, "crash", {"kind": "ValueError", "message": "boom"})
    if rng.random() < 0.2:
        at(minute + 1.5, "error", {"kind": "io", "code": "E1"})
    if rng.random() < 0.3:
        job = rng.choice(JOBS)
        at(minute + 2, "job_started", {"job": job})
        if rng.random() < 0.7:
            at(minute + 2 + rng.uniform(1, 20), "job_completed", {"job": job, "success": True})
        if rng.random() < 0.4:
            at(minute + 3, "survey_response",
               {"survey": "job_satisfaction", "score": rng.randrange(1, 11), "job": job})
    if rng.random() < 0.15:
        at(minute + 4, "survey_response", {"survey": "nps", "score": rng.randrange(0, 11)})
    if rng.random() < 0.2:
        env = rng.choice(["production", "production", "staging"])
        at(minute + 5, "deployment", {"environment": env, "success": rng.random() < 0.8})
    if rng.random() < 0.1:
        at(minute + 6, "screen_viewed", {"screen": "settings"}, session=None)  # no session
    length = minute + 10
    at(length, "session_end", {"duration_ms": int(length * 60_000)})
    return evs


# -- metrics ------------------------------------------------------------------------


def _r(x: float, n: int) -> float:
    return round(x, n)


def dau(evs: list[Ev]) -> dict[tuple[str, str], int]:
    users: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in evs:
        users[(e.ts.date().isoformat(), e.app)].add(e.install)
    return {k: len(v) for k, v in users.items()}


def window_users(evs: list[Ev], width: int) -> dict[tuple[str, str], int]:
    active: dict[tuple[date, str], set[str]] = defaultdict(set)
    for e in evs:
        active[(e.ts.date(), e.app)].add(e.install)
    out = {}
    apps = {e.app for e in evs}
    d = START
    while d <= END:
        for app in apps:
            seen: set[str] = set()
            for k in range(width):
                seen |= active.get((d - timedelta(days=k), app), set())
            if seen:
                out[(d.isoformat(), app)] = len(seen)
        d += timedelta(days=1)
    return out


def sessions(evs: list[Ev]) -> dict[str, dict[str, Any]]:
    by: dict[str, list[Ev]] = defaultdict(list)
    for e in evs:
        if e.session:
            by[e.session].append(e)
    out = {}
    for sid, es in by.items():
        ended = [e.props["duration_ms"] for e in es if e.event == "session_end"]
        start = min(e.ts for e in es)
        out[sid] = {
            "app": es[0].app, "install": es[0].install, "start": start,
            "stop": max(e.ts for e in es), "events": len(es),
            "features": sum(e.event == "feature_used" for e in es),
            "crashes": sum(e.event == "crash" for e in es),
            "errors": sum(e.event == "error" for e in es),
            "ended_ms": max(ended) if ended else 0,
            "names": {e.event for e in es},
        }
    return out


def session_metrics(evs: list[Ev]) -> dict[tuple[str, str], dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for s in sessions(evs).values():
        groups[(s["start"].date().isoformat(), s["app"])].append(s)
    out = {}
    for k, ss in groups.items():
        n = len(ss)
        users = {s["install"] for s in ss}
        durs = [s["ended_ms"] / 1000 if s["ended_ms"] > 0
                else (s["stop"] - s["start"]).total_seconds() for s in ss]
        crashed = [s for s in ss if s["crashes"] > 0]
        crashes = sum(s["crashes"] for s in ss)
        out[k] = {
            "sessions": n, "avg_duration_s": _r(sum(durs) / n, 3),
            "sessions_per_user": _r(n / len(users), 4),
            "crashed_sessions": len(crashed), "crashes": crashes,
            "crashes_per_1000_sessions": _r(1000 * crashes / n, 3),
            "crash_free_sessions_rate": _r(1 - len(crashed) / n, 4),
            "crash_free_users_rate": _r(1 - len({s["install"] for s in crashed}) / len(users), 4),
            "errors_per_session": _r(sum(s["errors"] for s in ss) / n, 4),
        }
    return out


def feature_adoption(evs: list[Ev]) -> dict[tuple[str, str], dict[str, Any]]:
    active: dict[str, set[str]] = defaultdict(set)
    users: dict[tuple[str, str], set[str]] = defaultdict(set)
    uses: dict[tuple[str, str], int] = defaultdict(int)
    for e in evs:
        active[e.app].add(e.install)
        if e.event == "feature_used":
            users[(e.app, e.props["feature"])].add(e.install)
            uses[(e.app, e.props["feature"])] += 1
    return {k: {"users": len(u), "active_users": len(active[k[0]]),
                "adoption_rate": _r(len(u) / len(active[k[0]]), 4), "uses": uses[k]}
            for k, u in users.items()}


def feature_breadth(evs: list[Ev]) -> dict[str, dict[str, int]]:
    active: dict[str, set[str]] = defaultdict(set)
    feats: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in evs:
        active[e.app].add(e.install)
        if e.event == "feature_used":
            feats[(e.app, e.install)].add(e.props["feature"])
    return {app: {"active_users": len(us),
                  "users_3plus_features": sum(len(feats[(app, u)]) >= 3 for u in us)}
            for app, us in active.items()}


def activation(evs: list[Ev], event: str = "feature_used") -> dict[tuple[str, str], list[int]]:
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for s in sessions(evs).values():
        k = (s["app"], s["install"])
        if k not in first or s["start"] < first[k]["start"]:
            first[k] = s
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (app, _), s in first.items():
        row = out[(s["start"].date().isoformat(), app)]
        row[0] += 1
        row[1] += event in s["names"]
    return dict(out)


def retention(evs: list[Ev]) -> dict[tuple[str, str], tuple[int, int]]:
    days: dict[str, set[date]] = defaultdict(set)
    for e in evs:
        days[e.install].add(e.ts.date())
    out: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for ds in days.values():
        first, last = min(ds), max(ds)
        cohort = first.replace(day=1)
        months = {(d.year - first.year) * 12 + d.month - first.month for d in ds}
        for k in (1, 2, 3, 6, 12):
            end_month = _add_months(cohort, k + 1)
            if end_month <= END + timedelta(days=1):
                row = out[(cohort.isoformat(), f"month_{k}")]
                row[0] += 1
                row[1] += k in months
        for n in (30, 90):
            if first + timedelta(days=n) <= END:
                row = out[(cohort.isoformat(), f"day_{n}")]
                row[0] += 1
                row[1] += last >= first + timedelta(days=n)
    return {k: (v[0], v[1]) for k, v in out.items()}


def _add_months(d: date, k: int) -> date:
    m = d.month - 1 + k
    return date(d.year + m // 12, m % 12 + 1, 1)


def performance(evs: list[Ev]) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for e in evs:
        if e.event == "performance":
            out[(e.props["operation"], "duration_ms")].append(float(e.props["duration_ms"]))
    return {k: sorted(v) for k, v in out.items()}


def jobs(evs: list[Ev]) -> dict[str, dict[str, Any]]:
    per: dict[tuple[str, str], dict[str, Any]] = {}
    sat: dict[str, list[int]] = defaultdict(list)
    for e in evs:
        if e.event in ("job_started", "job_step", "job_completed"):
            p = per.setdefault((e.props["job"], e.install),
                               {"starts": 0, "done": 0, "seen": e.ts, "first_done": None})
            p["seen"] = min(p["seen"], e.ts)
            if e.event == "job_started":
                p["starts"] += 1
            if e.event == "job_completed" and e.props.get("success") is not False:
                p["done"] += 1
                if p["first_done"] is None or e.ts < p["first_done"]:
                    p["first_done"] = e.ts
        if e.event == "survey_response" and e.props["survey"] == "job_satisfaction":
            sat[e.props["job"]].append(e.props["score"])
    out = {}
    for job in {j for j, _ in per}:
        ps = [p for (j, _), p in per.items() if j == job]
        started = sum(p["starts"] > 0 for p in ps)
        both = sum(p["starts"] > 0 and p["done"] > 0 for p in ps)
        times = sorted((p["first_done"] - p["seen"]).total_seconds() for p in ps if p["done"])
        out[job] = {
            "started_users": started, "completed_users": sum(p["done"] > 0 for p in ps),
            "completion_rate": _r(both / started, 4) if started else None,
            "median_time_to_complete_s": _r(times[len(times) // 2], 3) if times else None,
            "repeat_users": sum(p["done"] >= 2 for p in ps),
            "avg_satisfaction": _r(sum(sat[job]) / len(sat[job]), 3) if sat[job] else None,
        }
    return out


def nps(evs: list[Ev]) -> dict[str, dict[str, Any]]:
    scores: dict[str, list[int]] = defaultdict(list)
    for e in evs:
        if e.event == "survey_response" and e.props["survey"] == "nps":
            scores[e.ts.date().replace(day=1).isoformat()].append(e.props["score"])
    out = {}
    for month, ss in scores.items():
        p, d = sum(s >= 9 for s in ss), sum(s <= 6 for s in ss)
        out[month] = {"responses": len(ss), "promoters": p, "detractors": d,
                      "nps": _r(100 * (p - d) / len(ss), 1)}
    return out


def deployments(evs: list[Ev]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = defaultdict(int)
    for e in evs:
        if e.event == "deployment":
            k = (e.ts.date().replace(day=1).isoformat(), e.app)
            out[k] += e.props["environment"] == "production" and e.props["success"] is True
    return dict(out)


def funnel(evs: list[Ev], steps: list[str], window_s: int) -> list[int]:
    by: dict[str, list[Ev]] = defaultdict(list)
    for e in evs:
        if e.event in steps:
            by[e.install].append(e)
    reached = [0] * len(steps)
    for es in by.values():
        es.sort(key=lambda e: e.ts)
        best = 0
        for i, e in enumerate(es):
            if e.event != steps[0]:
                continue
            level, t0 = 1, e.ts
            for later in es[i + 1:]:
                if level < len(steps) and later.event == steps[level] and later.ts > t0 \
                        and (later.ts - t0).total_seconds() <= window_s:
                    level += 1
            best = max(best, level)
        for k in range(best):
            reached[k] += 1
    return reached
