"""``[targets]``: the KPI plan's defaults, schedules by quarter, and errors naming the key."""

from __future__ import annotations

import contextlib
import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from quietly_collector.commands.main import main
from quietly_collector.insights.report import target_plan
from quietly_collector.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def _by_key(configured: dict[str, Any]) -> dict[str, target_plan.Target]:
    return {t.key: t for t in target_plan.plan(configured)}


def test_defaults_are_the_kpi_plans() -> None:
    got = {k: (t.direction, t.value_at(date(2027, 2, 1)), t.value_at(date(2027, 11, 30)))
           for k, t in _by_key({}).items()}
    assert got == {
        "mau": ("at_least", None, None), "wau": ("at_least", None, None),
        "stickiness": ("at_least", 0.6, 0.6),
        "retention_30d": ("at_least", 0.4, 0.4), "retention_90d": ("at_least", 0.25, 0.25),
        "activation": ("at_least", 0.8, 0.8), "features_3plus": ("at_least", 0.6, 0.6),
        "churn_30d": ("at_most", 0.1, 0.1),
        "nps": ("at_least", 20, 50),  # 20 -> 50 over the year
        "crash_rate": ("at_most", 0.001, 0.001),
        "errors_per_session": ("at_most", 1, 1),
        "session_duration": ("at_least", 1800, 1800),
        "sessions_per_user_day": ("between", (2, 3), (2, 3)),
        "job_completion": ("between", (0.3, 0.6), (0.3, 0.6)),
        "job_satisfaction": ("at_least", 7, 7),
        "deployments": ("at_least", 10_000, 10_000),
    }
    assert [t.key for t in target_plan.plan({})] == [k.name for k in target_plan.KPIS]


def test_schedules_hold_until_the_next_quarter_and_shapes_merge_by_key(tmp_path: Path) -> None:
    config = tmp_path / "q.toml"
    config.write_text("""
[targets]
mau = { "2027-Q2" = 1000, "2027-Q4" = 4000 }
churn_30d = { at_most = 0.08 }
stickiness = { between = [0.5, 0.7] }
sessions_per_user_day = { Q3 = [1, 2] }
"job_completion.fix_a_bug" = [0.5, 0.9]
wau = false
""")
    plan = {t.key: t for t in target_plan.of(load_settings(config, env={}))}
    mau = plan["mau"]
    assert [mau.value_at(date(y, m, 1)) for y, m in
            ((2027, 3), (2027, 4), (2027, 9), (2027, 10), (2030, 1))] == [
        None, 1000, 1000, 4000, 4000]
    assert (plan["churn_30d"].direction, plan["churn_30d"].value_at(date(2027, 1, 1))) == (
        "at_most", 0.08)
    assert plan["stickiness"].direction == "between"
    spud = plan["sessions_per_user_day"]
    assert [spud.value_at(date(2026, m, 1)) for m in (6, 7, 12)] == [None, (1, 2), (1, 2)]
    assert "wau" not in plan
    assert plan["job_completion.fix_a_bug"].value_at(date(2027, 1, 1)) == (0.5, 0.9)
    assert plan["job_completion"].value_at(date(2027, 1, 1)) == (0.3, 0.6)  # still there
    keys = list(plan)
    assert keys.index("job_completion") < keys.index("job_completion.fix_a_bug") < keys.index(
        "job_satisfaction")


@pytest.mark.parametrize(("configured", "message"), [
    ({"retention": 0.4}, r"targets\.retention: not a KPI; one of mau, wau"),
    ({"retention_30d": 40}, r"targets\.retention_30d: expected 0 to 1 \(a rate is a fraction"),
    ({"nps": 120}, r"targets\.nps: expected -100 to 100"),
    ({"deployments": -5}, r"targets\.deployments: cannot be negative"),
    ({"crash_rate": "0.1%"}, r"targets\.crash_rate: expected a number, got '0\.1%'"),
    ({"activation": True}, r"targets\.activation: expected a number, got True"),
    ({"mau": {"2027-Q5": 1}}, r"targets\.mau\.2027-Q5: expected at_least, at_most, between"),
    ({"mau": {"Q1": 1, "2027-Q2": 2}}, r"targets\.mau: .*dated quarters .* or yearly"),
    ({"mau": {}}, r"targets\.mau: an empty schedule"),
    ({"nps": {"Q1": 20, "Q2": 300}}, r"targets\.nps\.Q2: expected -100 to 100"),
    ({"sessions_per_user_day": 2}, r"targets\.sessions_per_user_day: between takes \[low"),
    ({"stickiness": [0.7, 0.5]}, r"targets\.stickiness: .*low <= high"),
    ({"churn_30d": {"at_most": [0.1, 0.2]}}, r"targets\.churn_30d: a range .* not at_most"),
    ({"churn_30d": {"at_most": 0.1, "at_least": 0}}, r"targets\.churn_30d: one direction"),
    ({"mau.fix": 3}, r"targets\.mau\.fix: only job_completion and job_satisfaction"),
    ({"job_completion": {"fix_a_bug": [0.5, 0.9]}},
     r"targets\.job_completion\.fix_a_bug: .*quote the key"),
])
def test_bad_targets_name_the_key(configured: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        target_plan.plan(configured)


def test_a_bad_target_stops_the_cli_with_exit_code_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[targets]\nretention_30d = 40\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["query", "--list", "--config", str(config)]) == 2
    assert "targets.retention_30d" in err.getvalue()


def test_the_example_configs_targets_load() -> None:
    s = load_settings(ROOT / "deploy" / "quietly.example.toml", env={})
    plan = {t.key: t for t in target_plan.of(s)}
    assert plan["mau"].value_at(date(2027, 8, 1)) == 4000
