"""The metrics benchmark's hand-written queries over the raw ``events`` table, one per
dashboard metric (``RAW``), returning the same rows as the metric's view, and
``view_sql``, the view as an engineer would query it."""

from __future__ import annotations

from bench.metrics_raw_flows import RAW_FLOWS

# -- the same metrics from the raw table ------------------------------------------------
#
# Each mirrors its view in migration 0006, reading `events` where the view reads an
# aggregate table, with the aggregate's expression (0004) in place of its column.

APP = "({app:String} = '' OR app = {app:String})"
DAY_IN = "toDate(ts) BETWEEN {since:Date} AND {until:Date}"


def _active(days_back: int, span: int) -> str:
    return f"""
SELECT addDays(d, off) AS day, app, uniqExact(install_hash) AS users
FROM
(
    SELECT DISTINCT toDate(ts) AS d, app, install_hash
    FROM events
    WHERE toDate(ts) BETWEEN subtractDays({{since:Date}}, {days_back}) AND {{until:Date}}
      AND {APP}
)
ARRAY JOIN range({span}) AS off
WHERE day BETWEEN {{since:Date}} AND {{until:Date}}
GROUP BY day, app
ORDER BY day, app"""


_DAU = f"""
SELECT toDate(ts) AS day, app, uniqExact(install_hash) AS users
FROM events
WHERE {DAY_IN} AND {APP}
GROUP BY day, app
ORDER BY day, app"""

_SESSION_GROUP = f"""
    FROM events
    WHERE session_hash != 0 AND {APP}
    GROUP BY app, install_hash, session_hash
    HAVING toDate(start) BETWEEN {{since:Date}} AND {{until:Date}}"""

_ACTIVE_USERS = f"""
    SELECT app, uniqExact(install_hash) AS active_users
    FROM events
    WHERE {DAY_IN} AND {APP}
    GROUP BY app"""

_FIRST_DAYS = f"""
            SELECT install_hash, min(toDate(ts)) AS first_day FROM events
            WHERE {APP} GROUP BY install_hash"""

def _survey_avg(name: str, survey: str) -> str:
    return f"""
    SELECT JSONExtractString(props, 'job') AS job,
           round(sum(JSONExtractUInt(props, 'score')) / count(), 3) AS {name}
    FROM events
    WHERE event = 'survey_response' AND JSONHas(props, 'score')
      AND JSONExtractString(props, 'survey') = '{survey}' AND {DAY_IN} AND {APP}
    GROUP BY job"""


_JOB_DONE = "event = 'job_completed' AND JSONExtractRaw(props, 'success') != 'false'"

