-- Several collectors over one store (docs/operations.md, "Several collectors").
--
-- leases: heartbeats of the leases (storage/lease.py) that decide who runs the
-- migrations, and who runs alerts, maintenance and the promotion of staged events.
-- An epoch is won by creating the view lease_<name>_<epoch> (DDL is atomic); its
-- holder appends a row here every third of its time to live.
CREATE TABLE IF NOT EXISTS leases
(
    name String,
    epoch UInt64,
    holder String,
    renewed_at DateTime64(3, 'UTC'),
    expires_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (name, epoch, renewed_at)
TTL toDateTime(renewed_at) + toIntervalDay(1);

-- events_staging: with a ClickHouse server (ingest_staging), every collector's writer
-- inserts here, and the lease holder alone moves the rows into events, dropping ids
-- already there (storage/promote.py): the views fire once per event, whichever
-- collectors stored it. No views read it. Its columns are those of events: a
-- migration that changes events changes this table too.
CREATE TABLE IF NOT EXISTS events_staging
(
    event_id     UUID,
    project      String,
    event        String,
    version      UInt16,
    install_hash UInt64,
    session_hash UInt64,
    ts           DateTime64(3, 'UTC'),
    client_ts    DateTime64(3, 'UTC'),
    sent_at      Nullable(DateTime64(3, 'UTC')),
    received_at  DateTime64(3, 'UTC'),
    ts_source    String,
    app          String,
    app_version  String,
    os           String,
    os_version   String,
    locale       String,
    sdk          String,
    sdk_version  String,
    consent      String,
    props        String
)
ENGINE = MergeTree
ORDER BY event_id
SETTINGS non_replicated_deduplication_window = 10000;

-- pseudonym_keys: a keyed fingerprint of each pseudonym secret that wrote here (never
-- the secret). A collector whose secret is not the recorded one refuses to start: it
-- would give every install a second identity (storage/identity.py).
CREATE TABLE IF NOT EXISTS pseudonym_keys
(
    fingerprint String,
    holder String,
    at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY fingerprint;
