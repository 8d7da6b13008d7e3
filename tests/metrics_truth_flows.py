"""The dataset of tests/metrics_truth.py grown by the events of issue 24 (screens and
builds inside sessions, experiment exposures and their goal), and lifecycle, active
days, paths, builds and experiments computed from it in plain Python.

Written from docs/metrics.md, independently of the SQL; tests/insights/test_metrics_flows.py
checks that the two agree.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.metrics_truth import END, START, Ev, generate

SCREENS = ("editor", "search", "git", "settings")
NOT_STEPS = ("performance", "session_end", "experiment_exposure", "segments")
ARROW = " → "
# The experiment with a known effect: conversion to the goal within 7 days.
EFFECT = {"control": 0.20, "tour": 0.30}
TRUE_DIFFERENCE = EFFECT["tour"] - EFFECT["control"]
GOAL = "job_completed"


def generate_flows(seed: int = 11, installs: int = 24, synthetic: int = 2000) -> list[Ev]:
    rng = random.Random(seed)
    out = generate(seed, installs)
    sessions: dict[str, list[Ev]] = defaultdict(list)
    for e in out:
        if e.session:
            sessions[e.session].append(e)
    first: dict[str, tuple[datetime, str, str]] = {}
    extra: list[Ev] = []
    for sid, es in sessions.items():
        t, install, app = min(e.ts for e in es), es[0].install, es[0].app
        if install not in first or t < first[install][0]:
            first[install] = (t, app, sid)
        for _ in range(rng.randrange(0, 4)):
            extra.append(Ev("screen_viewed", t + timedelta(minutes=rng.uniform(0.2, 8)),
                            install, app, sid, {"screen": rng.choice(SCREENS)}))
        for _ in range(rng.choice((0, 0, 1, 2))):
            props: dict[str, Any] = {"success": rng.random() < 0.8,
                                     "kind": rng.choice(("incremental", "full"))}
            if rng.random() < 0.85:
                props["duration_ms"] = rng.randrange(200, 90_000)
            extra.append(Ev("build_finished", t + timedelta(minutes=rng.uniform(0.3, 9)),
                            install, app, sid, props))
    for install, (t, app, sid) in first.items():
        variant = rng.choice(tuple(EFFECT))
        extra.append(Ev("experiment_exposure", t + timedelta(seconds=3), install, app, sid,
                        {"experiment": "onboarding_tour", "variant": variant}))
        if rng.random() < 0.3:  # exposed again (another process): still its first variant
            other = "tour" if variant == "control" else "control"
            extra.append(Ev("experiment_exposure", t + timedelta(days=2), install, app, None,
                            {"experiment": "onboarding_tour", "variant": other}))
    extra += _synthetic(rng, synthetic)
    out += extra
    for i, e in enumerate(extra):
        e.event_id = str(uuid.UUID(int=random.Random(seed * 7_919 + i).getrandbits(128),
                                   version=4))
    return out


def _synthetic(rng: random.Random, n: int) -> list[Ev]:
    """Installs with no session: a known effect in `checkout` (EFFECT) and, for the same
    installs, a `pricing` experiment split 1000 : 850 (a sample ratio mismatch)."""
    out = []
    days = (END - START).days
    for i in range(n):
        install = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        t = datetime(START.year, START.month, START.day, 12, tzinfo=UTC) + timedelta(
            days=rng.randrange(days), minutes=rng.randrange(600))
        variant = rng.choice(tuple(EFFECT))
        out.append(Ev("experiment_exposure", t, install, "my-web", None,
                      {"experiment": "checkout", "variant": variant}))
        if rng.random() < EFFECT[variant]:
            out.append(Ev(GOAL, t + timedelta(hours=rng.uniform(1, 6 * 24)), install, "my-web",
                          None, {"job": "checkout"}))
        elif rng.random() < 0.2:  # too late: after the 7-day window
            out.append(Ev(GOAL, t + timedelta(days=8), install, "my-web", None,
                          {"job": "checkout"}))
        if i < 1850:
            out.append(Ev("experiment_exposure", t + timedelta(minutes=1), install, "my-web",
                          None, {"experiment": "pricing",
                                 "variant": "control" if i < 1000 else "annual"}))
    return out


def _period(d: date, period: str) -> date:
    return d.replace(day=1) if period == "month" else d - timedelta(days=d.weekday())


def _previous(p: date, period: str) -> date:
    if period == "week":
        return p - timedelta(days=7)
    return (p - timedelta(days=1)).replace(day=1)


def lifecycle(evs: list[Ev], period: str) -> dict[tuple[str, str], dict[str, int]]:
    active: dict[tuple[str, str], set[date]] = defaultdict(set)
    for e in evs:
        active[(e.app, e.install)].add(_period(e.ts.date(), period))
    lo = _period(START, period)
    out: dict[tuple[str, str], dict[str, int]] = {}
    periods = sorted({p for ps in active.values() for p in ps} | {
        _period(p + timedelta(days=32 if period == "month" else 7), period)
        for ps in active.values() for p in ps})
    for p in periods:
        if not lo <= p <= END:
            continue
        for (app, _), ps in active.items():
            now, was = p in ps, _previous(p, period) in ps
            status = ("new" if p == min(ps) else "returning" if was else "resurrecting") \
                if now else ("dormant" if was else None)
            if status is None:
                continue
            row = out.setdefault((p.isoformat(), app), {
                "new": 0, "returning": 0, "resurrecting": 0, "dormant": 0, "users": 0})
            row[status] += 1
            row["users"] += now
    return out


def active_days(evs: list[Ev], period: str) -> dict[tuple[str, str, int], int]:
    days: dict[tuple[date, str, str], set[date]] = defaultdict(set)
    lo = _period(START, period)
    for e in evs:
        d = e.ts.date()
        p = _period(d, period)
        if d >= lo and p <= END:
            days[(p, e.app, e.install)].add(d)
    out: dict[tuple[str, str, int], int] = defaultdict(int)
    for (p, app, _), ds in days.items():
        out[(p.isoformat(), app, len(ds))] += 1
    return dict(out)


def builds(evs: list[Ev]) -> dict[tuple[str, str], dict[str, Any]]:
    per: dict[tuple[str, str], list[Ev]] = defaultdict(list)
    for e in evs:
        if e.event == "build_finished" and START <= e.ts.date() <= END:
            per[(e.ts.date().isoformat(), e.app)].append(e)
    out = {}
    for k, es in per.items():
        ok = sum(e.props["success"] is True for e in es)
        ds = sorted(e.props["duration_ms"] for e in es if "duration_ms" in e.props)
        out[k] = {"builds": len(es), "successful_builds": ok,
                  "success_rate": round(ok / len(es), 4),
                  "p95_duration_ms": float(ds[min(len(ds) - 1, int(0.95 * len(ds)))])
                  if ds else None,
                  "users": len({e.install for e in es})}
    return out


def _sequences(evs: list[Ev]) -> list[tuple[str, list[str]]]:
    """(install, collapsed steps) of every session that started between START and END."""
    by: dict[str, list[Ev]] = defaultdict(list)
    for e in evs:
        if e.session:
            by[e.session].append(e)
    out = []
    for es in by.values():
        if not START <= min(e.ts for e in es).date() <= END:
            continue
        steps = sorted((e.ts, _step(e)) for e in es if e.event not in NOT_STEPS)
        seq: list[str] = []
        for _, s in steps:
            if not seq or seq[-1] != s:
                seq.append(s)
        out.append((es[0].install, seq))
    return out


def _step(e: Ev) -> str:
    if e.event == "feature_used":
        return f"feature_used:{e.props['feature']}"
    if e.event == "screen_viewed":
        return f"screen_viewed:{e.props['screen']}"
    return e.event


def paths(evs: list[Ev], start: str = "", end: str = "", n: int = 3,
          limit: int = 10) -> list[list[Any]]:
    anchor = start or end
    grouped: dict[str, list[str]] = defaultdict(list)
    ended: dict[int, list[str]] = defaultdict(list)
    for install, seq in _sequences(evs):
        hits = [i for i, s in enumerate(seq)
                if s == anchor or (":" not in anchor and s.startswith(anchor + ":"))]
        if not hits:
            continue
        i = hits[0]
        path = seq[max(0, i - n + 1):i + 1] if end else seq[i:i + n]
        grouped[ARROW.join(path)].append(install)
        ended[i + 1 if end else len(seq) - i].append(install)
    total = sum(len(v) for v in grouped.values())
    rows = sorted(((p, p.count(ARROW) + 1, len(v), len(set(v))) for p, v in grouped.items()),
                  key=lambda r: (-r[2], -r[3], r[0]))[:limit]
    out: list[list[Any]] = [["path", *r, round(r[2] / total, 4)] for r in rows]
    for k in sorted(ended):
        if k <= n:
            label = f"(session began {k} steps before)" if end else \
                f"(session ended after step {k})"
            out.append(["drop_off", label, k, len(ended[k]), len(set(ended[k])),
                        round(len(ended[k]) / total, 4)])
    return out


def exposures(evs: list[Ev], name: str) -> dict[tuple[str, str], tuple[datetime, str]]:
    """(app, install) -> (first exposure, its variant), first exposures in START..END."""
    first: dict[tuple[str, str], tuple[datetime, str]] = {}
    for e in evs:
        if e.event == "experiment_exposure" and e.props["experiment"] == name:
            k = (e.app, e.install)
            if k not in first or e.ts < first[k][0]:
                first[k] = (e.ts, e.props["variant"])
    return {k: v for k, v in first.items() if START <= v[0].date() <= END}


def experiment(evs: list[Ev], name: str, goal: str, window_s: int) -> dict[str, tuple[int, int]]:
    goals: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for e in evs:
        if e.event == goal:
            goals[(e.app, e.install)].append(e.ts)
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for k, (t, variant) in exposures(evs, name).items():
        out[variant][0] += 1
        out[variant][1] += any(t <= g <= t + timedelta(seconds=window_s) for g in goals[k])
    return {v: (c[0], c[1]) for v, c in out.items()}


def experiments(evs: list[Ev]) -> dict[tuple[str, str], dict[str, Any]]:
    names = {e.props["experiment"] for e in evs if e.event == "experiment_exposure"}
    out = {}
    for name in names:
        per: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
        for (app, _), v in exposures(evs, name).items():
            per[app].append(v)
        for app, vs in per.items():
            out[(name, app)] = {
                "variants": ", ".join(sorted({v for _, v in vs})), "exposed_users": len(vs),
                "first_exposure": min(t for t, _ in vs).date().isoformat(),
                "last_exposure": max(t for t, _ in vs).date().isoformat()}
    return out
