-- One parameterized view per metric (docs/metrics.md), read by `quietly query` and
-- GET /v1/metrics/<name>, and by engineers directly:
--   SELECT * FROM metric_dau(since = '2026-11-01', until = '2026-11-30', app = '')
-- since/until are inclusive days (UTC); app = '' means every app.

CREATE VIEW IF NOT EXISTS metric_dau AS
SELECT day, app, uniqExact(install_hash) AS users
FROM agg_install_day
WHERE day BETWEEN {since:Date} AND {until:Date} AND ({app:String} = '' OR app = {app:String})
GROUP BY day, app
ORDER BY day, app;

-- An install counts on day D if it was active on any of the 7 days ending on D.
-- Each install's sorted active days become +1 on the day it starts counting
-- (an active day, or 7 days after the previous one) and -1 on the day it stops (7
-- days after an active day); summed per app and running totals taken, that is the
-- number of distinct installs per day without repeating every active day 7 times.
CREATE VIEW IF NOT EXISTS metric_wau AS
SELECT day, app, toUInt64(arrayCumSum(s.2)[arrayLastIndex(k -> k <= day, s.1)]) AS users
FROM
(
    SELECT app,
           sumMap(arrayConcat(arrayMap((a, prev) -> greatest(a, addDays(prev, 7)), ds,
                                       arrayPushFront(arrayPopBack(ds), toDate('1970-01-01'))),
                              arrayMap(a -> addDays(a, 7), ds)),
                  arrayConcat(arrayWithConstant(length(ds), 1),
                              arrayWithConstant(length(ds), -1))) AS s
    FROM
    (
        SELECT app, install_hash, arrayDistinct(arraySort(groupArray(day))) AS ds
        FROM agg_install_day
        WHERE day BETWEEN subtractDays({since:Date}, 6) AND {until:Date}
          AND ({app:String} = '' OR app = {app:String})
        GROUP BY app, install_hash
    )
    GROUP BY app
)
ARRAY JOIN arrayMap(i -> addDays({since:Date}, i),
                    range(toUInt32(greatest(0, dateDiff('day', {since:Date}, {until:Date}) + 1))))
    AS day
WHERE users > 0
ORDER BY day, app;

-- As metric_wau, over 30 days.
CREATE VIEW IF NOT EXISTS metric_mau AS
SELECT day, app, toUInt64(arrayCumSum(s.2)[arrayLastIndex(k -> k <= day, s.1)]) AS users
FROM
(
    SELECT app,
           sumMap(arrayConcat(arrayMap((a, prev) -> greatest(a, addDays(prev, 30)), ds,
                                       arrayPushFront(arrayPopBack(ds), toDate('1970-01-01'))),
                              arrayMap(a -> addDays(a, 30), ds)),
                  arrayConcat(arrayWithConstant(length(ds), 1),
                              arrayWithConstant(length(ds), -1))) AS s
    FROM
    (
        SELECT app, install_hash, arrayDistinct(arraySort(groupArray(day))) AS ds
        FROM agg_install_day
        WHERE day BETWEEN subtractDays({since:Date}, 29) AND {until:Date}
          AND ({app:String} = '' OR app = {app:String})
        GROUP BY app, install_hash
    )
    GROUP BY app
)
ARRAY JOIN arrayMap(i -> addDays({since:Date}, i),
                    range(toUInt32(greatest(0, dateDiff('day', {since:Date}, {until:Date}) + 1))))
    AS day
WHERE users > 0
ORDER BY day, app;

CREATE VIEW IF NOT EXISTS metric_stickiness AS
SELECT d.day AS day, d.app AS app, d.users AS dau, m.users AS mau,
       round(d.users / m.users, 4) AS ratio
FROM metric_dau(since = {since:Date}, until = {until:Date}, app = {app:String}) AS d
INNER JOIN metric_mau(since = {since:Date}, until = {until:Date}, app = {app:String}) AS m
    ON d.day = m.day AND d.app = m.app
ORDER BY day, app;

