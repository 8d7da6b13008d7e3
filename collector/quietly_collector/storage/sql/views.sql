-- The current definition of every metric view, applied after the numbered migrations
-- on every start and every `quietly migrate` (CREATE OR REPLACE: idempotent). The
-- numbered migrations hold tables and materialized views only; change a view here.
-- Each metric is written once, as metric_<name>_by: parameters since, until (Date,
-- inclusive), app ('' for every app), by (up to two segment names: columns seg1,
-- seg2; [] for none) and where ('segment=value' filters; [] for none). Two views are
-- derived from it (storage/views.py says how, and the conventions this file keeps for
-- them): the plain metric_<name>(since, until, app), without the join to the segments,
-- and metric_<name>_by_segment(since, until, app, by), joining metric_install_segment
-- for one segment other than tenure. See docs/metrics.md, "Segments".

-- Each install's value of one segment, for the commonest breakdown: one `by` other
-- than tenure, no `where`. Declared segments keep their first or latest value
-- (metric_settings 'fixed_segments' lists the first-value ones). It reads that
-- segment's rows alone, so an install that never reported it is absent and the views
-- show it as unknown (g.matched = 0). FINAL merges each install's rows as they are
-- read, in key order, which costs a third of merging them with GROUP BY. The
-- metric_<name>_by_segment views join it (storage/views.py).
CREATE OR REPLACE VIEW metric_install_segment AS
WITH (SELECT splitByChar(',', any(value)) FROM metric_settings WHERE key = 'fixed_segments')
        AS fixed,
     has(fixed, {by:Array(String)}[1]) AS first_kept,
     -- A scalar, so that it is checked before any row is read.
     (SELECT throwIf(length({by:Array(String)}) != 1 OR {by:Array(String)}[1] = 'tenure',
                     'a _by_segment view takes one segment other than tenure: use metric_<name>_by')) AS misused
SELECT project, app, install_hash, if(v = '', 'unknown', v) AS seg1, '' AS seg2,
       toUInt8(1) AS matched
FROM
(
    SELECT project, app, install_hash,
           if(first_kept, finalizeAggregation(first_value),
              finalizeAggregation(latest_value)) AS v
    FROM agg_install_segments FINAL
    WHERE misused = 0 AND segment = {by:Array(String)}[1]
);

-- Each install's values of the segments of `by` and `where`, for every breakdown: the
-- platform rows, which every install has, bring every install in, for tenure (new
-- while the install's first day is under new_install_days before `until`), filters
-- and two segments. An install that never reported a segment has it as unknown.
CREATE OR REPLACE VIEW metric_install_segments AS
WITH (SELECT splitByChar(',', any(value)) FROM metric_settings WHERE key = 'fixed_segments')
        AS fixed,
     (SELECT toUInt32OrZero(any(value)) FROM metric_settings WHERE key = 'new_install_days')
        AS new_days,
     arrayMap(w -> splitByChar('=', w)[1], {where:Array(String)}) AS where_segments,
     arrayDistinct(arrayConcat({by:Array(String)}, where_segments)) AS wanted
SELECT project, app, install_hash,
       if(empty({by:Array(String)}), '', segs[{by:Array(String)}[1]]) AS seg1,
       if(length({by:Array(String)}) < 2, '', segs[{by:Array(String)}[2]]) AS seg2,
       toUInt8(1) AS matched
FROM
(
    SELECT project, app, install_hash,
           mapUpdate(mapUpdate(mapFromArrays(wanted, arrayWithConstant(length(wanted), 'unknown')),
                               mapFromArrays(groupArray(segment), groupArray(value))),
                     map('tenure', if(min(fd) > subtractDays({until:Date}, new_days), 'new',
                                      'experienced'))) AS segs
    FROM
    (
        SELECT project, app, install_hash, segment,
               if(has(fixed, segment), finalizeAggregation(first_value),
                  finalizeAggregation(latest_value)) AS v,
               if(v = '', 'unknown', v) AS value, first_day AS fd
        FROM agg_install_segments FINAL
        WHERE notEmpty(wanted) AND (has(wanted, segment) OR segment = 'platform')
    )
    GROUP BY project, app, install_hash
)
WHERE arrayAll(k -> has({where:Array(String)}, concat(k, '=', segs[k])), where_segments);

-- An install's active days, already one row per (app, install, project) once FINAL.
CREATE OR REPLACE VIEW metric_dau_by AS
SELECT day, app, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2, count() AS users
FROM agg_active_days_v2 AS t FINAL
ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                       where = {where:Array(String)}) AS g
    USING (project, app, install_hash)
