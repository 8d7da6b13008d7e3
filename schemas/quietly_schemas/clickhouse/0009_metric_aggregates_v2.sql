-- Aggregates v2 (docs/performance.md, "Metrics queries"): fewer rows per install,
-- so the metric views stop re-grouping millions of rows.
--
-- * agg_install_day_v2: agg_install_day with LowCardinality app/project (dau).
-- * agg_active_days_v2: one row per (app, install) with its set of active days
--   (wau, mau, stickiness, retention, active installs of the feature views).
-- * agg_features_v2: one row per (app, feature, install) with a Map(day -> uses).
-- * agg_session_events_v2: ordered by event first, so the activation event is a
--   key range.
-- * agg_performance_rollup: t-digests per (app, day, operation, measure, version)
--   WITHOUT install_hash, fed from agg_performance (still the erasable per-install
--   source). A deletion cannot reach it by install, so deletion.py re-derives the
--   deleted install's days from agg_performance (aggregates.py).
--
-- Every table keeps non_replicated_deduplication_window (0008: a retried insert must
-- not count twice). Days come from the event's ts, so late events land in their day;
-- a day set or map merges days, never replaces them.
--
-- Each new table is created, then backfilled (only while it is empty, so a
-- re-run after a crash inside this file adds nothing twice), then its view is
-- created: the collector migrates before it writes, so no event falls in between.
-- Backfills read `events` (always there, unlike the tables dropped below); the
-- rollup reads agg_performance, exactly as its re-derivation does.