CREATE VIEW IF NOT EXISTS metric_sessions AS
SELECT toDate(start) AS day, app,
       count() AS sessions,
       round(avg(if(s_ended_ms > 0, s_ended_ms / 1000, dateDiff('millisecond', start, stop) / 1000)), 3)
           AS avg_duration_s,
       round(count() / uniqExact(install_hash), 4) AS sessions_per_user,
       uniqExact(install_hash) AS users,
       round(avg(s_events), 3) AS events_per_session,
       round(avg(s_features), 3) AS features_per_session
FROM
(
    SELECT app, install_hash, session_hash, min(first_ts) AS start, max(last_ts) AS stop,
           sum(events) AS s_events, sum(features) AS s_features, max(ended_ms) AS s_ended_ms
    FROM agg_sessions
    WHERE {app:String} = '' OR app = {app:String}
    GROUP BY app, install_hash, session_hash
    HAVING toDate(start) BETWEEN {since:Date} AND {until:Date}
)
GROUP BY day, app
ORDER BY day, app;

CREATE VIEW IF NOT EXISTS metric_crash_rate AS
SELECT toDate(start) AS day, app,
       count() AS sessions,
       countIf(s_crashes > 0) AS crashed_sessions,
       sum(s_crashes) AS crashes,
       round(1000 * crashes / sessions, 3) AS crashes_per_1000_sessions,
       round(1 - crashed_sessions / sessions, 4) AS crash_free_sessions_rate,
       round(1 - uniqExactIf(install_hash, s_crashes > 0) / uniqExact(install_hash), 4)
           AS crash_free_users_rate,
       round(sum(s_errors) / sessions, 4) AS errors_per_session
FROM
(
    SELECT app, install_hash, session_hash, min(first_ts) AS start,
           sum(crashes) AS s_crashes, sum(errors) AS s_errors
    FROM agg_sessions
    WHERE {app:String} = '' OR app = {app:String}
    GROUP BY app, install_hash, session_hash
    HAVING toDate(start) BETWEEN {since:Date} AND {until:Date}
)
GROUP BY day, app
ORDER BY day, app;

CREATE VIEW IF NOT EXISTS metric_feature_adoption AS
SELECT f.feature AS feature, f.app AS app, f.f_users AS users, a.active_users AS active_users,
       round(f.f_users / a.active_users, 4) AS adoption_rate,
       f.f_uses AS uses, round(f.f_uses / f.f_users, 3) AS uses_per_user
FROM
(
    SELECT app, feature, uniqExact(install_hash) AS f_users, sum(uses) AS f_uses
    FROM agg_features
    WHERE day BETWEEN {since:Date} AND {until:Date} AND ({app:String} = '' OR app = {app:String})
    GROUP BY app, feature
) AS f
INNER JOIN
(
    SELECT app, uniqExact(install_hash) AS active_users
    FROM agg_install_day
    WHERE day BETWEEN {since:Date} AND {until:Date} AND ({app:String} = '' OR app = {app:String})
    GROUP BY app
) AS a ON f.app = a.app
ORDER BY app, users DESC, feature;

CREATE VIEW IF NOT EXISTS metric_feature_breadth AS
SELECT a.app AS app, a.active_users AS active_users, b.feature_users AS feature_users,
       b.users_3plus AS users_3plus_features,
       round(b.users_3plus / a.active_users, 4) AS rate_3plus_features
FROM
(
    SELECT app, uniqExact(install_hash) AS active_users
    FROM agg_install_day
    WHERE day BETWEEN {since:Date} AND {until:Date} AND ({app:String} = '' OR app = {app:String})
    GROUP BY app
) AS a
LEFT JOIN
(
    SELECT app, count() AS feature_users, countIf(n_features >= 3) AS users_3plus
    FROM
    (
        SELECT app, install_hash, uniqExact(feature) AS n_features
        FROM agg_features
        WHERE day BETWEEN {since:Date} AND {until:Date}
          AND ({app:String} = '' OR app = {app:String})
        GROUP BY app, install_hash
    )
    GROUP BY app
) AS b ON a.app = b.app
ORDER BY app;

CREATE VIEW IF NOT EXISTS metric_activation AS
SELECT toDate(f.first_start) AS day, f.app AS app,
       count() AS new_installs,
       countIf(e.n > 0) AS activated_installs,
       round(activated_installs / new_installs, 4) AS activation_rate