ARRAY JOIN days AS day
WHERE last_day >= {since:Date} AND day BETWEEN {since:Date} AND {until:Date}
  AND ({app:String} = '' OR app = {app:String}) AND (empty({where:Array(String)}) OR g.matched = 1)
GROUP BY day, app, seg1, seg2
ORDER BY day, app, seg1, seg2;

-- Each install's active days become the intervals [day, day + 7) they make it count
-- in; a running sum over interval starts and ends gives every day's users in one
-- pass over one row per install (FINAL).
CREATE OR REPLACE VIEW metric_wau_by AS
SELECT day, app, seg1, seg2, toUInt64(arrayCumSum(s.2)[arrayLastIndex(k -> k <= day, s.1)]) AS users
FROM
(
    SELECT app, seg1, seg2,
           sumMap(arrayConcat(starts, ends),
                  arrayConcat(arrayWithConstant(length(starts), 1),
                              arrayWithConstant(length(ends), -1))) AS s
    FROM
    (
        SELECT app, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2,
               arraySort(arrayFilter(d -> d BETWEEN subtractDays({since:Date}, 6) AND {until:Date},
                                     days)) AS ds,
               arrayFilter((a, prev) -> a > addDays(prev, 7), ds,
                           arrayPushFront(arrayPopBack(ds), toDate('1970-01-01'))) AS starts,
               arrayMap(a -> addDays(a, 7),
                        arrayFilter((a, next) -> next > addDays(a, 7), ds,
                                    arrayPushBack(arrayPopFront(ds), toDate('2149-06-06')))) AS ends
        FROM agg_active_days_v2 AS t FINAL
        ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                               where = {where:Array(String)}) AS g
            USING (project, app, install_hash)
        WHERE last_day >= subtractDays({since:Date}, 6)
          AND ({app:String} = '' OR app = {app:String})
          AND length(ds) > 0 AND (empty({where:Array(String)}) OR g.matched = 1)
    )
    GROUP BY app, seg1, seg2
)
ARRAY JOIN arrayMap(i -> addDays({since:Date}, i),
                    range(toUInt32(greatest(0, dateDiff('day', {since:Date}, {until:Date}) + 1))))
    AS day
WHERE users > 0
ORDER BY day, app, seg1, seg2;

-- As metric_wau, with 30-day intervals.
CREATE OR REPLACE VIEW metric_mau_by AS
SELECT day, app, seg1, seg2, toUInt64(arrayCumSum(s.2)[arrayLastIndex(k -> k <= day, s.1)]) AS users
FROM
(
    SELECT app, seg1, seg2,
           sumMap(arrayConcat(starts, ends),
                  arrayConcat(arrayWithConstant(length(starts), 1),
                              arrayWithConstant(length(ends), -1))) AS s
    FROM
    (
        SELECT app, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2,
               arraySort(arrayFilter(d -> d BETWEEN subtractDays({since:Date}, 29) AND {until:Date},
                                     days)) AS ds,
               arrayFilter((a, prev) -> a > addDays(prev, 30), ds,
                           arrayPushFront(arrayPopBack(ds), toDate('1970-01-01'))) AS starts,
               arrayMap(a -> addDays(a, 30),
                        arrayFilter((a, next) -> next > addDays(a, 30), ds,
                                    arrayPushBack(arrayPopFront(ds), toDate('2149-06-06')))) AS ends
        FROM agg_active_days_v2 AS t FINAL
        ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                               where = {where:Array(String)}) AS g
            USING (project, app, install_hash)
        WHERE last_day >= subtractDays({since:Date}, 29)
          AND ({app:String} = '' OR app = {app:String})
          AND length(ds) > 0 AND (empty({where:Array(String)}) OR g.matched = 1)
    )
    GROUP BY app, seg1, seg2
)
ARRAY JOIN arrayMap(i -> addDays({since:Date}, i),
                    range(toUInt32(greatest(0, dateDiff('day', {since:Date}, {until:Date}) + 1))))
    AS day
WHERE users > 0
ORDER BY day, app, seg1, seg2;

