-- Segments (docs/metrics.md, "Segments"): one row per (app, install, segment) once
-- merged, with the install's first and latest value. Derived segments (platform,
-- app_version) come from every event's context; declared ones from the properties
-- of the `segments` event. argMin, argMax, min and max give the same answer for a
-- row seen twice, so a resend cannot skew them. The backfill is one statement
-- (both kinds), run only while the table is empty.
CREATE TABLE IF NOT EXISTS agg_install_segments
(
    project      LowCardinality(String),
    app          LowCardinality(String),
    install_hash UInt64,
    segment      LowCardinality(String),
    first_value  AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    latest_value AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    first_day    SimpleAggregateFunction(min, Date),
    last_day     SimpleAggregateFunction(max, Date)
)
ENGINE = AggregatingMergeTree
ORDER BY (app, install_hash, segment, project)
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO agg_install_segments
SELECT project, app, install_hash, s.1 AS segment,
       argMinState(s.2, first_ts) AS first_value, argMaxState(s.3, last_ts) AS latest_value,
       min(toDate(first_ts)) AS first_day, max(toDate(last_ts)) AS last_day
FROM
(
    SELECT project, app, install_hash, min(ts) AS first_ts, max(ts) AS last_ts,
           [('platform', argMin(os, ts), argMax(os, ts)),
            ('app_version', argMin(app_version, ts), argMax(app_version, ts))] AS pairs
    FROM events
    GROUP BY project, app, install_hash
)
ARRAY JOIN pairs AS s
WHERE (SELECT count() FROM agg_install_segments) = 0
GROUP BY project, app, install_hash, segment
UNION ALL
SELECT project, app, install_hash, kv.1 AS segment,
       argMinState(kv.2, ts) AS first_value, argMaxState(kv.2, ts) AS latest_value,
       min(toDate(ts)) AS first_day, max(toDate(ts)) AS last_day
FROM (SELECT project, app, install_hash, ts, props FROM events WHERE event = 'segments')
ARRAY JOIN JSONExtractKeysAndValues(props, 'String') AS kv
WHERE (SELECT count() FROM agg_install_segments) = 0
GROUP BY project, app, install_hash, segment;

-- Grouped by install before the two segments are unfolded, so the view adds one
-- row per install of a block, not two per event.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_install_segments_derived TO agg_install_segments AS
SELECT project, app, install_hash, s.1 AS segment,
       argMinState(s.2, first_ts) AS first_value, argMaxState(s.3, last_ts) AS latest_value,
       min(toDate(first_ts)) AS first_day, max(toDate(last_ts)) AS last_day
FROM
(
    SELECT project, app, install_hash, min(ts) AS first_ts, max(ts) AS last_ts,
           [('platform', argMin(os, ts), argMax(os, ts)),
            ('app_version', argMin(app_version, ts), argMax(app_version, ts))] AS pairs
    FROM events
    GROUP BY project, app, install_hash
)
ARRAY JOIN pairs AS s
GROUP BY project, app, install_hash, segment;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_install_segments_declared TO agg_install_segments AS
SELECT project, app, install_hash, kv.1 AS segment,
       argMinState(kv.2, ts) AS first_value, argMaxState(kv.2, ts) AS latest_value,
       min(toDate(ts)) AS first_day, max(toDate(ts)) AS last_day
FROM (SELECT project, app, install_hash, ts, props FROM events WHERE event = 'segments')
ARRAY JOIN JSONExtractKeysAndValues(props, 'String') AS kv
GROUP BY project, app, install_hash, segment;

-- The performance rollup gains the installs behind each digest (uniq: exact below
-- 65,536 installs a row), so a small cell can be suppressed without reading the
-- per-install table. Built as a new table, like 0009: created, filled from
-- agg_performance (only while empty), then fed by its view; the old one goes.
CREATE TABLE IF NOT EXISTS agg_performance_rollup_v2
(
    project      LowCardinality(String),
    app          LowCardinality(String),
    day          Date,
    operation    LowCardinality(String),
    measure      LowCardinality(String),
    app_version  LowCardinality(String),
    samples      SimpleAggregateFunction(sum, UInt64),
    q            AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64),
    installs     AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (operation, measure, app_version, day, app, project)
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO agg_performance_rollup_v2
SELECT project, app, day, operation, measure, app_version,
       sum(samples) AS samples, quantilesTDigestMergeState(0.5, 0.95, 0.99)(q) AS q,
       uniqState(install_hash) AS installs
FROM agg_performance
WHERE (SELECT count() FROM agg_performance_rollup_v2) = 0
GROUP BY project, app, day, operation, measure, app_version;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_performance_rollup_v2 TO agg_performance_rollup_v2 AS
SELECT project, app, day, operation, measure, app_version,
       sum(samples) AS samples, quantilesTDigestMergeState(0.5, 0.95, 0.99)(q) AS q,
       uniqState(install_hash) AS installs
FROM agg_performance
GROUP BY project, app, day, operation, measure, app_version;

DROP VIEW IF EXISTS mv_performance_rollup;
DROP TABLE IF EXISTS agg_performance_rollup;