FROM
(
    -- agg_sessions has one row per session (not per session and event type), and
    -- the row with the earliest first_ts is the first session's.
    SELECT app, install_hash, argMin(session_hash, first_ts) AS first_session,
           min(first_ts) AS first_start
    FROM agg_sessions
    WHERE {app:String} = '' OR app = {app:String}
    GROUP BY app, install_hash
    HAVING toDate(first_start) BETWEEN {since:Date} AND {until:Date}
) AS f
LEFT JOIN
(
    SELECT app, install_hash, session_hash, sum(n) AS n
    FROM agg_session_events
    WHERE event = (SELECT any(value) FROM metric_settings WHERE key = 'activation_event')
      AND ({app:String} = '' OR app = {app:String})
    GROUP BY app, install_hash, session_hash
) AS e ON f.app = e.app AND f.install_hash = e.install_hash AND f.first_session = e.session_hash
GROUP BY day, app
ORDER BY day, app;

-- Monthly cohorts (an install's first active month) seen at months 1, 2, 3, 6, 12,
-- and 30/90-day retention (active again on or after day N); only periods that
-- have ended by `until` are shown.
CREATE VIEW IF NOT EXISTS metric_retention AS
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
        FROM
        (
            SELECT install_hash, min(day) AS first_day FROM agg_install_day
            WHERE {app:String} = '' OR app = {app:String} GROUP BY install_hash
        )
        GROUP BY cohort
    ) AS c
    CROSS JOIN (SELECT arrayJoin([1, 2, 3, 6, 12]) AS k) AS p
    LEFT JOIN
    (
        SELECT toStartOfMonth(f.first_day) AS cohort,
               toUInt8(dateDiff('month', toStartOfMonth(f.first_day), m.month)) AS k,
               count() AS retained
        FROM
        (
            SELECT install_hash, min(day) AS first_day FROM agg_install_day
            WHERE {app:String} = '' OR app = {app:String} GROUP BY install_hash
        ) AS f
        INNER JOIN
        (
            SELECT DISTINCT install_hash, toStartOfMonth(day) AS month FROM agg_install_day
            WHERE {app:String} = '' OR app = {app:String}
        ) AS m ON f.install_hash = m.install_hash
        GROUP BY cohort, k
    ) AS r ON r.cohort = c.cohort AND r.k = p.k
    WHERE addMonths(c.cohort, p.k + 1) <= addDays({until:Date}, 1)
      AND c.cohort BETWEEN toStartOfMonth({since:Date}) AND {until:Date}
    UNION ALL
    SELECT toStartOfMonth(first_day) AS cohort, concat('day_', toString(n_days)) AS period,
           100 + n_days AS ord,
           count() AS cohort_users, countIf(last_day >= addDays(first_day, n_days)) AS retained_users
    FROM
    (
        SELECT install_hash, min(day) AS first_day, max(day) AS last_day FROM agg_install_day
        WHERE {app:String} = '' OR app = {app:String} GROUP BY install_hash
    )
    ARRAY JOIN [30, 90] AS n_days
    WHERE addDays(first_day, n_days) <= {until:Date}
      AND cohort BETWEEN toStartOfMonth({since:Date}) AND {until:Date}
    GROUP BY cohort, n_days
)
ORDER BY cohort, ord;

-- Grades compare p95 with metric_thresholds (from configuration).
CREATE VIEW IF NOT EXISTS metric_performance AS
SELECT p.operation AS operation, p.measure AS measure,
       multiIf(p.measure = 'memory_mb', 'MB', p.measure = 'cpu_pct', '%', 'ms') AS unit,
       p.app_version AS app_version, p.n AS samples,
       round(p.q[1], 3) AS p50_ms, round(p.q[2], 3) AS p95_ms, round(p.q[3], 3) AS p99_ms,
       multiIf(t.operation = '', 'ungraded',
               p.q[2] < t.target, 'target',
               p.q[2] < t.good, 'good',
               p.q[2] < t.acceptable, 'acceptable',
               p.q[2] < t.unacceptable, 'poor',
               'unacceptable') AS grade
