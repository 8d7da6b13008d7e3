-- Metric views v5: cheaper plans for the same columns and answers.
--
-- * jobs, activation's event side and feature_adoption read their AggregatingMergeTree
--   with FINAL (one row per key, streamed from sorted parts) instead of re-grouping it
--   in a hash table. As in 0012, an install reported to two projects under one app
--   counts once per project.
-- * retention takes each install's first day, last day and months from its days array
--   instead of unrolling every active day with ARRAY JOIN.
--
-- On 10M events, after maintenance (docs/performance.md): jobs 62-71 -> 35-40 ms,
-- feature_adoption 74-81 -> 61-63, activation 59-73 -> 54-62, retention 33-40 -> 31-38.

-- Users of a feature in the window: (app, feature, install) rows, one per key once
-- FINAL, whose map has uses on a day in it.
CREATE OR REPLACE VIEW metric_feature_adoption AS
SELECT f.feature AS feature, f.app AS app, f.f_users AS users, a.active_users AS active_users,
       round(f.f_users / a.active_users, 4) AS adoption_rate,
       f.f_uses AS uses, round(f.f_uses / f.f_users, 3) AS uses_per_user
FROM
(
    SELECT app, feature, countIf(n > 0) AS f_users, sum(n) AS f_uses
    FROM
    (
        SELECT app, feature,
               arraySum((d, c) -> if(d BETWEEN {since:Date} AND {until:Date}, c, 0),
                        mapKeys(uses), mapValues(uses)) AS n
        FROM agg_features_v2 FINAL
        WHERE last_day >= {since:Date} AND ({app:String} = '' OR app = {app:String})
    )
    GROUP BY app, feature
    HAVING f_users > 0
) AS f
INNER JOIN
(
    SELECT app, uniqExact(install_hash) AS active_users
    FROM agg_active_days_v2
    WHERE last_day >= {since:Date} AND ({app:String} = '' OR app = {app:String})
      AND arrayExists(d -> d BETWEEN {since:Date} AND {until:Date}, days)
    GROUP BY app
) AS a ON f.app = a.app
ORDER BY app, users DESC, feature;

-- The activation event's sessions, one row per key once FINAL; ANY keeps one match
-- per first session even if that session was also reported under a second project.
CREATE OR REPLACE VIEW metric_activation AS
SELECT toDate(f.first_start) AS day, f.app AS app,
       count() AS new_installs,
       countIf(e.n > 0) AS activated_installs,
       round(activated_installs / new_installs, 4) AS activation_rate
FROM
(
    SELECT app, install_hash, argMin(session_hash, first_ts) AS first_session,
           min(first_ts) AS first_start
    FROM agg_sessions
    WHERE {app:String} = '' OR app = {app:String}
    GROUP BY app, install_hash
    HAVING toDate(first_start) BETWEEN {since:Date} AND {until:Date}
) AS f
LEFT ANY JOIN
(
    SELECT app, install_hash, session_hash, n
    FROM agg_session_events_v2 FINAL
    WHERE event = (SELECT any(value) FROM metric_settings WHERE key = 'activation_event')
      AND ({app:String} = '' OR app = {app:String})
) AS e ON f.app = e.app AND f.install_hash = e.install_hash AND f.first_session = e.session_hash
GROUP BY day, app
ORDER BY day, app;

-- Same periods as 0011, over one row per install built from its days arrays.
CREATE OR REPLACE VIEW metric_retention AS
SELECT cohort, period, cohort_users, retained_users,
       round(retained_users / cohort_users, 4) AS rate,
       round(1 - retained_users / cohort_users, 4) AS churn_rate
FROM
(
    SELECT toStartOfMonth(first_day) AS cohort,
           if(k < 30, concat('month_', toString(k)), concat('day_', toString(k))) AS period,
           if(k < 30, k, 100 + k) AS ord,
           count() AS cohort_users,
           countIf(if(k < 30, has(months, m0 + k), last_day >= addDays(first_day, k)))
               AS retained_users
    FROM
    (
        SELECT install_hash, min(arrayMin(days)) AS first_day, max(arrayMax(days)) AS last_day,
               toRelativeMonthNum(first_day) AS m0,
               groupUniqArrayArray(arrayMap(d -> toRelativeMonthNum(d), days)) AS months
        FROM agg_active_days_v2
        WHERE notEmpty(days) AND ({app:String} = '' OR app = {app:String})
        GROUP BY install_hash
    )
    ARRAY JOIN [1, 2, 3, 6, 12, 30, 90] AS k
    WHERE if(k < 30, addMonths(toStartOfMonth(first_day), k + 1) <= addDays({until:Date}, 1),
             addDays(first_day, k) <= {until:Date})
      AND cohort BETWEEN toStartOfMonth({since:Date}) AND {until:Date}
    GROUP BY cohort, period, ord
)
ORDER BY cohort, ord;

-- Per job, over installs that first met the job between since and until: one
-- (app, job, install) row once FINAL; both surveys in one pass over agg_surveys.
CREATE OR REPLACE VIEW metric_jobs AS
SELECT j.job AS job, j.started_users AS started_users, j.completed_users AS completed_users,
       if(j.started_users > 0, round(j.completed_after_start / j.started_users, 4), NULL)
           AS completion_rate,
       j.median_s AS median_time_to_complete_s, j.repeat_users AS repeat_users,
       s.avg_satisfaction AS avg_satisfaction, s.avg_relevance AS avg_relevance
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
        SELECT job, starts AS n_starts, completions AS n_done, first_seen AS seen,
               first_completed AS done
        FROM agg_jobs FINAL
        WHERE ({app:String} = '' OR app = {app:String})
          AND toDate(first_seen) BETWEEN {since:Date} AND {until:Date}
    )
    GROUP BY job
) AS j
LEFT JOIN
(
    SELECT job,
           round(sumIf(score_sum, survey = 'job_satisfaction')
                 / nullIf(sumIf(responses, survey = 'job_satisfaction'), 0), 3) AS avg_satisfaction,
           round(sumIf(score_sum, survey = 'suggestion_relevance')
                 / nullIf(sumIf(responses, survey = 'suggestion_relevance'), 0), 3) AS avg_relevance
    FROM agg_surveys
    WHERE survey IN ('job_satisfaction', 'suggestion_relevance')
      AND day BETWEEN {since:Date} AND {until:Date}
      AND ({app:String} = '' OR app = {app:String})
    GROUP BY job
) AS s ON s.job = j.job
ORDER BY job
SETTINGS join_use_nulls = 1;
