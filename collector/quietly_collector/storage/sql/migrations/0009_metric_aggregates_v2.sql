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

-- The replaced tables and their views go (no view reads them any more).
DROP VIEW IF EXISTS mv_install_day;
DROP TABLE IF EXISTS agg_install_day;
DROP VIEW IF EXISTS mv_features;
DROP TABLE IF EXISTS agg_features;
DROP VIEW IF EXISTS mv_session_events;
DROP TABLE IF EXISTS agg_session_events;