CREATE OR REPLACE VIEW metric_stickiness_by AS
SELECT d.day AS day, d.app AS app, d.seg1 AS seg1, d.seg2 AS seg2, d.users AS dau,
       m.users AS mau, round(d.users / m.users, 4) AS ratio
FROM metric_dau_by(since = {since:Date}, until = {until:Date}, app = {app:String},
                by = {by:Array(String)}, where = {where:Array(String)}) AS d
INNER JOIN metric_mau_by(since = {since:Date}, until = {until:Date}, app = {app:String},
                      by = {by:Array(String)}, where = {where:Array(String)}) AS m
    ON d.day = m.day AND d.app = m.app AND d.seg1 = m.seg1 AND d.seg2 = m.seg2
ORDER BY day, app, seg1, seg2;

CREATE OR REPLACE VIEW metric_sessions_by AS
SELECT toDate(first_ts) AS day, app, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2,
       count() AS sessions,
       round(avg(if(ended_ms > 0, ended_ms / 1000, dateDiff('millisecond', first_ts, last_ts) / 1000)), 3)
           AS avg_duration_s,
       round(count() / uniqExact(install_hash), 4) AS sessions_per_user,
       uniqExact(install_hash) AS users,
       round(avg(events), 3) AS events_per_session,
       round(avg(features), 3) AS features_per_session
FROM agg_sessions AS t FINAL
ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                       where = {where:Array(String)}) AS g
    USING (project, app, install_hash)
WHERE toDate(first_ts) BETWEEN {since:Date} AND {until:Date}
  AND ({app:String} = '' OR app = {app:String}) AND (empty({where:Array(String)}) OR g.matched = 1)
GROUP BY day, app, seg1, seg2
ORDER BY day, app, seg1, seg2;

-- Users of a feature in the window: (app, feature, install) rows, one per key once
-- FINAL, whose map has uses on a day in it.
CREATE OR REPLACE VIEW metric_feature_adoption_by AS
SELECT f.feature AS feature, f.app AS app, f.seg1 AS seg1, f.seg2 AS seg2, f.f_users AS users,
       a.active_users AS active_users, round(f.f_users / a.active_users, 4) AS adoption_rate,
       f.f_uses AS uses, round(f.f_uses / f.f_users, 3) AS uses_per_user
FROM
(
    SELECT app, feature, seg1, seg2, countIf(n > 0) AS f_users, sum(n) AS f_uses
    FROM
    (
        SELECT app, feature, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2,
               arraySum((d, c) -> if(d BETWEEN {since:Date} AND {until:Date}, c, 0),
                        mapKeys(uses), mapValues(uses)) AS n
        FROM agg_features_v2 AS t FINAL
        ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                               where = {where:Array(String)}) AS g
            USING (project, app, install_hash)
        WHERE last_day >= {since:Date} AND ({app:String} = '' OR app = {app:String}) AND (empty({where:Array(String)}) OR g.matched = 1)
    )
    GROUP BY app, feature, seg1, seg2
    HAVING f_users > 0
) AS f
INNER JOIN
(
    SELECT app, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2, uniqExact(install_hash) AS active_users
    FROM agg_active_days_v2 AS t
    ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                           where = {where:Array(String)}) AS g
        USING (project, app, install_hash)
    WHERE last_day >= {since:Date} AND ({app:String} = '' OR app = {app:String})
      AND arrayExists(d -> d BETWEEN {since:Date} AND {until:Date}, days) AND (empty({where:Array(String)}) OR g.matched = 1)
    GROUP BY app, seg1, seg2
) AS a ON f.app = a.app AND f.seg1 = a.seg1 AND f.seg2 = a.seg2
ORDER BY app, seg1, seg2, users DESC, feature;

-- Distinct features per install counted by their 64-bit hash (a set of strings
-- cost twice as much; 20-odd feature names do not collide), and "used in the
-- window" tested with arrayExists instead of summing the window's uses.
CREATE OR REPLACE VIEW metric_feature_breadth_by AS
SELECT a.app AS app, a.seg1 AS seg1, a.seg2 AS seg2, a.active_users AS active_users,
       b.feature_users AS feature_users, b.users_3plus AS users_3plus_features,
       round(b.users_3plus / a.active_users, 4) AS rate_3plus_features
