-- Aggregates behind the metrics (docs/metrics.md), filled by materialized views
-- from `events` as rows are inserted.
--
-- Every table keeps `install_hash` in its key (one row per install per day, session,
-- job ...): small, exact where counts are concerned, and erasable with the same
-- ALTER TABLE DELETE that a deletion_request runs on every table holding
-- `install_hash` (aggregate states cannot be "subtracted" from). Days come from the
-- event's own (corrected) ts, so a late event lands in its own day.
-- Duplicates never reach these views: the collector drops resent event ids before
-- insert, and a retried insert carries the same deduplication token, which
-- `deduplicate_blocks_in_dependent_materialized_views = 1` extends to the views.
-- Queries must aggregate again (sum/min/max, -Merge): parts merge in the background.

CREATE TABLE IF NOT EXISTS agg_install_day
(
    project      String,
    app          String,
    day          Date,
    install_hash UInt64,
    events       SimpleAggregateFunction(sum, UInt64),
    first_ts     SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_ts      SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (app, day, install_hash, project);

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_install_day TO agg_install_day AS
SELECT project, app, toDate(ts) AS day, install_hash,
       count() AS events, min(ts) AS first_ts, max(ts) AS last_ts
FROM events
GROUP BY project, app, day, install_hash;

-- One row per session (events without a session are left out).
CREATE TABLE IF NOT EXISTS agg_sessions
(
    project      String,
    app          String,
    install_hash UInt64,
    session_hash UInt64,
    first_ts     SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_ts      SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    events       SimpleAggregateFunction(sum, UInt64),
    features     SimpleAggregateFunction(sum, UInt64) COMMENT 'feature_used events',
    crashes      SimpleAggregateFunction(sum, UInt64),
    errors       SimpleAggregateFunction(sum, UInt64),
    ended_ms     SimpleAggregateFunction(max, UInt64) COMMENT 'duration_ms of session_end; 0 if none arrived'
)
ENGINE = AggregatingMergeTree
ORDER BY (app, install_hash, session_hash, project);

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_sessions TO agg_sessions AS
SELECT project, app, install_hash, session_hash,
       min(ts) AS first_ts, max(ts) AS last_ts, count() AS events,
       countIf(event = 'feature_used') AS features,
       countIf(event = 'crash') AS crashes,
       countIf(event = 'error') AS errors,
       maxIf(JSONExtractUInt(props, 'duration_ms'), event = 'session_end') AS ended_ms
FROM events
WHERE session_hash != 0
GROUP BY project, app, install_hash, session_hash;

-- Events by type within each session: activation (the configured event in an
-- install's first session).
CREATE TABLE IF NOT EXISTS agg_session_events
(
    project      String,
    app          String,
    install_hash UInt64,
    session_hash UInt64,
    event        String,
    n            SimpleAggregateFunction(sum, UInt64),
    first_ts     SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (app, install_hash, session_hash, event, project);

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_session_events TO agg_session_events AS
SELECT project, app, install_hash, session_hash, event, count() AS n, min(ts) AS first_ts
FROM events
WHERE session_hash != 0
GROUP BY project, app, install_hash, session_hash, event;

CREATE TABLE IF NOT EXISTS agg_features
(
    project      String,
    app          String,
    day          Date,
    feature      String,
    install_hash UInt64,
    uses         SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (app, day, feature, install_hash, project);

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_features TO agg_features AS
SELECT project, app, toDate(ts) AS day, JSONExtractString(props, 'feature') AS feature,
       install_hash, count() AS uses
FROM events
WHERE event = 'feature_used'
GROUP BY project, app, day, feature, install_hash;

-- Timings and resource samples: one t-digest state per install, day, operation,
-- app version and measure (duration_ms, memory_mb, cpu_pct).
CREATE TABLE IF NOT EXISTS agg_performance
(
    project      String,
    app          String,
    day          Date,
    operation    String,
    measure      String,
    app_version  String,
    install_hash UInt64,
    samples      SimpleAggregateFunction(sum, UInt64),
    q            AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (operation, measure, app_version, day, app, install_hash, project);

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_performance TO agg_performance AS
SELECT project, app, toDate(ts) AS day, JSONExtractString(props, 'operation') AS operation,
       m.1 AS measure, app_version, install_hash,
       count() AS samples, quantilesTDigestState(0.5, 0.95, 0.99)(m.2) AS q
FROM events
ARRAY JOIN arrayFilter(
    x -> JSONHas(props, x.1),
    [('duration_ms', JSONExtractFloat(props, 'duration_ms')),
     ('memory_mb', JSONExtractFloat(props, 'memory_mb')),
     ('cpu_pct', JSONExtractFloat(props, 'cpu_pct'))]
) AS m
WHERE event = 'performance'
GROUP BY project, app, day, operation, measure, app_version, install_hash;

-- Jobs to be done: one row per install and job. 2299-12-31 stands for "never".
CREATE TABLE IF NOT EXISTS agg_jobs
(
    project         String,
    app             String,
    job             String,
    install_hash    UInt64,
    starts          SimpleAggregateFunction(sum, UInt64),
    completions     SimpleAggregateFunction(sum, UInt64) COMMENT 'job_completed with success not false',
    first_seen      SimpleAggregateFunction(min, DateTime64(3, 'UTC')) COMMENT 'first job_started, job_step or job_completed',
    first_completed SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (app, job, install_hash, project);

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_jobs TO agg_jobs AS
SELECT project, app, JSONExtractString(props, 'job') AS job, install_hash,
       countIf(event = 'job_started') AS starts,
       countIf(event = 'job_completed' AND JSONExtractRaw(props, 'success') != 'false') AS completions,
       min(ts) AS first_seen,
       if(completions > 0,
          minIf(ts, event = 'job_completed' AND JSONExtractRaw(props, 'success') != 'false'),
          toDateTime64('2299-12-31 00:00:00', 3, 'UTC')) AS first_completed
FROM events
WHERE event IN ('job_started', 'job_step', 'job_completed')
GROUP BY project, app, job, install_hash;

CREATE TABLE IF NOT EXISTS agg_surveys
(
    project      String,
    app          String,
    day          Date,
    survey       String,
    job          String,
    install_hash UInt64,
    responses    SimpleAggregateFunction(sum, UInt64) COMMENT 'responses with a score',
    score_sum    SimpleAggregateFunction(sum, UInt64),
    promoters    SimpleAggregateFunction(sum, UInt64) COMMENT 'score 9-10',
    detractors   SimpleAggregateFunction(sum, UInt64) COMMENT 'score 0-6'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (survey, day, app, job, install_hash, project);

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_surveys TO agg_surveys AS
SELECT project, app, toDate(ts) AS day, JSONExtractString(props, 'survey') AS survey,
       JSONExtractString(props, 'job') AS job, install_hash,
       count() AS responses,
       sum(JSONExtractUInt(props, 'score')) AS score_sum,
       countIf(JSONExtractUInt(props, 'score') >= 9) AS promoters,
       countIf(JSONExtractUInt(props, 'score') <= 6) AS detractors
FROM events
WHERE event = 'survey_response' AND JSONHas(props, 'score')
GROUP BY project, app, day, survey, job, install_hash;

CREATE TABLE IF NOT EXISTS agg_deployments
(
    project      String,
    app          String,
    day          Date,
    environment  String,
    install_hash UInt64,
    deployments  SimpleAggregateFunction(sum, UInt64),
    successes    SimpleAggregateFunction(sum, UInt64) COMMENT 'success = true'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (environment, day, app, install_hash, project);

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_deployments TO agg_deployments AS
SELECT project, app, toDate(ts) AS day, JSONExtractString(props, 'environment') AS environment,
       install_hash, count() AS deployments,
       countIf(JSONExtractRaw(props, 'success') = 'true') AS successes
FROM events
WHERE event = 'deployment'
GROUP BY project, app, day, environment, install_hash;
