"""Who uses the simulated IDE, when and how: the plan behind ``quietly simulate``.

``plan_user(seed, index, days)`` is pure: the same arguments give the same events.
Times are seconds from the start of the window (``days`` times 24 h ending at the
run's "now"), so the event mix does not depend on the clock either; the runner
adds them to its start. Each user gets its own ``random.Random`` (seeded from
seed and index), so a thread pool can plan users in any order.

The shapes are chosen to fill every metric with plausible content: joins spread
over the window (retention cohorts, activation), churn, a few popular features
and a long tail (adoption, breadth), per-operation latency with outliers and
version effects (performance grades), crashes that end sessions, jobs that are
sometimes abandoned, skewed survey scores, deployments by some users, an onboarding
experiment with one effective variant, and builds that fail more on the oldest release.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from quietly_collector.commands.simulate_tables import (
    ACTION_CUM,
    ACTIONS,
    BUILD_KINDS,
    BUILD_SUCCESS,
    CRASH_PER_SESSION,
    CRASHES,
    ERRORS,
    EXPERIMENT,
    EXPLORER_SHARE,
    FEATURES,
    NPS_WEIGHTS,
    PERSONAS,
    RELEASES,
    SCREENS,
    TIMINGS,
    VERSION_SPEED,
)

DAY = 86_400.0
END_MARGIN = 120.0  # the last event lies this far before "now": never in the future
SESSION_GAP = 40 * 60.0  # > the SDK's 30-minute session timeout, so sessions stay apart
MAX_IDLE = 10 * 60.0  # < the timeout: a session never splits in the middle


# channel: (share, churn hazard factor): enterprise retains best, paid ads worst.
CHANNELS = {"beta": (0.08, 0.6), "launch_week": (0.12, 0.9), "organic": (0.4, 1.0),
            "paid_ads": (0.2, 1.8), "enterprise": (0.08, 0.35), "referral": (0.1, 0.8),
            "other": (0.02, 1.0)}
PAID_HAZARD = 0.7  # paying users churn less
UPGRADE_SHARE = 0.15  # free users who start paying after their second week

Event = tuple[float, str, dict[str, Any]]


@dataclass
class Segment:
    """Events tracked under one app version (a new Telemetry after an upgrade)."""

    version: str
    events: list[Event] = field(default_factory=list)


@dataclass
class UserPlan:
    consent: str
    segments: list[Segment]

    @property
    def events(self) -> int:
        return sum(len(s.events) for s in self.segments)


def plan_user(seed: int, index: int, days: int) -> UserPlan:
    rng = random.Random(f"quietly-simulate:{seed}:{index}")
    # Segments, and what issue 24 added (variant, builds), draw from streams of their
    # own, so the events planned before them stay the same for a seed.
    segs = random.Random(f"quietly-simulate-segments:{seed}:{index}")
    side = random.Random(f"quietly-simulate:{seed}:{index}:side")
    return _User(rng, days, segs, side).plan()


class _User:
    def __init__(self, rng: random.Random, days: int, segs: random.Random,
                 side: random.Random) -> None:
        self.rng, self.side = rng, side
        self.variant = side.choice(tuple(EXPLORER_SHARE))
        self.version = ""
        self.days = days
        names = list(CHANNELS)
        self.channel = segs.choices(names, [CHANNELS[n][0] for n in names])[0]
        enterprise = self.channel == "enterprise"
        self.plan_name = "enterprise" if enterprise else (
            "paid" if segs.random() < 0.3 else "free")
        self.team = "team" if segs.random() < (0.9 if enterprise else 0.25) else "individual"
        self.upgrade_day = segs.randint(14, 21) if (
            self.plan_name == "free" and segs.random() < UPGRADE_SHARE) else None
        self.hazard_factor = CHANNELS[self.channel][1] * (
            PAID_HAZARD if self.plan_name != "free" else 1.0)
        self.consent = "detailed" if rng.random() < 0.2 else "basic"
        names = list(PERSONAS)
        self.persona = rng.choices(names, [PERSONAS[n][0] for n in names])[0]
        # Two in five were around when telemetry started; the rest join later.
        late = days > 3 and rng.random() >= 0.4
        self.join = rng.randrange(3, days) if late else rng.randrange(min(3, days))
        self.speed = rng.lognormvariate(0, 0.25)  # slow and fast machines
        self.speedup: dict[str, float] = {}
        self.project_size = int(rng.lognormvariate(6, 1.1))  # files
        self.deployer = rng.random() < 0.4
        self.hour = rng.uniform(7, 11)
        # Each user favours some features and never discovers part of the long tail.
        favoured = {f: w * rng.lognormvariate(0, 0.8) for f, (w, _, _) in FEATURES.items()
                    if w >= 4 or rng.random() < 0.35}
        self.features = list(favoured)
        self.feature_cum = list(itertools.accumulate(favoured.values()))
        self.upgrades = self._upgrade_days()
        self.nps_days = {self.join + rng.randint(4, 9), self.join + rng.randint(20, 26)}
        self.onboarded = False
        # One in four looks around without using a feature at first (not activated);
        # most of them never come back.
        self.explorer = rng.random() < EXPLORER_SHARE[self.variant]

    def _upgrade_days(self) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        for version, frac in RELEASES:
            day = int(frac * self.days)
            if day <= self.join:  # installed then: mostly the newest release
                if not out or self.rng.random() < 0.85:
                    out = [(self.join, version)]
            elif self.rng.random() < 0.85:  # the rest never upgrade
                out.append((day + int(self.rng.expovariate(1 / 2.5)), version))
        return out

    def version_on(self, day: int) -> str:
        return [v for d, v in self.upgrades if d <= day][-1]

    def plan(self) -> UserPlan:
        segments: list[Segment] = []
        _, p_active, hazard = PERSONAS[self.persona]
        hazard *= self.hazard_factor
        for day in range(self.join, self.days):
            if day > self.join:
                gone = 0.6 if self.explorer else 0.15
                if self.rng.random() < hazard or (day == self.join + 1 and
                                                  self.rng.random() < gone):
                    break  # churned (many never come back after the first day)
                if self.rng.random() >= p_active:
                    continue
            version = self.version_on(day)
            if not segments or segments[-1].version != version:
                segments.append(Segment(version))
            self._day(day, segments[-1])
        for seg in segments:  # jobs and surveys were planned ahead of the actions
            seg.events.sort(key=lambda e: e[0])
        self._segments([s for s in segments if s.events])
        return UserPlan(self.consent, [s for s in segments if s.events])

    def _segments(self, segments: list[Segment]) -> None:
        """set_segments at the first event, and again when a free user starts paying."""
        if not segments:
            return
        first = segments[0].events[0][0]
        segments[0].events.insert(0, (first, "segments", {
            "channel": self.channel, "plan": self.plan_name, "team": self.team}))
        if self.upgrade_day is None:
            return
        at = first + self.upgrade_day * DAY
        for seg in segments:
            if seg.events[0][0] <= at <= seg.events[-1][0]:
                i = next(i for i, e in enumerate(seg.events) if e[0] >= at)
                seg.events.insert(i, (seg.events[i][0], "segments", {"plan": "paid"}))
                return

    def _day(self, day: int, seg: Segment) -> None:
        rng = self.rng
        start = day * DAY + (self.hour + rng.gauss(0, 1)) * 3600
        day_end = (day + 1) * DAY - END_MARGIN
        for n in range(rng.choices((1, 2, 3), (55, 30, 15))[0]):
            length = min(90.0, max(5.0, rng.lognormvariate(3.2, 0.6))) * 60
            if start < day * DAY or start + length > day_end:
                break
            nps = n == 0 and day in self.nps_days and rng.random() < 0.4
            end = self._session(start, start + length, seg, nps)
            start = end + SESSION_GAP + rng.expovariate(1 / 7200)

    def _session(self, t: float, end: float, seg: Segment, nps: bool) -> float:
        rng, out, version = self.rng, seg.events, seg.version
        explore = not self.onboarded and self.explorer
        self.speedup, self.version = VERSION_SPEED[version], version
        if not self.onboarded:  # the first session: the experiment's variant is shown
            out.append((t + 0.5, "experiment_exposure",
                        {"experiment": EXPERIMENT, "variant": self.variant}))
        out.append((t, "performance", {"operation": "startup",
                                       "duration_ms": self._timing("startup")}))
        out.append((t + 1, "screen_viewed", {"screen": "welcome" if not self.onboarded
                                             else "editor"}))
        jobs, job = self._jobs(t + 2, end)
        crash_at = end + 1
        if rng.random() < CRASH_PER_SESSION[version]:
            crash_at = rng.uniform(t + 60, end)
        used_autocomplete = False
        while True:
            t += min(MAX_IDLE, rng.expovariate(1 / 75))
            if t >= end:
                break
            if t >= crash_at:
                out.append((t, "crash", self._crash()))
                return t  # the app is gone: no job completion, no idle sample
            while jobs and jobs[0][0] <= t:
                out.append(jobs.pop(0))
            used_autocomplete |= self._action(t, out, explore)
        out.extend(jobs)  # steps and completion due by the session's end
        out.append((end, "performance", {"operation": "idle",
                                         "memory_mb": round(rng.gauss(380, 60) + self.project_size
                                                            ** 0.5, 1),
                                         "cpu_pct": round(rng.lognormvariate(-0.2, 0.7), 2)}))
        if nps:
            out.append((end + 1, "survey_response", {"survey": "nps", "score": self._nps()}))
        if job and used_autocomplete and rng.random() < 0.15:
            score = rng.choices(range(11), (1, 1, 1, 2, 3, 5, 8, 12, 14, 9, 5))[0]
            out.append((end + 2, "survey_response",
                        {"survey": "suggestion_relevance", "score": score, "job": job}))
        return end + 2

    def _action(self, t: float, out: list[Event], explore: bool) -> bool:
        rng = self.rng
        kind = rng.choices(ACTIONS, cum_weights=ACTION_CUM)[0]
        if kind == "feature" and explore:
            kind = "screen"
        if kind == "feature":
            name = rng.choices(self.features, cum_weights=self.feature_cum)[0]
            _, median, ok = FEATURES[name]
            props: dict[str, Any] = {
                "feature": name, "success": rng.random() < ok,
                "duration_ms": int(min(86_400_000, median * rng.lognormvariate(0, 0.8))),
                "project_size": self.project_size}
            out.append((t, "feature_used", props))
        elif kind == "screen":
            out.append((t, "screen_viewed", {"screen": rng.choice(SCREENS)}))
        elif kind == "error":
            err, code, message = rng.choice(ERRORS)
            out.append((t, "error", {"kind": err, "code": code, "message": message}))
        else:
            size = 1.0 if kind in ("file_open", "autocomplete") else (
                max(1, self.project_size) / 400) ** 0.3
            ms = self._timing(kind, size)
            out.append((t, "performance", {"operation": kind, "duration_ms": ms}))
            if kind == "build":
                out.append((t + 0.5, "build_finished", {
                    "success": self.side.random() < BUILD_SUCCESS[self.version],
                    "duration_ms": int(ms), "kind": self.side.choice(BUILD_KINDS)}))
        return kind == "autocomplete"

    def _timing(self, op: str, factor: float = 1.0) -> float:
        median, spread, slow = TIMINGS[op]
        factor *= self.speedup.get(op, 1.0) * self.speed
        ms = median * factor * self.rng.lognormvariate(0, spread)
        if self.rng.random() < slow:
            ms *= self.rng.uniform(4, 12)  # GC pauses, cold caches, huge files
        return round(ms, 1)

    def _jobs(self, t: float, end: float) -> tuple[list[Event], str | None]:
        """A job begun at the session's start, steps spread over it, maybe completed."""
        rng, span = self.rng, end - t
        if not self.onboarded:
            self.onboarded = True
            done = 0.3 if self.explorer else 0.8
            job, steps = "onboard", ["open_project", "configure", "first_run"]
        elif rng.random() < 0.22:
            job, steps, done = "fix_a_bug", ["reproduce", "debug", "test"], 0.8
        elif rng.random() < 0.15:
            job, steps, done = "ship_a_feature", ["design", "implement", "review"], 0.7
            if self.deployer:
                steps.append("deploy")
        else:
            deploy = self.deployer and rng.random() < 0.1
            return (self._deployments(t, end) if deploy else []), None
        outcome = rng.choices(("done", "failed", "abandoned"),
                              (done, (1 - done) * 0.4, (1 - done) * 0.6))[0]
        reached = len(steps) if outcome == "done" else rng.randint(1, len(steps))
        out: list[Event] = [(t, "job_started", {"job": job})]
        for i, step in enumerate(steps[:reached]):
            at = t + span * (i + 1) / (len(steps) + 1)
            out.append((at, "job_step", {"job": job, "step": step}))
            if step == "deploy":
                out.extend(self._deployments(at + 1, end - 2))
        if outcome != "abandoned":  # an abandoned job is never reported as completed
            success = outcome == "done"
            out.append((end - 1, "job_completed", {"job": job, "success": success}))
            if rng.random() < 0.2:
                score = rng.randint(7, 10) if success else rng.randint(1, 5)
                out.append((end - 0.5, "survey_response",
                            {"survey": "job_satisfaction", "score": score, "job": job}))
        return out, job

    def _deployments(self, t: float, end: float) -> list[Event]:
        out: list[Event] = []
        for env, median in (("staging", 45_000), ("production", 90_000)):
            ms = int(median * self.rng.lognormvariate(0, 0.5))
            ok = self.rng.random() < 0.92
            out.append((t, "deployment", {"environment": env, "success": ok, "duration_ms": ms}))
            t = min(end, t + ms / 1000)
            if not ok:
                break  # a failed staging deployment never reaches production
        return out

    def _nps(self) -> int:
        shift = {"core": 1, "regular": 0, "casual": -1}[self.persona]
        return max(0, min(10, self.rng.choices(range(11), NPS_WEIGHTS)[0] + shift))

    def _crash(self) -> dict[str, Any]:
        kind, message, path, func = self.rng.choice(CRASHES)
        line = self.rng.randint(40, 900)
        if kind.startswith("SIG"):  # a native crash: the crash handler's backtrace
            stack = f"{kind}: {message}\n  #0 {func} ({path}:{line})\n  #1 main (app.c:88)\n"
        else:
            stack = (f'Traceback (most recent call last):\n  File "{path}", line {line}, in'
                     f" {func}\n{kind}: {message}\n")
        return {"kind": kind, "message": message, "stack": stack}