FROM
(
    SELECT app, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2, uniqExact(install_hash) AS active_users
    FROM agg_active_days_v2 AS t
    ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                           where = {where:Array(String)}) AS g
        USING (project, app, install_hash)
    WHERE last_day >= {since:Date} AND ({app:String} = '' OR app = {app:String})
      AND arrayExists(d -> d BETWEEN {since:Date} AND {until:Date}, days) AND (empty({where:Array(String)}) OR g.matched = 1)
    GROUP BY app, seg1, seg2
) AS a
LEFT JOIN
(
    SELECT app, seg1, seg2, count() AS feature_users, countIf(n_features >= 3) AS users_3plus
    FROM
    (
        SELECT app, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2, install_hash, uniqExact(cityHash64(feature)) AS n_features
        FROM agg_features_v2 AS t
        ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                               where = {where:Array(String)}) AS g
            USING (project, app, install_hash)
        WHERE last_day >= {since:Date} AND ({app:String} = '' OR app = {app:String})
          AND arrayExists(d -> d BETWEEN {since:Date} AND {until:Date}, mapKeys(uses)) AND (empty({where:Array(String)}) OR g.matched = 1)
        GROUP BY app, seg1, seg2, install_hash
    )
    GROUP BY app, seg1, seg2
) AS b ON a.app = b.app AND a.seg1 = b.seg1 AND a.seg2 = b.seg2
ORDER BY app, seg1, seg2;

-- The activation event's sessions, one row per key once FINAL; ANY keeps one match
-- per first session even if that session was also reported under a second project.
-- Each install's first session is found before its segments are joined: one probe
-- per new install, not one per session.
CREATE OR REPLACE VIEW metric_activation_by AS
SELECT toDate(f.first_start) AS day, f.app AS app, f.seg1 AS seg1, f.seg2 AS seg2,
       count() AS new_installs,
       countIf(e.n > 0) AS activated_installs,
       round(activated_installs / new_installs, 4) AS activation_rate
FROM
(
    SELECT app, install_hash, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2,
           first_session, first_start
    FROM
    (
        SELECT any(project) AS project, app, install_hash,
               argMin(session_hash, first_ts) AS first_session, min(first_ts) AS first_start
        FROM agg_sessions
        WHERE ({app:String} = '' OR app = {app:String})
        GROUP BY app, install_hash
        HAVING toDate(first_start) BETWEEN {since:Date} AND {until:Date}
    ) AS t
    ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                           where = {where:Array(String)}) AS g
        USING (project, app, install_hash)
    WHERE empty({where:Array(String)}) OR g.matched = 1
) AS f
LEFT ANY JOIN
(
    SELECT app, install_hash, session_hash, n
    FROM agg_session_events_v2 FINAL
    WHERE event = (SELECT any(value) FROM metric_settings WHERE key = 'activation_event')
      AND ({app:String} = '' OR app = {app:String})
) AS e ON f.app = e.app AND f.install_hash = e.install_hash AND f.first_session = e.session_hash
GROUP BY day, app, seg1, seg2
ORDER BY day, app, seg1, seg2
-- The new installs (f) are the smaller side: build the hash table from them. The
-- planner picks that alone only while f holds no join (3.5x slower with segments).
-- It applies where the view's SELECT is run, as quietly query runs it; a SELECT *
-- FROM the view is answered alike, without it.
SETTINGS query_plan_join_swap_table = 'true';

-- Monthly cohorts (months 1, 2, 3, 6, 12) and 30/90-day retention and churn, over one
-- row per install built from its days arrays.
CREATE OR REPLACE VIEW metric_retention_by AS
SELECT cohort, period, seg1, seg2, cohort_users, retained_users,
       round(retained_users / cohort_users, 4) AS rate,
       round(1 - retained_users / cohort_users, 4) AS churn_rate
