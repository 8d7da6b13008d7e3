-- Deletion receipts: one row per deletion_request the collector carried out,
-- the audit trail of erasures. The install appears only as its keyed hash (kept
-- so that late events of a deleted install are refused), never as its id.
-- ReplacingMergeTree on request_id: a receipt replayed after a crash collapses
-- into one (the writer also skips requests that already have a receipt).
CREATE TABLE IF NOT EXISTS deletion_receipts
(
    request_id    UUID COMMENT 'event_id of the deletion_request',
    project       String COMMENT 'project of the write key that sent the request',
    install_hash  UInt64 COMMENT 'keyed hash of the deleted install id (as in events.install_hash)',
    requested_at  DateTime64(3, 'UTC') COMMENT 'the request''s ts, corrected like events.ts',
    received_at   DateTime64(3, 'UTC') COMMENT 'when the collector acknowledged the request (200)',
    completed_at  DateTime64(3, 'UTC') COMMENT 'when the rows were gone from every table',
    rows_deleted  UInt64 COMMENT 'rows removed, all tables together',
    rows_by_table Map(String, UInt64) COMMENT 'every table searched, with the rows removed from it',
    method        String COMMENT 'how the rows were removed'
)
ENGINE = ReplacingMergeTree
ORDER BY request_id
SETTINGS non_replicated_deduplication_window = 10000;