RAW: dict[str, str] = {
    "dau": _DAU,
    "wau": _active(6, 7),
    "mau": _active(29, 30),
    "stickiness": f"""
SELECT d.day AS day, d.app AS app, d.users AS dau, m.users AS mau,
       round(d.users / m.users, 4) AS ratio
FROM ({_DAU}) AS d
INNER JOIN ({_active(29, 30)}) AS m ON d.day = m.day AND d.app = m.app
ORDER BY day, app""",
    "sessions": f"""
SELECT toDate(start) AS day, app,
       count() AS sessions,
       round(avg(if(s_ended_ms > 0, s_ended_ms / 1000,
                    dateDiff('millisecond', start, stop) / 1000)), 3) AS avg_duration_s,
       round(count() / uniqExact(install_hash), 4) AS sessions_per_user,
       uniqExact(install_hash) AS users,
       round(avg(s_events), 3) AS events_per_session,
       round(avg(s_features), 3) AS features_per_session
FROM
(
    SELECT app, install_hash, session_hash, min(ts) AS start, max(ts) AS stop,
           count() AS s_events, countIf(event = 'feature_used') AS s_features,
           maxIf(JSONExtractUInt(props, 'duration_ms'), event = 'session_end') AS s_ended_ms
    {_SESSION_GROUP}
)
GROUP BY day, app
ORDER BY day, app""",
    "feature_adoption": f"""
SELECT f.feature AS feature, f.app AS app, f.f_users AS users, a.active_users AS active_users,
       round(f.f_users / a.active_users, 4) AS adoption_rate,
       f.f_uses AS uses, round(f.f_uses / f.f_users, 3) AS uses_per_user
FROM
(
    SELECT app, JSONExtractString(props, 'feature') AS feature,
           uniqExact(install_hash) AS f_users, count() AS f_uses
    FROM events
    WHERE event = 'feature_used' AND {DAY_IN} AND {APP}
    GROUP BY app, feature
) AS f
INNER JOIN ({_ACTIVE_USERS}) AS a ON f.app = a.app
ORDER BY app, users DESC, feature""",
    "feature_breadth": f"""
SELECT a.app AS app, a.active_users AS active_users, b.feature_users AS feature_users,
       b.users_3plus AS users_3plus_features,
       round(b.users_3plus / a.active_users, 4) AS rate_3plus_features
FROM ({_ACTIVE_USERS}) AS a
LEFT JOIN
(
    SELECT app, count() AS feature_users, countIf(n_features >= 3) AS users_3plus
    FROM
    (
        SELECT app, install_hash, uniqExact(JSONExtractString(props, 'feature')) AS n_features
        FROM events
        WHERE event = 'feature_used' AND {DAY_IN} AND {APP}
        GROUP BY app, install_hash
    )
    GROUP BY app
) AS b ON a.app = b.app
ORDER BY app""",
    "activation": f"""
SELECT toDate(f.first_start) AS day, f.app AS app,
       count() AS new_installs,
       countIf(e.n > 0) AS activated_installs,
       round(activated_installs / new_installs, 4) AS activation_rate
FROM
(
    SELECT app, install_hash, argMin(session_hash, start) AS first_session,
           min(start) AS first_start
    FROM
    (
        SELECT app, install_hash, session_hash, min(ts) AS start
        FROM events
        WHERE session_hash != 0 AND {APP}
        GROUP BY app, install_hash, session_hash
    )
    GROUP BY app, install_hash
    HAVING toDate(first_start) BETWEEN {{since:Date}} AND {{until:Date}}
) AS f
LEFT JOIN
(
    SELECT app, install_hash, session_hash, count() AS n
    FROM events
    WHERE session_hash != 0
      AND event = (SELECT any(value) FROM metric_settings WHERE key = 'activation_event')
      AND {APP}
    GROUP BY app, install_hash, session_hash
) AS e ON f.app = e.app AND f.install_hash = e.install_hash AND f.first_session = e.session_hash
GROUP BY day, app
ORDER BY day, app""",
    "retention": f"""
SELECT cohort, period, cohort_users, retained_users,
       round(retained_users / cohort_users, 4) AS rate,
       round(1 - retained_users / cohort_users, 4) AS churn_rate
FROM
(
    SELECT c.cohort AS cohort, concat('month_', toString(p.k)) AS period, p.k AS ord,
           c.n AS cohort_users, r.retained AS retained_users
    FROM
    (
        SELECT toStartOfMonth(first_day) AS cohort, count() AS n
        FROM ({_FIRST_DAYS})
        GROUP BY cohort
    ) AS c
    CROSS JOIN (SELECT arrayJoin([1, 2, 3, 6, 12]) AS k) AS p
    LEFT JOIN
    (
        SELECT toStartOfMonth(f.first_day) AS cohort,
               toUInt8(dateDiff('month', toStartOfMonth(f.first_day), m.month)) AS k,
               count() AS retained
        FROM ({_FIRST_DAYS}) AS f
        INNER JOIN
        (
            SELECT DISTINCT install_hash, toStartOfMonth(toDate(ts)) AS month FROM events
            WHERE {APP}
        ) AS m ON f.install_hash = m.install_hash
        GROUP BY cohort, k
    ) AS r ON r.cohort = c.cohort AND r.k = p.k
    WHERE addMonths(c.cohort, p.k + 1) <= addDays({{until:Date}}, 1)
      AND c.cohort BETWEEN toStartOfMonth({{since:Date}}) AND {{until:Date}}
    UNION ALL
    SELECT toStartOfMonth(first_day) AS cohort, concat('day_', toString(n_days)) AS period,
           100 + n_days AS ord,
           count() AS cohort_users,
           countIf(last_day >= addDays(first_day, n_days)) AS retained_users
    FROM
    (
        SELECT install_hash, min(toDate(ts)) AS first_day, max(toDate(ts)) AS last_day
        FROM events WHERE {APP} GROUP BY install_hash
    )
    ARRAY JOIN [30, 90] AS n_days
    WHERE addDays(first_day, n_days) <= {{until:Date}}
      AND cohort BETWEEN toStartOfMonth({{since:Date}}) AND {{until:Date}}
    GROUP BY cohort, n_days
)
ORDER BY cohort, ord""",
    "crash_rate": f"""
SELECT toDate(start) AS day, app,
       count() AS sessions,
       countIf(s_crashes > 0) AS crashed_sessions,
       sum(s_crashes) AS crashes,
       round(1000 * crashes / sessions, 3) AS crashes_per_1000_sessions,
       round(1 - crashed_sessions / sessions, 4) AS crash_free_sessions_rate,
       uniqExact(install_hash) AS users,
       round(1 - uniqExactIf(install_hash, s_crashes > 0) / users, 4) AS crash_free_users_rate,
       round(sum(s_errors) / sessions, 4) AS errors_per_session
FROM
(
    SELECT app, install_hash, session_hash, min(ts) AS start,
           countIf(event = 'crash') AS s_crashes, countIf(event = 'error') AS s_errors
    {_SESSION_GROUP}
)
GROUP BY day, app
ORDER BY day, app""",
    "performance": f"""
SELECT p.operation AS operation, p.measure AS measure,
       multiIf(p.measure = 'memory_mb', 'MB', p.measure = 'cpu_pct', '%', 'ms') AS unit,
       p.app_version AS app_version, p.n AS samples, p.installs AS installs,
       round(p.q[1], 3) AS p50_ms, round(p.q[2], 3) AS p95_ms, round(p.q[3], 3) AS p99_ms,
       multiIf(t.operation = '', 'ungraded',
               p.q[2] < t.target, 'target',
               p.q[2] < t.good, 'good',
               p.q[2] < t.acceptable, 'acceptable',
               p.q[2] < t.unacceptable, 'poor',
               'unacceptable') AS grade
FROM
(
    SELECT JSONExtractString(props, 'operation') AS operation, m.1 AS measure, app_version,
           count() AS n, uniqExact(install_hash) AS installs,
           quantilesTDigest(0.5, 0.95, 0.99)(m.2) AS q
    FROM events
    ARRAY JOIN arrayFilter(
        x -> JSONHas(props, x.1),
        [('duration_ms', JSONExtractFloat(props, 'duration_ms')),
         ('memory_mb', JSONExtractFloat(props, 'memory_mb')),
         ('cpu_pct', JSONExtractFloat(props, 'cpu_pct'))]
    ) AS m
    WHERE event = 'performance' AND {DAY_IN} AND {APP}
    GROUP BY operation, measure, app_version
) AS p
LEFT JOIN metric_thresholds AS t ON t.operation = p.operation AND t.measure = p.measure
ORDER BY operation, measure, app_version""",
    "jobs": f"""
SELECT j.job AS job, j.users AS users, j.started_users AS started_users,
       j.completed_users AS completed_users,
       if(j.started_users > 0, round(j.completed_after_start / j.started_users, 4), NULL)
           AS completion_rate,
       j.median_s AS median_time_to_complete_s, j.repeat_users AS repeat_users,
       s.avg_satisfaction AS avg_satisfaction, r.avg_relevance AS avg_relevance
FROM
(
    SELECT job,
           count() AS users,
           countIf(n_starts > 0) AS started_users,
           countIf(n_done > 0) AS completed_users,
           countIf(n_starts > 0 AND n_done > 0) AS completed_after_start,
           if(completed_users > 0,
              round(quantileExactIf(0.5)(dateDiff('millisecond', seen, done) / 1000,
                                         n_done > 0), 3),
              NULL) AS median_s,
           countIf(n_done >= 2) AS repeat_users
    FROM
    (
        SELECT JSONExtractString(props, 'job') AS job, install_hash,
               countIf(event = 'job_started') AS n_starts,
               countIf({_JOB_DONE}) AS n_done,
               min(ts) AS seen, minIf(ts, {_JOB_DONE}) AS done
        FROM events
        WHERE event IN ('job_started', 'job_step', 'job_completed') AND {APP}
        GROUP BY job, install_hash
        HAVING toDate(seen) BETWEEN {{since:Date}} AND {{until:Date}}
    )
    GROUP BY job
) AS j
LEFT JOIN ({_survey_avg("avg_satisfaction", "job_satisfaction")}) AS s
    ON s.job = j.job
LEFT JOIN ({_survey_avg("avg_relevance", "suggestion_relevance")}) AS r
    ON r.job = j.job
ORDER BY job
SETTINGS join_use_nulls = 1""",
    "nps": f"""
SELECT period, n_respondents AS respondents, n_responses AS responses,
       n_promoters AS promoters, n_detractors AS detractors,
       n_responses - n_promoters - n_detractors AS passives,
       round(100 * (n_promoters - n_detractors) / n_responses, 1) AS nps
FROM
(
    SELECT toStartOfMonth(toDate(ts)) AS period, uniqExact(install_hash) AS n_respondents,
           count() AS n_responses,
           countIf(JSONExtractUInt(props, 'score') >= 9) AS n_promoters,
           countIf(JSONExtractUInt(props, 'score') <= 6) AS n_detractors
    FROM events
    WHERE event = 'survey_response' AND JSONHas(props, 'score')
      AND JSONExtractString(props, 'survey') = 'nps' AND {DAY_IN} AND {APP}
    GROUP BY period
)
ORDER BY period""",
    "deployments": f"""
WITH splitByChar(',', (SELECT any(value) FROM metric_settings
                       WHERE key = 'production_environments')) AS production
SELECT toStartOfMonth(toDate(ts)) AS month, app,
       countIf(has(production, JSONExtractString(props, 'environment'))
               AND JSONExtractRaw(props, 'success') = 'true') AS successful_production_deployments,
       countIf(has(production, JSONExtractString(props, 'environment')))
           AS production_deployments,
       count() AS all_deployments,
       uniqExact(install_hash) AS installs
FROM events
WHERE event = 'deployment' AND {DAY_IN} AND {APP}
GROUP BY month, app
ORDER BY month, app""",
}


RAW.update(RAW_FLOWS)


# Views that read the raw events table themselves (no aggregate behind them).
RAW_VIEWS = ("delivery",)


# Views with a period parameter (metrics.PERIOD_VIEWS; not imported: the benchmark's
# parent process loads no collector code).
PERIOD_VIEWS = ("lifecycle", "active_days")


def view_sql(metric: str) -> str:
    period = ", period = {period:String}" if metric in PERIOD_VIEWS else ""
    return (f"SELECT * FROM metric_{metric}(since = {{since:Date}}, until = {{until:Date}},"
            f" app = {{app:String}}{period})")