FROM
(
    SELECT toStartOfMonth(first_day) AS cohort,
           if(k < 30, concat('month_', toString(k)), concat('day_', toString(k))) AS period,
           if(k < 30, k, 100 + k) AS ord, seg1, seg2,
           count() AS cohort_users,
           countIf(if(k < 30, has(months, m0 + k), last_day >= addDays(first_day, k)))
               AS retained_users
    FROM
    (
        SELECT install_hash, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2, min(arrayMin(days)) AS first_day,
               max(arrayMax(days)) AS last_day, toRelativeMonthNum(first_day) AS m0,
               groupUniqArrayArray(arrayMap(d -> toRelativeMonthNum(d), days)) AS months
        FROM agg_active_days_v2 AS t
        ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                               where = {where:Array(String)}) AS g
            USING (project, app, install_hash)
        WHERE notEmpty(days) AND ({app:String} = '' OR app = {app:String}) AND (empty({where:Array(String)}) OR g.matched = 1)
        GROUP BY install_hash, seg1, seg2
    )
    ARRAY JOIN [1, 2, 3, 6, 12, 30, 90] AS k
    WHERE if(k < 30, addMonths(toStartOfMonth(first_day), k + 1) <= addDays({until:Date}, 1),
             addDays(first_day, k) <= {until:Date})
      AND cohort BETWEEN toStartOfMonth({since:Date}) AND {until:Date}
    GROUP BY cohort, period, ord, seg1, seg2
)
ORDER BY cohort, ord, seg1, seg2;

CREATE OR REPLACE VIEW metric_crash_rate_by AS
SELECT toDate(start) AS day, app, seg1, seg2,
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
    -- Renamed, so the crashes column cannot be confused with the crashes result.
    SELECT app, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2, install_hash, first_ts AS start, crashes AS s_crashes,
           errors AS s_errors
    FROM agg_sessions AS t FINAL
    ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                           where = {where:Array(String)}) AS g
        USING (project, app, install_hash)
    WHERE toDate(first_ts) BETWEEN {since:Date} AND {until:Date}
      AND ({app:String} = '' OR app = {app:String}) AND (empty({where:Array(String)}) OR g.matched = 1)
)
GROUP BY day, app, seg1, seg2
ORDER BY day, app, seg1, seg2;

-- Without segments, the rollup (no installs, one digest per app version and day);
-- with a breakdown or a filter, the per-install digests joined to their segments.
-- Each branch's condition is a constant, so only one of them reads.
CREATE OR REPLACE VIEW metric_performance_by AS
SELECT p.operation AS operation, p.measure AS measure,
       multiIf(p.measure = 'memory_mb', 'MB', p.measure = 'cpu_pct', '%', 'ms') AS unit,
       p.app_version AS app_version, p.seg1 AS seg1, p.seg2 AS seg2, p.n AS samples,
       p.installs AS installs,
       round(p.q[1], 3) AS p50_ms, round(p.q[2], 3) AS p95_ms, round(p.q[3], 3) AS p99_ms,
       multiIf(t.operation = '', 'ungraded',
               p.q[2] < t.target, 'target',
               p.q[2] < t.good, 'good',
               p.q[2] < t.acceptable, 'acceptable',
               p.q[2] < t.unacceptable, 'poor',
               'unacceptable') AS grade
FROM
(
    SELECT toString(operation) AS operation, toString(measure) AS measure,
           toString(app_version) AS app_version, '' AS seg1, '' AS seg2, sum(samples) AS n,
           uniqMerge(installs) AS installs, quantilesTDigestMerge(0.5, 0.95, 0.99)(q) AS q
    FROM agg_performance_rollup_v2
    WHERE day BETWEEN {since:Date} AND {until:Date} AND ({app:String} = '' OR app = {app:String})
      AND empty({by:Array(String)}) AND empty({where:Array(String)})
    GROUP BY operation, measure, app_version
    UNION ALL
    SELECT toString(operation) AS operation, toString(measure) AS measure,
           toString(app_version) AS app_version, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2, sum(samples) AS n,
           uniqExact(install_hash) AS installs, quantilesTDigestMerge(0.5, 0.95, 0.99)(q) AS q
    FROM agg_performance AS t
    ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                           where = {where:Array(String)}) AS g
        USING (project, app, install_hash)
    WHERE day BETWEEN {since:Date} AND {until:Date} AND ({app:String} = '' OR app = {app:String})
      AND (notEmpty({by:Array(String)}) OR notEmpty({where:Array(String)})) AND (empty({where:Array(String)}) OR g.matched = 1)
    GROUP BY operation, measure, app_version, seg1, seg2
) AS p
LEFT JOIN metric_thresholds AS t ON t.operation = p.operation AND t.measure = p.measure
ORDER BY operation, measure, app_version, seg1, seg2;

