"""The KPI plan's targets: the fixed KPI names, the shipped defaults, and ``[targets]``.

A target names a KPI, a direction (``at_least``, ``at_most``, ``between``) and a value,
or a schedule of values by quarter. The TOML shapes (docs/configuration.md#targets)::

    stickiness = 0.6                        # the KPI's own direction
    churn_30d = { at_most = 0.08 }          # a direction of one's own
    sessions_per_user_day = [2, 3]          # a list: between
    mau = { "2027-Q1" = 1000, "2027-Q2" = 2000 }   # dated quarters
    nps = { Q1 = 20, Q2 = 30, Q3 = 40, Q4 = 50 }   # the same quarters every year
    "job_completion.fix_a_bug" = [0.5, 0.9] # one job's own target
    wau = false                             # no such row

Settings keep the table as TOML gave it; ``check`` validates it after loading, as the
alert rules are (settings.py knows nothing of the KPIs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from quietly_collector.settings import Settings, SettingsError

DIRECTIONS = ("at_least", "at_most", "between")


@dataclass(frozen=True)
class Kpi:
    name: str
    label: str
    kind: str  # rate (a fraction) | count | score (NPS) | number | seconds
    direction: str  # the direction a bare value takes
    per_job: bool = False


KPIS: tuple[Kpi, ...] = (
    Kpi("mau", "Monthly active users", "count", "at_least"),
    Kpi("wau", "Weekly active users", "count", "at_least"),
    Kpi("stickiness", "Stickiness (DAU / MAU)", "rate", "at_least"),
    Kpi("retention_30d", "30-day retention", "rate", "at_least"),
    Kpi("retention_90d", "90-day retention", "rate", "at_least"),
    Kpi("activation", "Activation rate", "rate", "at_least"),
    Kpi("features_3plus", "Users of 3+ features", "rate", "at_least"),
    Kpi("churn_30d", "30-day churn", "rate", "at_most"),
    Kpi("nps", "Net promoter score", "score", "at_least"),
    Kpi("crash_rate", "Crashed sessions", "rate", "at_most"),
    Kpi("errors_per_session", "Errors per session", "number", "at_most"),
    Kpi("session_duration", "Average session", "seconds", "at_least"),
    Kpi("sessions_per_user_day", "Sessions per user a day", "number", "between"),
    Kpi("job_completion", "Job completion rate", "rate", "between", per_job=True),
    Kpi("job_satisfaction", "Job satisfaction", "number", "at_least", per_job=True),
    Kpi("deployments", "Production deployments (30 days)", "count", "at_least"),
)
KPI_BY_NAME = {k.name: k for k in KPIS}

# The KPI plan's targets, in the shapes a [targets] table takes. MAU and WAU have none:
# their numbers depend on the product, so they are listed with their current value and
# no target (status no_data) until one is configured. NPS climbs 20 -> 50 over each
# calendar year; a plan for a given year sets dated quarters instead.
DEFAULTS: dict[str, Any] = {
    "mau": None, "wau": None,
    "stickiness": 0.60, "retention_30d": 0.40, "retention_90d": 0.25, "activation": 0.80,
    "features_3plus": 0.60, "churn_30d": 0.10,
    "nps": {"Q1": 20, "Q2": 30, "Q3": 40, "Q4": 50},
    "crash_rate": 0.001, "errors_per_session": 1, "session_duration": 1800,
    "sessions_per_user_day": [2, 3], "job_completion": [0.3, 0.6], "job_satisfaction": 7,
    "deployments": 10_000,
}

Value = float | tuple[float, float]
_QUARTER = re.compile(r"(?:([0-9]{4})-)?Q([1-4])")
_JOB = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


@dataclass(frozen=True)
class Target:
    key: str  # as configured: "nps", "job_completion.fix_a_bug"
    kpi: Kpi
    direction: str
    # (year, quarter, value), ascending; year 0: every year; (0, 0, v): always v.
    steps: tuple[tuple[int, int, Value], ...]

    def value_at(self, day: date) -> Value | None:
        """The value in force on ``day``: the latest step at or before its quarter."""
        quarter = (day.month - 1) // 3 + 1
        found: Value | None = None
        for year, q, v in self.steps:
            if (q <= quarter) if year == 0 else ((year, q) <= (day.year, quarter)):
                found = v
        return found


def plan(configured: dict[str, Any]) -> list[Target]:
    """Defaults merged with ``[targets]`` by key, in the KPI plan's order; SettingsError
    naming the key when a key or value is wrong."""
    merged = {**DEFAULTS, **configured}
    out: list[Target] = []
    for key, raw in merged.items():
        name, _, job = key.partition(".")
        kpi = KPI_BY_NAME.get(name)
        where = f"targets.{key}"
        if kpi is None:
            raise SettingsError(f"{where}: not a KPI; one of {', '.join(KPI_BY_NAME)}")
        if job and not (kpi.per_job and _JOB.fullmatch(job)):
            raise SettingsError(
                f"{where}: only job_completion and job_satisfaction take a job"
                " ('job_completion.<job>', the job's name as sent)")
        target = _target(where, key, kpi, raw)
        if target is not None:
            out.append(target)
    order = {k.name: i for i, k in enumerate(KPIS)}
    out.sort(key=lambda t: (order[t.kpi.name], "." in t.key, t.key))
    return out


def of(s: Settings) -> list[Target]:
    return plan(s.targets)


def check(s: Settings) -> None:
    """Run after loading the settings, as alerts.rules.check is."""
    of(s)


def _target(where: str, key: str, kpi: Kpi, raw: Any) -> Target | None:
    if raw is False:
        return None
    if raw is None:  # a default without a value: listed, never judged
        return Target(key, kpi, kpi.direction, ())
    direction = ""
    if isinstance(raw, dict) and set(raw) & set(DIRECTIONS):
        if len(raw) != 1:
            raise SettingsError(f"{where}: one direction ({', '.join(DIRECTIONS)}) and its"
                                " value, e.g. { at_most = 0.1 }")
        direction, raw = next(iter(raw.items()))
    if isinstance(raw, dict):
        if not raw:
            raise SettingsError(f"{where}: an empty schedule; give quarters like"
                                ' { "2027-Q1" = 1000 } or { Q1 = 20 }')
        steps = [(*_quarter(f"{where}.{q}", q, kpi), f"{where}.{q}", v)
                 for q, v in raw.items()]
        if len({y == 0 for y, _, _, _ in steps}) > 1:
            raise SettingsError(f"{where}: a schedule has dated quarters (2027-Q1) or"
                                " yearly ones (Q1), not both")
    else:
        steps = [(0, 0, where, raw)]
    if not direction:
        # A list can only be a range: it says between, whatever the KPI's default.
        direction = "between" if isinstance(steps[0][3], list) else kpi.direction
    values = tuple(sorted((y, q, _value(w, kpi, direction, v)) for y, q, w, v in steps))
    return Target(key, kpi, direction, values)


def _quarter(where: str, text: str, kpi: Kpi) -> tuple[int, int]:
    m = _QUARTER.fullmatch(text)
    if not m:
        # Unquoted, TOML reads job_completion.fix_a_bug = ... as a table in job_completion.
        hint = (f' (one job\'s target: quote the key, "{kpi.name}.{text}" = ...)'
                if kpi.per_job else "")
        raise SettingsError(f"{where}: expected {', '.join(DIRECTIONS)}, or a schedule's"
                            f" quarter like 2027-Q1 (or Q1 for every year){hint}")
    return int(m.group(1) or 0), int(m.group(2))


def _value(where: str, kpi: Kpi, direction: str, v: Any) -> Value:
    if direction == "between":
        if not (isinstance(v, list) and len(v) == 2):
            raise SettingsError(f"{where}: between takes [low, high], got {v!r}")
        low, high = (_number(where, kpi, x) for x in v)
        if low > high:
            raise SettingsError(f"{where}: between takes [low, high] with low <= high")
        return (low, high)
    if isinstance(v, list):
        raise SettingsError(f"{where}: a range [low, high] goes with between, not {direction}")
    return _number(where, kpi, v)


def _number(where: str, kpi: Kpi, v: Any) -> float:
    # bool is an int to Python: `true` is no target.
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise SettingsError(f"{where}: expected a number, got {v!r} (false drops the KPI)")
    low, high = {"rate": (0.0, 1.0), "score": (-100.0, 100.0)}.get(kpi.kind, (0.0, None))
    if v < low or (high is not None and v > high):
        hint = (" (a rate is a fraction: 0.4 for 40 %)" if kpi.kind == "rate" else "")
        raise SettingsError(f"{where}: expected {low:g} to {high:g}{hint}, got {v!r}"
                            if high is not None else f"{where}: cannot be negative, got {v!r}")
    return float(v)