CREATE TABLE IF NOT EXISTS agg_install_day_v2
(
    project      LowCardinality(String),
    app          LowCardinality(String),
    day          Date,
    install_hash UInt64,
    events       SimpleAggregateFunction(sum, UInt64),
    first_ts     SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_ts      SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (app, day, install_hash, project)
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO agg_install_day_v2
SELECT project, app, toDate(ts) AS day, install_hash,
       count() AS events, min(ts) AS first_ts, max(ts) AS last_ts
FROM events
WHERE (SELECT count() FROM agg_install_day_v2) = 0
GROUP BY project, app, day, install_hash;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_install_day_v2 TO agg_install_day_v2 AS
SELECT project, app, toDate(ts) AS day, install_hash,
       count() AS events, min(ts) AS first_ts, max(ts) AS last_ts
FROM events
GROUP BY project, app, day, install_hash;

-- last_day bounds the row's days: a window query skips rows with last_day before
-- it, and retention's TTL uses it (maintenance trims older days of live rows).
CREATE TABLE IF NOT EXISTS agg_active_days_v2
(
    project      LowCardinality(String),
    app          LowCardinality(String),
    install_hash UInt64,
    days         SimpleAggregateFunction(groupUniqArrayArray, Array(Date)),
    last_day     SimpleAggregateFunction(max, Date)
)
ENGINE = AggregatingMergeTree
ORDER BY (app, install_hash, project)
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO agg_active_days_v2
SELECT project, app, install_hash, groupUniqArray(toDate(ts)) AS days, max(toDate(ts)) AS last_day
FROM events
WHERE (SELECT count() FROM agg_active_days_v2) = 0
GROUP BY project, app, install_hash;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_active_days_v2 TO agg_active_days_v2 AS
SELECT project, app, install_hash, groupUniqArray(toDate(ts)) AS days, max(toDate(ts)) AS last_day
FROM events
GROUP BY project, app, install_hash;

CREATE TABLE IF NOT EXISTS agg_features_v2
(
    project      LowCardinality(String),
    app          LowCardinality(String),
    feature      String,
    install_hash UInt64,
    uses         SimpleAggregateFunction(sumMap, Map(Date, UInt64)) COMMENT 'feature_used events per day',
    last_day     SimpleAggregateFunction(max, Date)
)
ENGINE = AggregatingMergeTree
ORDER BY (app, feature, install_hash, project)
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO agg_features_v2
SELECT project, app, JSONExtractString(props, 'feature') AS feature, install_hash,
       sumMap(map(toDate(ts), toUInt64(1))) AS uses, max(toDate(ts)) AS last_day
FROM events
WHERE event = 'feature_used' AND (SELECT count() FROM agg_features_v2) = 0
GROUP BY project, app, feature, install_hash;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_features_v2 TO agg_features_v2 AS
SELECT project, app, JSONExtractString(props, 'feature') AS feature, install_hash,
       sumMap(map(toDate(ts), toUInt64(1))) AS uses, max(toDate(ts)) AS last_day
FROM events
WHERE event = 'feature_used'
GROUP BY project, app, feature, install_hash;

CREATE TABLE IF NOT EXISTS agg_session_events_v2
(
    project      LowCardinality(String),
    app          LowCardinality(String),
    install_hash UInt64,
    session_hash UInt64,
    event        LowCardinality(String),
    n            SimpleAggregateFunction(sum, UInt64),
    first_ts     SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (event, app, install_hash, session_hash, project)
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO agg_session_events_v2
SELECT project, app, install_hash, session_hash, event, count() AS n, min(ts) AS first_ts
FROM events
WHERE session_hash != 0 AND (SELECT count() FROM agg_session_events_v2) = 0
GROUP BY project, app, install_hash, session_hash, event;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_session_events_v2 TO agg_session_events_v2 AS
SELECT project, app, install_hash, session_hash, event, count() AS n, min(ts) AS first_ts
FROM events
WHERE session_hash != 0
GROUP BY project, app, install_hash, session_hash, event;

CREATE TABLE IF NOT EXISTS agg_performance_rollup
(
    project      LowCardinality(String),
    app          LowCardinality(String),
    day          Date,
    operation    LowCardinality(String),
    measure      LowCardinality(String),
    app_version  LowCardinality(String),
    samples      SimpleAggregateFunction(sum, UInt64),
    q            AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (operation, measure, app_version, day, app, project)
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO agg_performance_rollup
SELECT project, app, day, operation, measure, app_version,
       sum(samples) AS samples, quantilesTDigestMergeState(0.5, 0.95, 0.99)(q) AS q
FROM agg_performance
WHERE (SELECT count() FROM agg_performance_rollup) = 0
GROUP BY project, app, day, operation, measure, app_version;

-- Fed by inserts into agg_performance (a view on a view's target), so the rollup
-- is always the merge of the per-install digests.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_performance_rollup TO agg_performance_rollup AS
SELECT project, app, day, operation, measure, app_version,
       sum(samples) AS samples, quantilesTDigestMergeState(0.5, 0.95, 0.99)(q) AS q
FROM agg_performance
GROUP BY project, app, day, operation, measure, app_version;

-- The metric views, repointed (same columns as 0006).

CREATE OR REPLACE VIEW metric_dau AS
SELECT day, app, uniqExact(install_hash) AS users
FROM agg_install_day_v2
WHERE day BETWEEN {since:Date} AND {until:Date} AND ({app:String} = '' OR app = {app:String})
GROUP BY day, app
ORDER BY day, app;

-- As in 0006: each install's sorted active days become +1/-1 deltas per app, summed
-- and accumulated; the days now come from one row per install.
CREATE OR REPLACE VIEW metric_wau AS
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
        SELECT app, install_hash,
               arraySort(arrayFilter(d -> d BETWEEN subtractDays({since:Date}, 6) AND {until:Date},
                                     groupUniqArrayArray(days))) AS ds
        FROM agg_active_days_v2
        WHERE last_day >= subtractDays({since:Date}, 6)
          AND ({app:String} = '' OR app = {app:String})
        GROUP BY app, install_hash
        HAVING length(ds) > 0
    )
    GROUP BY app
)
ARRAY JOIN arrayMap(i -> addDays({since:Date}, i),
                    range(toUInt32(greatest(0, dateDiff('day', {since:Date}, {until:Date}) + 1))))
    AS day
WHERE users > 0
ORDER BY day, app;

CREATE OR REPLACE VIEW metric_mau AS
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
        SELECT app, install_hash,
               arraySort(arrayFilter(d -> d BETWEEN subtractDays({since:Date}, 29) AND {until:Date},
                                     groupUniqArrayArray(days))) AS ds
        FROM agg_active_days_v2
        WHERE last_day >= subtractDays({since:Date}, 29)
          AND ({app:String} = '' OR app = {app:String})
        GROUP BY app, install_hash
        HAVING length(ds) > 0
    )
    GROUP BY app
)
ARRAY JOIN arrayMap(i -> addDays({since:Date}, i),
                    range(toUInt32(greatest(0, dateDiff('day', {since:Date}, {until:Date}) + 1))))
    AS day
WHERE users > 0
ORDER BY day, app;

-- Users of a feature in the window: installs whose map has uses on a day in it.
CREATE OR REPLACE VIEW metric_feature_adoption AS
SELECT f.feature AS feature, f.app AS app, f.f_users AS users, a.active_users AS active_users,
       round(f.f_users / a.active_users, 4) AS adoption_rate,
       f.f_uses AS uses, round(f.f_uses / f.f_users, 3) AS uses_per_user