-- Per job, over installs that first met the job between since and until: one
-- (app, job, install) row once FINAL; both surveys in one pass over agg_surveys.
CREATE OR REPLACE VIEW metric_jobs_by AS
SELECT j.job AS job, j.seg1 AS seg1, j.seg2 AS seg2, j.users AS users,
       j.started_users AS started_users, j.completed_users AS completed_users,
       if(j.started_users > 0, round(j.completed_after_start / j.started_users, 4), NULL)
           AS completion_rate,
       j.median_s AS median_time_to_complete_s, j.repeat_users AS repeat_users,
       s.avg_satisfaction AS avg_satisfaction, s.avg_relevance AS avg_relevance
FROM
(
    SELECT job, seg1, seg2,
           count() AS users,
           countIf(n_starts > 0) AS started_users,
           countIf(n_done > 0) AS completed_users,
           countIf(n_starts > 0 AND n_done > 0) AS completed_after_start,
           if(completed_users > 0,
              round(quantileExactIf(0.5)(dateDiff('millisecond', seen, done) / 1000, n_done > 0), 3),
              NULL) AS median_s,
           countIf(n_done >= 2) AS repeat_users
    FROM
    (
        SELECT job, ifNull(if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown'), '') AS seg1, ifNull(g.seg2, '') AS seg2, starts AS n_starts,
               completions AS n_done, first_seen AS seen, first_completed AS done
        FROM agg_jobs AS t FINAL
        ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                               where = {where:Array(String)}) AS g
            USING (project, app, install_hash)
        WHERE ({app:String} = '' OR app = {app:String})
          AND toDate(first_seen) BETWEEN {since:Date} AND {until:Date} AND (empty({where:Array(String)}) OR g.matched = 1)
    )
    GROUP BY job, seg1, seg2
) AS j
LEFT JOIN
(
    SELECT job, ifNull(if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown'), '') AS seg1, ifNull(g.seg2, '') AS seg2,
           round(sumIf(score_sum, survey = 'job_satisfaction')
                 / nullIf(sumIf(responses, survey = 'job_satisfaction'), 0), 3) AS avg_satisfaction,
           round(sumIf(score_sum, survey = 'suggestion_relevance')
                 / nullIf(sumIf(responses, survey = 'suggestion_relevance'), 0), 3) AS avg_relevance
    FROM agg_surveys AS t
    ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                           where = {where:Array(String)}) AS g
        USING (project, app, install_hash)
    WHERE survey IN ('job_satisfaction', 'suggestion_relevance')
      AND day BETWEEN {since:Date} AND {until:Date}
      AND ({app:String} = '' OR app = {app:String}) AND (empty({where:Array(String)}) OR g.matched = 1)
    GROUP BY job, seg1, seg2
) AS s ON s.job = j.job AND s.seg1 = j.seg1 AND s.seg2 = j.seg2
ORDER BY job, seg1, seg2
SETTINGS join_use_nulls = 1;

CREATE OR REPLACE VIEW metric_nps_by AS
SELECT period, seg1, seg2, n_respondents AS respondents, n_responses AS responses,
       n_promoters AS promoters, n_detractors AS detractors,
       n_responses - n_promoters - n_detractors AS passives,
       round(100 * (n_promoters - n_detractors) / n_responses, 1) AS nps
FROM
(
    SELECT toStartOfMonth(day) AS period, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2,
           uniqExactIf(install_hash, responses > 0) AS n_respondents,
           sum(responses) AS n_responses, sum(promoters) AS n_promoters,
           sum(detractors) AS n_detractors
    FROM agg_surveys AS t
    ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                           where = {where:Array(String)}) AS g
        USING (project, app, install_hash)
    WHERE survey = 'nps' AND day BETWEEN {since:Date} AND {until:Date}
      AND ({app:String} = '' OR app = {app:String}) AND (empty({where:Array(String)}) OR g.matched = 1)
    GROUP BY period, seg1, seg2
)
ORDER BY period, seg1, seg2;

CREATE OR REPLACE VIEW metric_deployments_by AS
WITH splitByChar(',', (SELECT any(value) FROM metric_settings WHERE key = 'production_environments'))
    AS production
SELECT toStartOfMonth(day) AS month, app, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2,
       sumIf(successes, has(production, environment)) AS successful_production_deployments,
       sumIf(deployments, has(production, environment)) AS production_deployments,
       sum(deployments) AS all_deployments,
       uniqExact(install_hash) AS installs
