"""The metrics benchmark's raw equivalents of issue 24's metrics: SQL over ``events``
for the views (lifecycle, active_days, builds, experiments), and for paths and
experiment (built at query time, not views) the same Python over a per-session or
per-variant query of ``events`` in place of the one over their aggregate table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

APP = "({app:String} = '' OR app = {app:String})"
MONTHLY = "{period:String} = 'month'"
PERIOD = f"if({MONTHLY}, toStartOfMonth(toDate(ts)), toMonday(toDate(ts)))"
LOW = f"if({MONTHLY}, toStartOfMonth({{since:Date}}), toMonday({{since:Date}}))"
# The parameters the benchmark gives the query-time metrics.
PATH_START, PATH_STEPS, PATH_LIMIT = "session_start", 3, 10
EXPERIMENT, GOAL, WINDOW_S = "onboarding", "job_completed", 7 * 86_400

RAW_FLOWS: dict[str, str] = {
    "lifecycle": f"""
SELECT p AS period_start, app,
       countIf(active AND p = first) AS new,
       countIf(active AND p != first AND was) AS returning,
       countIf(active AND p != first AND NOT was) AS resurrecting,
       countIf(NOT active AND was) AS dormant,
       countIf(active) AS users
FROM
(
    SELECT app, p, ps[1] AS first, has(ps, p) AS active,
           has(ps, if({MONTHLY}, subtractMonths(p, 1), subtractWeeks(p, 1))) AS was
    FROM
    (
        SELECT app, install_hash, arraySort(groupUniqArray({PERIOD})) AS ps
        FROM events
        WHERE {APP}
        GROUP BY app, install_hash
        HAVING max(toDate(ts)) >= if({MONTHLY}, subtractMonths({LOW}, 1), subtractWeeks({LOW}, 1))
    )
    ARRAY JOIN arrayDistinct(arrayConcat(ps, arrayMap(
        x -> if({MONTHLY}, addMonths(x, 1), addWeeks(x, 1)), ps))) AS p
    WHERE p BETWEEN {LOW} AND {{until:Date}}
)
GROUP BY period_start, app
ORDER BY period_start, app""",
    "active_days": f"""
SELECT period_start, app, days_active, count() AS users
FROM
(
    SELECT app, install_hash, {PERIOD} AS period_start,
           toUInt8(uniqExact(toDate(ts))) AS days_active
    FROM events
    WHERE toDate(ts) >= {LOW} AND {PERIOD} <= {{until:Date}} AND {APP}
    GROUP BY app, install_hash, period_start
)
GROUP BY period_start, app, days_active
ORDER BY period_start, app, days_active""",
    "builds": f"""
SELECT toDate(ts) AS day, app, count() AS builds,
       countIf(JSONExtractRaw(props, 'success') = 'true') AS successful_builds,
       round(successful_builds / builds, 4) AS success_rate,
       if(countIf(JSONHas(props, 'duration_ms')) > 0,
          toFloat64(quantileExactIf(0.95)(toUInt32(JSONExtractUInt(props, 'duration_ms')),
                                          JSONHas(props, 'duration_ms'))), NULL)
           AS p95_duration_ms,
       uniqExact(install_hash) AS users
FROM events
WHERE event = 'build_finished' AND toDate(ts) BETWEEN {{since:Date}} AND {{until:Date}}
  AND {APP}
GROUP BY day, app
ORDER BY day, app""",
    "experiments": f"""
SELECT experiment, app, arrayStringConcat(arraySort(groupUniqArray(variant)), ', ') AS variants,
       count() AS exposed_users, toDate(min(first)) AS first_exposure,
       toDate(max(first)) AS last_exposure
FROM
(
    SELECT JSONExtractString(props, 'experiment') AS experiment, app, project, install_hash,
           argMin(JSONExtractString(props, 'variant'), ts) AS variant, min(ts) AS first
    FROM events
    WHERE event = 'experiment_exposure' AND {APP}
    GROUP BY experiment, app, project, install_hash
    HAVING toDate(first) BETWEEN {{since:Date}} AND {{until:Date}}
)
GROUP BY experiment, app
ORDER BY experiment, app""",
}


def _replaced(sql: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        if old not in sql:
            raise ValueError(f"the metric's query no longer holds {old!r}")
        sql = sql.replace(old, new)
    return sql


STEP = ("multiIf(event = 'feature_used', concat('feature_used:', JSONExtractString(props,"
        " 'feature')), event = 'screen_viewed', concat('screen_viewed:',"
        " JSONExtractString(props, 'screen')), event)")
def raw_sessions() -> str:
    """paths' per-session query, over the raw events."""
    from quietly_collector.insights import paths

    return _replaced(
        paths.SESSIONS,
        ("arraySort(steps)", f"arraySort(groupArrayIf((ts, {STEP}), event NOT IN"
                             " ('performance', 'session_end', 'experiment_exposure',"
                             " 'segments')))"),
        ("FROM agg_session_steps FINAL\n    WHERE ({app:String} = '' OR app = {app:String})\n"
         "      AND toDate(first_ts) BETWEEN {since:Date} AND {until:Date}",
         "FROM events\n    WHERE session_hash != 0 AND ({app:String} = '' OR app = {app:String})"
         "\n    GROUP BY app, project, install_hash, session_hash"
         "\n    HAVING toDate(min(ts)) BETWEEN {since:Date} AND {until:Date}"),
    )


def raw_counts() -> str:
    """experiment's per-variant counts, over the raw events."""
    from quietly_collector.insights import experiments

    return _replaced(
        experiments.COUNTS,
        ("argMin(variant, first_ts) AS variant", "argMin(JSONExtractString(props, 'variant'), ts)"
                                                 " AS variant"),
        ("min(first_ts) AS first", "min(ts) AS first"),
        ("FROM agg_experiments\n        WHERE experiment = {name:String}",
         "FROM events\n        WHERE event = 'experiment_exposure'"
         " AND JSONExtractString(props, 'experiment') = {name:String}"),
    )


Run = Callable[[], tuple[list[str], list[Any]]]


def query_time_runs(store: Any, metric: str, qp: dict[str, Any]) -> tuple[Run, Run]:
    """(the metric as quietly query runs it, the same over the raw events)."""
    from quietly_collector.insights import experiments, paths

    if metric == "paths":
        args = (PATH_START, "", PATH_STEPS, PATH_LIMIT)
        return (lambda: paths.paths(store, qp, *args),
                lambda: paths.paths(store, qp, *args, sessions=raw_sessions()))
    return (lambda: experiments.experiment(store, qp, EXPERIMENT, GOAL, WINDOW_S),
            lambda: experiments.experiment(store, qp, EXPERIMENT, GOAL, WINDOW_S,
                                           counts=raw_counts()))