FROM
(
    SELECT operation, measure, app_version, sum(samples) AS n,
           quantilesTDigestMerge(0.5, 0.95, 0.99)(q) AS q
    FROM agg_performance
    WHERE day BETWEEN {since:Date} AND {until:Date} AND ({app:String} = '' OR app = {app:String})
    GROUP BY operation, measure, app_version
) AS p
LEFT JOIN metric_thresholds AS t ON t.operation = p.operation AND t.measure = p.measure
ORDER BY operation, measure, app_version;

-- Per job, over installs that first met the job between since and until.
CREATE VIEW IF NOT EXISTS metric_jobs AS
SELECT j.job AS job, j.started_users AS started_users, j.completed_users AS completed_users,
       if(j.started_users > 0, round(j.completed_after_start / j.started_users, 4), NULL)
           AS completion_rate,
       j.median_s AS median_time_to_complete_s, j.repeat_users AS repeat_users,
       s.avg_satisfaction AS avg_satisfaction, r.avg_relevance AS avg_relevance
FROM
(
    SELECT job,
           countIf(n_starts > 0) AS started_users,
           countIf(n_done > 0) AS completed_users,
           countIf(n_starts > 0 AND n_done > 0) AS completed_after_start,
           if(completed_users > 0,
              round(quantileExactIf(0.5)(dateDiff('millisecond', seen, done) / 1000, n_done > 0), 3),
              NULL) AS median_s,
           countIf(n_done >= 2) AS repeat_users
    FROM
    (
        SELECT job, install_hash, sum(starts) AS n_starts, sum(completions) AS n_done,
               min(first_seen) AS seen, min(first_completed) AS done
        FROM agg_jobs
        WHERE {app:String} = '' OR app = {app:String}
        GROUP BY job, install_hash
        HAVING toDate(seen) BETWEEN {since:Date} AND {until:Date}
    )
    GROUP BY job
) AS j
LEFT JOIN
(
    SELECT job, round(sum(score_sum) / sum(responses), 3) AS avg_satisfaction
    FROM agg_surveys
    WHERE survey = 'job_satisfaction' AND day BETWEEN {since:Date} AND {until:Date}
      AND ({app:String} = '' OR app = {app:String})
    GROUP BY job
) AS s ON s.job = j.job
LEFT JOIN
(
    SELECT job, round(sum(score_sum) / sum(responses), 3) AS avg_relevance
    FROM agg_surveys
    WHERE survey = 'suggestion_relevance' AND day BETWEEN {since:Date} AND {until:Date}
      AND ({app:String} = '' OR app = {app:String})
    GROUP BY job
) AS r ON r.job = j.job
ORDER BY job
SETTINGS join_use_nulls = 1;

CREATE VIEW IF NOT EXISTS metric_nps AS
SELECT period, n_responses AS responses, n_promoters AS promoters, n_detractors AS detractors,
       n_responses - n_promoters - n_detractors AS passives,
       round(100 * (n_promoters - n_detractors) / n_responses, 1) AS nps
FROM
(
    SELECT toStartOfMonth(day) AS period, sum(responses) AS n_responses,
           sum(promoters) AS n_promoters, sum(detractors) AS n_detractors
    FROM agg_surveys
    WHERE survey = 'nps' AND day BETWEEN {since:Date} AND {until:Date}
      AND ({app:String} = '' OR app = {app:String})
    GROUP BY period
)
ORDER BY period;

CREATE VIEW IF NOT EXISTS metric_deployments AS
WITH splitByChar(',', (SELECT any(value) FROM metric_settings WHERE key = 'production_environments'))
    AS production
SELECT toStartOfMonth(day) AS month, app,
       sumIf(successes, has(production, environment)) AS successful_production_deployments,
       sumIf(deployments, has(production, environment)) AS production_deployments,
       sum(deployments) AS all_deployments
FROM agg_deployments
WHERE day BETWEEN {since:Date} AND {until:Date} AND ({app:String} = '' OR app = {app:String})
GROUP BY month, app
ORDER BY month, app;
