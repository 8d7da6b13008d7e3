-- Rejected events: the reason (scrubbed) and where, never the payload.
CREATE TABLE IF NOT EXISTS rejected_events
(
    received_at DateTime64(3, 'UTC'),
    project     String,
    batch_index UInt32,
    event_id    String,
    event       String,
    version     UInt16,
    reason      String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (project, received_at)
SETTINGS non_replicated_deduplication_window = 10000;