FROM agg_deployments AS t
ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                       where = {where:Array(String)}) AS g
    USING (project, app, install_hash)
WHERE day BETWEEN {since:Date} AND {until:Date} AND ({app:String} = '' OR app = {app:String})
  AND (empty({where:Array(String)}) OR g.matched = 1)
GROUP BY month, app, seg1, seg2
ORDER BY month, app, seg1, seg2;

-- PostHog's lifecycle per ISO week (Monday) or calendar month ({period:String}:
-- 'week' or 'month'; the collector checks it): per install its active periods, then
-- for every period it was active in, or the one after (dormant), its status. Periods
-- are whole: every period starting from the one holding `since` up to `until`.
-- An install's first period comes from all its history, so `new` is exact.
CREATE OR REPLACE VIEW metric_lifecycle_by AS
SELECT p AS period_start, app, seg1, seg2,
       countIf(active AND p = first) AS new,
       countIf(active AND p != first AND was) AS returning,
       countIf(active AND p != first AND NOT was) AS resurrecting,
       countIf(NOT active AND was) AS dormant,
       countIf(active) AS users
FROM
(
    SELECT app, seg1, seg2, p, ps[1] AS first, has(ps, p) AS active,
           has(ps, if({period:String} = 'month', subtractMonths(p, 1), subtractWeeks(p, 1))) AS was
    FROM
    (
        SELECT app, install_hash, any(if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown')) AS seg1, any(g.seg2) AS seg2,
               arraySort(arrayDistinct(arrayMap(
                   d -> if({period:String} = 'month', toStartOfMonth(d), toMonday(d)),
                   groupUniqArrayArray(days)))) AS ps
        FROM agg_active_days_v2 AS t
        ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                               where = {where:Array(String)}) AS g
            USING (project, app, install_hash)
        WHERE ({app:String} = '' OR app = {app:String}) AND (empty({where:Array(String)}) OR g.matched = 1)
        GROUP BY app, install_hash
        HAVING max(last_day) >= if({period:String} = 'month',
                                   subtractMonths(toStartOfMonth({since:Date}), 1),
                                   subtractWeeks(toMonday({since:Date}), 1))
    )
    ARRAY JOIN arrayDistinct(arrayConcat(ps, arrayMap(
        x -> if({period:String} = 'month', addMonths(x, 1), addWeeks(x, 1)), ps))) AS p
    WHERE p BETWEEN if({period:String} = 'month', toStartOfMonth({since:Date}), toMonday({since:Date}))
                AND {until:Date}
)
GROUP BY period_start, app, seg1, seg2
ORDER BY period_start, app, seg1, seg2;

-- Stickiness as a histogram: installs by the number of distinct days they were active
-- in each week (1-7) or month (1-31), whole periods as in metric_lifecycle.
CREATE OR REPLACE VIEW metric_active_days_by AS
SELECT period_start, app, seg1, seg2, days_active, count() AS users
FROM
(
    SELECT app, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2, install_hash, if({period:String} = 'month', toStartOfMonth(d), toMonday(d)) AS period_start,
           toUInt8(uniqExact(d)) AS days_active
    FROM agg_active_days_v2 AS t
    ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                           where = {where:Array(String)}) AS g
        USING (project, app, install_hash)
    ARRAY JOIN days AS d
    WHERE last_day >= if({period:String} = 'month', toStartOfMonth({since:Date}), toMonday({since:Date}))
      AND ({app:String} = '' OR app = {app:String}) AND (empty({where:Array(String)}) OR g.matched = 1)
      AND d >= if({period:String} = 'month', toStartOfMonth({since:Date}), toMonday({since:Date}))
      AND if({period:String} = 'month', toStartOfMonth(d), toMonday(d)) <= {until:Date}
    GROUP BY app, seg1, seg2, install_hash, period_start
)
GROUP BY period_start, app, seg1, seg2, days_active
ORDER BY period_start, app, seg1, seg2, days_active;

-- build_finished per day: success rate and the exact p95 of the durations sent.
CREATE OR REPLACE VIEW metric_builds_by AS
SELECT day, app, if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown') AS seg1, g.seg2 AS seg2, sum(builds) AS builds, sum(successes) AS successful_builds,
       round(successful_builds / builds, 4) AS success_rate,
       if(sum(length(durations)) > 0, toFloat64(quantileExactArray(0.95)(durations)), NULL)
           AS p95_duration_ms,
       uniqExact(install_hash) AS users
