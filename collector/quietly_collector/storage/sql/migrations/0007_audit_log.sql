-- Audit log: one row per admin or deletion action (docs/privacy.md#audit-log).
-- Append-only: the collector only inserts (the SQL endpoint is read-only), and
-- there is deliberately no install_hash column, so deletion requests (which erase
-- every table that has one) never touch it. Details are scrubbed JSON: no install
-- ids, no key values, no query results.
CREATE TABLE IF NOT EXISTS audit_log
(
    at         DateTime64(3, 'UTC') COMMENT 'when the action finished',
    actor      String COMMENT 'admin, system, cli, or project:<name> (the write key that asked for a deletion)',
    action     String COMMENT 'sql, gc, key_reload or deletion_applied',
    outcome    String COMMENT 'ok or error',
    detail     String COMMENT 'JSON object, scrubbed',
    request_id String COMMENT 'X-Request-Id of the HTTP request; the deletion_request event_id for deletion_applied'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (at, action);
