-- Raw events: one row per accepted event, PII already removed by the collector.
-- String, not LowCardinality: JSON input into LowCardinality parses 2-3x slower
-- on the embedded engine, and compression already folds the repeated values.
CREATE TABLE IF NOT EXISTS events
(
    event_id     UUID,
    project      String,
    event        String,
    version      UInt16,
    install_hash UInt64 COMMENT 'HMAC-SHA256 of the install id with the collector secret (first 8 bytes)',
    session_hash UInt64 COMMENT 'HMAC of the session id; 0 when the event has no session',
    ts           DateTime64(3, 'UTC') COMMENT 'corrected time: client ts shifted by the sent_at skew, clamped',
    client_ts    DateTime64(3, 'UTC'),
    sent_at      Nullable(DateTime64(3, 'UTC')),
    received_at  DateTime64(3, 'UTC'),
    ts_source    String COMMENT 'sent_at_skew, client or received_at (clamped)',
    app          String,
    app_version  String,
    os           String,
    os_version   String,
    locale       String,
    sdk          String,
    sdk_version  String,
    consent      String,
    props        String COMMENT 'JSON object of declared, scrubbed properties',
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_received received_at TYPE minmax GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (project, event, toDate(ts), install_hash)
SETTINGS non_replicated_deduplication_window = 10000;