FROM agg_builds AS t
ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                       where = {where:Array(String)}) AS g
    USING (project, app, install_hash)
WHERE day BETWEEN {since:Date} AND {until:Date} AND ({app:String} = '' OR app = {app:String})
  AND (empty({where:Array(String)}) OR g.matched = 1)
GROUP BY day, app, seg1, seg2
ORDER BY day, app, seg1, seg2;

-- Running experiments: those with installs first exposed between since and until
-- (an install counts in the variant of its first exposure, once per project).
CREATE OR REPLACE VIEW metric_experiments_by AS
SELECT experiment, app, seg1, seg2, arrayStringConcat(arraySort(groupUniqArray(variant)), ', ') AS variants,
       count() AS exposed_users, toDate(min(first)) AS first_exposure,
       toDate(max(first)) AS last_exposure
FROM
(
    SELECT experiment, app, project, install_hash, any(if(g.matched = 1 OR empty({by:Array(String)}), g.seg1, 'unknown')) AS seg1, any(g.seg2) AS seg2,
           argMin(variant, first_ts) AS variant, min(first_ts) AS first
    FROM agg_experiments AS t
    ANY LEFT JOIN metric_install_segments(until = {until:Date}, by = {by:Array(String)},
                                           where = {where:Array(String)}) AS g
        USING (project, app, install_hash)
    WHERE ({app:String} = '' OR app = {app:String}) AND (empty({where:Array(String)}) OR g.matched = 1)
    GROUP BY experiment, app, project, install_hash
    HAVING toDate(first) BETWEEN {since:Date} AND {until:Date}
)
GROUP BY experiment, app, seg1, seg2
ORDER BY experiment, app, seg1, seg2;

-- The loss account, per day and app: what SDKs reported dropping before sending
-- (client_report events, by reason), what the collector refused (rejected_events, by
-- kind of reason) and what it stored (every event but the client reports themselves).
-- `stored` counts raw events (three narrow columns of the days asked for): no
-- aggregate is kept for it, since every materialized view costs on every insert.
CREATE OR REPLACE VIEW metric_delivery AS
SELECT day, app,
       CAST(mapFromArrays(arrayMap(x -> x.2, arrayFilter(x -> x.1 = 'sdk', r)),
                          arrayMap(x -> x.3, arrayFilter(x -> x.1 = 'sdk', r))),
            'Map(String, UInt64)') AS sdk_dropped,
       CAST(mapFromArrays(arrayMap(x -> x.2, arrayFilter(x -> x.1 = 'rejected', r)),
                          arrayMap(x -> x.3, arrayFilter(x -> x.1 = 'rejected', r))),
            'Map(String, UInt64)') AS collector_rejected,
       toUInt64(arraySum(arrayMap(x -> x.3, arrayFilter(x -> x.1 = 'stored', r)))) AS stored
FROM
(
    SELECT day, app, groupArray((src, reason, n)) AS r
    FROM
    (
        SELECT day, app, src, reason, sum(n) AS n
        FROM
        (
            SELECT toDate(ts) AS day, app, 'sdk' AS src, kv.1 AS reason, kv.2 AS n
            FROM events
            ARRAY JOIN JSONExtractKeysAndValues(props, 'UInt64') AS kv
            WHERE event = 'client_report' AND toDate(ts) BETWEEN {since:Date} AND {until:Date}
              AND ({app:String} = '' OR app = {app:String})
            UNION ALL
            SELECT toDate(received_at) AS day, toString(app) AS app, 'rejected' AS src,
                   if(kind = '', 'unknown', toString(kind)) AS reason, toUInt64(1) AS n
            FROM rejected_events
            WHERE toDate(received_at) BETWEEN {since:Date} AND {until:Date}
              AND ({app:String} = '' OR app = {app:String})
            UNION ALL
            SELECT toDate(ts) AS day, app, 'stored' AS src, '' AS reason, toUInt64(1) AS n
            FROM events
            WHERE event != 'client_report' AND toDate(ts) BETWEEN {since:Date} AND {until:Date}
              AND ({app:String} = '' OR app = {app:String})
        )
        GROUP BY day, app, src, reason
        HAVING n > 0
    )
    GROUP BY day, app
)
ORDER BY day, app;
