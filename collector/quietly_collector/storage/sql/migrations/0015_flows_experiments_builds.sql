-- Aggregates of issue 24 (docs/metrics.md): paths, experiments, builds. Lifecycle and
-- active days need none: they read agg_active_days_v2.
--
-- Each keeps install_hash in its key, so a deletion request removes an install from
-- it with the same ALTER TABLE DELETE as every other per-install table (deletion.py
-- finds tables by their install_hash column), and segments can still be cut per
-- install. Days come from the event's ts (late events land in their day), and each
-- table keeps a deduplication window (0008: a retried insert must not count twice).
-- As in 0009: create, backfill from `events` only while empty (a re-run after a
-- crash adds nothing twice), then the view.

-- One row per session: its steps as (ts, step), the input of `paths`. A step is the
-- event name, or feature_used:<feature> / screen_viewed:<screen>; measurements and
-- bookkeeping (performance, session_end, experiment_exposure) are not steps of a
-- user's way through the product. first_ts is the session's start (any event).
CREATE TABLE IF NOT EXISTS agg_session_steps
(
    project      LowCardinality(String),
    app          LowCardinality(String),
    install_hash UInt64,
    session_hash UInt64,
    first_ts     SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    steps        SimpleAggregateFunction(groupArrayArray, Array(Tuple(DateTime64(3, 'UTC'), String)))
)
ENGINE = AggregatingMergeTree
ORDER BY (app, install_hash, session_hash, project)
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO agg_session_steps
SELECT project, app, install_hash, session_hash, min(ts) AS first_ts,
       groupArrayIf((ts, multiIf(event = 'feature_used', concat('feature_used:', JSONExtractString(props, 'feature')),
                                 event = 'screen_viewed', concat('screen_viewed:', JSONExtractString(props, 'screen')),
                                 event)),
                    event NOT IN ('performance', 'session_end', 'experiment_exposure', 'segments')) AS steps
FROM events
WHERE session_hash != 0 AND (SELECT count() FROM agg_session_steps) = 0
GROUP BY project, app, install_hash, session_hash;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_session_steps TO agg_session_steps AS
SELECT project, app, install_hash, session_hash, min(ts) AS first_ts,
       groupArrayIf((ts, multiIf(event = 'feature_used', concat('feature_used:', JSONExtractString(props, 'feature')),
                                 event = 'screen_viewed', concat('screen_viewed:', JSONExtractString(props, 'screen')),
                                 event)),
                    event NOT IN ('performance', 'session_end', 'experiment_exposure', 'segments')) AS steps
FROM events
WHERE session_hash != 0
GROUP BY project, app, install_hash, session_hash;

-- One row per install, experiment and variant: when it was first (and last) exposed.
-- An install counts in the variant of its first exposure (argMin at query time).
CREATE TABLE IF NOT EXISTS agg_experiments
(
    project      LowCardinality(String),
    app          LowCardinality(String),
    experiment   String,
    variant      String,
    install_hash UInt64,
    exposures    SimpleAggregateFunction(sum, UInt64),
    first_ts     SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_ts      SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (experiment, app, install_hash, variant, project)
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO agg_experiments
SELECT project, app, JSONExtractString(props, 'experiment') AS experiment,
       JSONExtractString(props, 'variant') AS variant, install_hash,
       count() AS exposures, min(ts) AS first_ts, max(ts) AS last_ts
FROM events
WHERE event = 'experiment_exposure' AND (SELECT count() FROM agg_experiments) = 0
GROUP BY project, app, experiment, variant, install_hash;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_experiments TO agg_experiments AS
SELECT project, app, JSONExtractString(props, 'experiment') AS experiment,
       JSONExtractString(props, 'variant') AS variant, install_hash,
       count() AS exposures, min(ts) AS first_ts, max(ts) AS last_ts
FROM events
WHERE event = 'experiment_exposure'
GROUP BY project, app, experiment, variant, install_hash;

-- Builds per install, day, app version and kind; durations kept as they are (a few
-- builds an install a day), so p95 is exact.
CREATE TABLE IF NOT EXISTS agg_builds
(
    project      LowCardinality(String),
    app          LowCardinality(String),
    day          Date,
    app_version  LowCardinality(String),
    kind         LowCardinality(String),
    install_hash UInt64,
    builds       SimpleAggregateFunction(sum, UInt64),
    successes    SimpleAggregateFunction(sum, UInt64) COMMENT 'success = true',
    durations    SimpleAggregateFunction(groupArrayArray, Array(UInt32)) COMMENT 'duration_ms of the builds that sent it'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, app, app_version, kind, install_hash, project)
SETTINGS non_replicated_deduplication_window = 10000;

INSERT INTO agg_builds
SELECT project, app, toDate(ts) AS day, app_version, JSONExtractString(props, 'kind') AS kind,
       install_hash, count() AS builds,
       countIf(JSONExtractRaw(props, 'success') = 'true') AS successes,
       groupArrayIf(toUInt32(JSONExtractUInt(props, 'duration_ms')), JSONHas(props, 'duration_ms'))
           AS durations
FROM events
WHERE event = 'build_finished' AND (SELECT count() FROM agg_builds) = 0
GROUP BY project, app, day, app_version, kind, install_hash;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_builds TO agg_builds AS
SELECT project, app, toDate(ts) AS day, app_version, JSONExtractString(props, 'kind') AS kind,
       install_hash, count() AS builds,
       countIf(JSONExtractRaw(props, 'success') = 'true') AS successes,
       groupArrayIf(toUInt32(JSONExtractUInt(props, 'duration_ms')), JSONHas(props, 'duration_ms'))
           AS durations
FROM events
WHERE event = 'build_finished'
GROUP BY project, app, day, app_version, kind, install_hash;
