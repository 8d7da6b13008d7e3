-- Alerts (docs/alerts.md). alert_state holds one current row per rule and scope (the
-- newest updated_at wins; read it with FINAL); alert_history keeps every state change
-- and alert_notifications every webhook delivery, failed ones included.
CREATE TABLE IF NOT EXISTS alert_state
(
    rule String,
    scope String,
    app String,
    state LowCardinality(String),
    severity LowCardinality(String),
    value Nullable(Float64),
    threshold Float64,
    samples UInt64,
    window String,
    query String,
    since DateTime64(3, 'UTC'),
    last_notified Nullable(DateTime64(3, 'UTC')),
    updated_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (rule, scope);

CREATE TABLE IF NOT EXISTS alert_history
(
    at DateTime64(3, 'UTC'),
    rule String,
    scope String,
    app String,
    from_state LowCardinality(String),
    to_state LowCardinality(String),
    severity LowCardinality(String),
    value Nullable(Float64),
    threshold Float64,
    samples UInt64,
    window String
)
ENGINE = MergeTree
ORDER BY (rule, scope, at);

CREATE TABLE IF NOT EXISTS alert_notifications
(
    at DateTime64(3, 'UTC'),
    rule String,
    scope String,
    kind LowCardinality(String),
    target String,
    attempts UInt8,
    ok UInt8,
    status UInt16,
    error String
)
ENGINE = MergeTree
ORDER BY at;