FROM
(
    SELECT app, feature, uniqExactIf(install_hash, n > 0) AS f_users, sum(n) AS f_uses
    FROM
    (
        SELECT app, feature, install_hash,
               arraySum(mapValues(mapFilter((d, c) -> d BETWEEN {since:Date} AND {until:Date},
                                            uses))) AS n
        FROM agg_features_v2
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

CREATE OR REPLACE VIEW metric_feature_breadth AS
SELECT a.app AS app, a.active_users AS active_users, b.feature_users AS feature_users,
       b.users_3plus AS users_3plus_features,
       round(b.users_3plus / a.active_users, 4) AS rate_3plus_features
FROM
(
    SELECT app, uniqExact(install_hash) AS active_users
    FROM agg_active_days_v2
    WHERE last_day >= {since:Date} AND ({app:String} = '' OR app = {app:String})
      AND arrayExists(d -> d BETWEEN {since:Date} AND {until:Date}, days)
    GROUP BY app
) AS a
LEFT JOIN
(
    SELECT app, count() AS feature_users, countIf(n_features >= 3) AS users_3plus
    FROM
    (
        SELECT app, install_hash, uniqExactIf(feature, n > 0) AS n_features
        FROM
        (
            SELECT app, feature, install_hash,
                   arraySum(mapValues(mapFilter((d, c) -> d BETWEEN {since:Date} AND {until:Date},
                                                uses))) AS n
            FROM agg_features_v2
            WHERE last_day >= {since:Date} AND ({app:String} = '' OR app = {app:String})
        )
        GROUP BY app, install_hash
        HAVING n_features > 0
    )
    GROUP BY app
) AS b ON a.app = b.app
ORDER BY app;

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
LEFT JOIN
(
    SELECT app, install_hash, session_hash, sum(n) AS n
    FROM agg_session_events_v2
    WHERE event = (SELECT any(value) FROM metric_settings WHERE key = 'activation_event')
      AND ({app:String} = '' OR app = {app:String})
    GROUP BY app, install_hash, session_hash
) AS e ON f.app = e.app AND f.install_hash = e.install_hash AND f.first_session = e.session_hash
GROUP BY day, app
ORDER BY day, app;

-- Same periods as 0006 in one pass over one row per install (its sorted active days
-- across the selected apps): month_k is "active in calendar month cohort + k",
-- day_N "active again on or after day N", over installs whose day N has passed.
CREATE OR REPLACE VIEW metric_retention AS
SELECT cohort, period, cohort_users, retained_users,
       round(retained_users / cohort_users, 4) AS rate,
       round(1 - retained_users / cohort_users, 4) AS churn_rate
FROM
(
    SELECT toStartOfMonth(ds[1]) AS cohort, p.1 AS period, p.2 AS ord,
           count() AS cohort_users, countIf(p.4) AS retained_users
    FROM
    (
        SELECT install_hash, arraySort(groupUniqArrayArray(days)) AS ds
        FROM agg_active_days_v2
        WHERE {app:String} = '' OR app = {app:String}
        GROUP BY install_hash
    )
    ARRAY JOIN arrayConcat(
        arrayMap(k -> (concat('month_', toString(k)), k,
                       addMonths(toStartOfMonth(ds[1]), k + 1) <= addDays({until:Date}, 1),
                       has(arrayMap(d -> toStartOfMonth(d), ds),
                           addMonths(toStartOfMonth(ds[1]), k))),
                 [1, 2, 3, 6, 12]),
        arrayMap(n -> (concat('day_', toString(n)), 100 + n,
                       addDays(ds[1], n) <= {until:Date},
                       ds[-1] >= addDays(ds[1], n)),
                 [30, 90])) AS p
    WHERE p.3 AND cohort BETWEEN toStartOfMonth({since:Date}) AND {until:Date}
    GROUP BY cohort, period, ord
)
ORDER BY cohort, ord;

CREATE OR REPLACE VIEW metric_performance AS
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
    SELECT toString(operation) AS operation, toString(measure) AS measure,
           toString(app_version) AS app_version, sum(samples) AS n,
           quantilesTDigestMerge(0.5, 0.95, 0.99)(q) AS q
    FROM agg_performance_rollup
    WHERE day BETWEEN {since:Date} AND {until:Date} AND ({app:String} = '' OR app = {app:String})
    GROUP BY operation, measure, app_version
) AS p
LEFT JOIN metric_thresholds AS t ON t.operation = p.operation AND t.measure = p.measure
ORDER BY operation, measure, app_version;

-- The replaced tables and their views go (no view reads them any more).
DROP VIEW IF EXISTS mv_install_day;
DROP TABLE IF EXISTS agg_install_day;
DROP VIEW IF EXISTS mv_features;
DROP TABLE IF EXISTS agg_features;
DROP VIEW IF EXISTS mv_session_events;
DROP TABLE IF EXISTS agg_session_events;
