"""``experiment``: per variant, the installs first exposed in the window and those that
reached the goal event within ``window`` after their first exposure, with the test of
each variant against the control and a sample-ratio-mismatch check.

Statistics come from the engine and a library, not from code of ours: ClickHouse's
``proportionsZTest`` gives the p-value (pooled standard error, the usual two-proportion
test) and the 95 % interval of the difference variant - control (unpooled); SciPy's
``chisquare`` tests the exposures against an even split (SRM), flagged below 0.001.

Built here, not as a view, because the name, goal and window are part of the query;
exposures come from ``agg_experiments`` (one row per install and variant), the goal
from ``events`` (any event can be a goal, at any time within the window). An install
reported to two projects under one app name counts once per project.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scipy.stats import chisquare

from quietly_collector.storage.store import Store

COLUMNS = ["variant", "exposed_users", "converted_users", "conversion_rate", "lift",
           "ci_low", "ci_high", "p_value", "srm_p_value", "srm_mismatch"]
CONTROL = "control"
SRM_ALPHA = 0.001  # as Microsoft's ExP and Optimizely flag a sample ratio mismatch

COUNTS = """
SELECT variant, count() AS exposed, countIf(converted) AS converted
FROM
(
    SELECT x.variant AS variant,
           arrayExists(t -> t >= x.first AND t <= x.first + toIntervalSecond({window:UInt64}),
                       g.goal_ts) AS converted
    FROM
    (
        SELECT app, project, install_hash, argMin(variant, first_ts) AS variant,
               min(first_ts) AS first
        FROM agg_experiments
        WHERE experiment = {name:String} AND ({app:String} = '' OR app = {app:String})
        GROUP BY app, project, install_hash
        HAVING toDate(first) BETWEEN {since:Date} AND {until:Date}
    ) AS x
    LEFT JOIN
    (
        SELECT app, project, install_hash, groupArray(ts) AS goal_ts
        FROM events
        WHERE event = {goal:String} AND ({app:String} = '' OR app = {app:String})
          AND ts >= toDateTime64({since:Date}, 3, 'UTC')
        GROUP BY app, project, install_hash
    ) AS g ON x.app = g.app AND x.project = g.project AND x.install_hash = g.install_hash
)
GROUP BY variant
ORDER BY variant
"""


def experiment(
    store: Store, params: dict[str, Any], name: str, goal: str, window_s: int,
    settings: dict[str, Any] | None = None, counts: str = COUNTS,
) -> tuple[list[str], list[Sequence[Any]]]:
    """``counts``: the per-variant query (bench/ passes one over the raw events)."""
    _, rows = store.query(counts, {**params, "name": name, "goal": goal, "window": window_s},
                          settings)
    per_variant = [(str(v), int(e), int(c)) for v, e, c in rows]
    return COLUMNS, list(results(store, per_variant))


def results(store: Store, counts: Sequence[tuple[str, int, int]]) -> list[list[Any]]:
    """The rows for (variant, exposed, converted) counts: the statistics of each variant
    against the control (``control``, else the first variant by name)."""
    if not counts:
        return []
    names = [v for v, _, _ in counts]
    control = CONTROL if CONTROL in names else min(names)
    _, ce, cc = next(c for c in counts if c[0] == control)
    others = [c for c in counts if c[0] != control]
    tests: dict[str, tuple[Any, ...]] = {}
    if others:
        _, got = store.query(
            "SELECT v.1, proportionsZTest(v.3, {cc:UInt64}, v.2, {ce:UInt64}, 0.95, 'pooled'),"
            " proportionsZTest(v.3, {cc:UInt64}, v.2, {ce:UInt64}, 0.95, 'unpooled')"
            " FROM (SELECT arrayJoin({v:Array(Tuple(String, UInt64, UInt64))}) AS v)",
            {"v": others, "cc": cc, "ce": ce},
        )
        tests = {str(r[0]): (r[1], r[2]) for r in got}
    srm = _srm([e for _, e, _ in counts])
    control_rate = cc / ce if ce else None
    out: list[list[Any]] = []
    for variant, exposed, converted in counts:
        rate = converted / exposed if exposed else None
        lift = ci_low = ci_high = p = None
        if variant in tests:
            pooled, unpooled = tests[variant]
            p = _num(_field(pooled, "p_value", 1))
            ci_low = _num(_field(unpooled, "confidence_interval_low", 2))
            ci_high = _num(_field(unpooled, "confidence_interval_high", 3))
            if rate is not None and control_rate:
                lift = round(rate / control_rate - 1, 4)
        out.append([variant, exposed, converted, None if rate is None else round(rate, 4),
                    lift, ci_low, ci_high, p, srm,
                    None if srm is None else srm < SRM_ALPHA])
    return out


def _srm(exposed: list[int]) -> float | None:
    if len(exposed) < 2 or sum(exposed) == 0:
        return None
    return _num(float(chisquare(exposed).pvalue))


def _field(result: Any, key: str, index: int) -> Any:
    # A named tuple arrives as a dict from chdb and as a tuple over HTTP.
    return result[key] if isinstance(result, dict) else result[index]


def _num(x: Any) -> float | None:
    if x is None or not math.isfinite(float(x)):
        return None
    return float(x)
