"""Alert rules: the shipped defaults, merging with the configured ones, validation.

A rule (``settings.AlertRule``, its shape in the TOML config) reads one metric view
over a window of UTC days, reduces its rows to one value per scope (app, and
``group_by`` columns), and compares it with a threshold: the value itself, or its
change against a previous window or the previous app version.
"""

from __future__ import annotations

import re

from quietly_collector.settings import AlertRule, Settings, SettingsError, seconds

AGGREGATES = ("sum", "per_day", "avg", "max", "min", "wavg", "ratio")
COMPARES = ("", "previous", "previous_version")
CHANGES = ("percent", "points")
OPS = (">", ">=", "<", "<=")
SEVERITIES = ("critical", "warning", "info")
_NAME = re.compile(r"[a-z0-9_]{1,64}")


def _perf(name: str, operation: str, measure: str, threshold: float, text: str) -> AlertRule:
    return AlertRule(
        name=name, metric="performance", column="p95_ms", op=">", threshold=threshold,
        where={"operation": operation, "measure": measure}, aggregate="max",
        samples="samples", min_samples=50, window="1d", for_="15m", severity="warning",
        description=text,
    )


# The issue #6 defaults. Values are fractions where the view has fractions.
DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule(name="crash_rate", metric="crash_rate", column="crashed_sessions",
              aggregate="ratio", per="sessions", samples="sessions", min_samples=100,
              op=">", threshold=0.01, window="1d", for_="10m", severity="critical",
              description="crashed sessions above 1% of sessions (today, UTC)"),
    AlertRule(name="dau_drop", metric="dau", column="users", aggregate="per_day",
              samples="users", min_samples=70, window="7d", complete_days=True,
              compare="previous", change="percent", op="<", threshold=-20,
              severity="critical",
              description="average DAU of the last 7 full days more than 20% below the"
              " 7 days before"),
    AlertRule(name="performance_regression", metric="performance", column="p95_ms",
              group_by=["operation", "measure"], aggregate="wavg", samples="samples",
              min_samples=50, window="14d", compare="previous_version", change="percent",
              op=">", threshold=20, for_="1h", severity="warning",
              description="p95 of an operation more than 20% above the previous app version"),
    AlertRule(name="performance_weekly", metric="performance", column="p95_ms",
              group_by=["operation", "measure"], aggregate="wavg", samples="samples",
              min_samples=50, window="7d", complete_days=True, compare="previous",
              change="percent", op=">", threshold=20, for_="1h", severity="warning",
              description="p95 of an operation more than 20% above the week before"),
    AlertRule(name="churn", metric="retention", column="churn_rate", where={"period": "day_30"},
              aggregate="wavg", samples="cohort_users", min_samples=50, window="90d",
              op=">", threshold=0.15, severity="warning",
              description="installs not seen again 30+ days after their first day, above"
              " 15% (cohorts of the last 90 days)"),
    AlertRule(name="nps_drop", metric="nps", column="nps", aggregate="wavg",
              samples="responses", min_samples=30, window="30d", compare="previous",
              change="points", op="<", threshold=-10, severity="warning",
              description="NPS of the last 30 days more than 10 points below the 30 before"),
    _perf("api_latency", "api_request", "duration_ms", 500, "p95 of api_request above 500 ms"),
    _perf("startup_slow", "startup", "duration_ms", 5000, "p95 of startup above 5 s"),
    _perf("idle_memory", "idle", "memory_mb", 1024, "p95 idle memory above 1 GB"),
    AlertRule(name="errors_per_session", metric="crash_rate", column="errors_per_session",
              aggregate="wavg", samples="sessions", min_samples=100, op=">", threshold=5,
              window="1d", for_="10m", severity="warning",
              description="errors per session above 5 (today, UTC)"),
)


def effective_rules(configured: list[AlertRule]) -> list[AlertRule]:
    """Defaults, replaced by name by configured rules; disabled rules dropped."""
    merged = {r.name: r for r in DEFAULT_RULES}
    for r in configured:
        merged[r.name] = r
    return [r for r in merged.values() if r.enabled]


def validate(rules: list[AlertRule], metric_names: tuple[str, ...]) -> None:
    """Raise ValueError naming the rule and the field."""
    seen: set[str] = set()
    for r in rules:
        where = f"alert_rules.{r.name}"
        if not _NAME.fullmatch(r.name):
            raise ValueError(f"{where}: name: lowercase letters, digits and _ only")
        if r.name in seen:
            raise ValueError(f"{where}: two rules have this name")
        seen.add(r.name)
        if r.metric not in metric_names or r.metric == "funnel":
            raise ValueError(f"{where}: metric: one of {', '.join(metric_names)} (not funnel)")
        for field, value, allowed in (("aggregate", r.aggregate, AGGREGATES),
                                      ("compare", r.compare, COMPARES),
                                      ("change", r.change, CHANGES), ("op", r.op, OPS),
                                      ("severity", r.severity, SEVERITIES)):
            if value not in allowed:
                raise ValueError(f"{where}: {field}: one of {', '.join(map(repr, allowed))}")
        if r.aggregate == "ratio" and not r.per:
            raise ValueError(f"{where}: aggregate 'ratio' needs per = <denominator column>")
        if r.aggregate == "wavg" and not r.samples:
            raise ValueError(f"{where}: aggregate 'wavg' needs samples = <weight column>")
        if r.min_samples < 0:
            raise ValueError(f"{where}: min_samples cannot be negative")
        for field in ("window", "for_"):
            try:
                seconds(getattr(r, field))
            except ValueError as exc:
                raise ValueError(f"{where}: {field.rstrip('_')}: {exc}") from None
        if seconds(r.window) < 86_400:
            raise ValueError(f"{where}: window: metrics are daily; at least 1d")


def check(s: Settings) -> None:
    """The configured rules, merged over the defaults, against the metric catalogue: a
    SettingsError naming the rule and the field. Run after loading the settings."""
    from quietly_collector.insights.metrics import METRICS

    try:
        validate(effective_rules(s.alert_rules), tuple(METRICS))
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
