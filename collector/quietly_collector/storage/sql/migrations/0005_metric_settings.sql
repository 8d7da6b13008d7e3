-- Metric settings from the collector's configuration (docs/configuration.md),
-- rewritten by `quietly migrate` and at every `quietly serve` start, so the views
-- read thresholds from configuration instead of SQL literals. Edit the
-- configuration, not these tables.
CREATE TABLE IF NOT EXISTS metric_settings
(
    key   String,
    value String
)
ENGINE = MergeTree
ORDER BY key;

-- Performance grades (p95): below `target` is "target", below `good` "good", below
-- `acceptable` "acceptable", below `unacceptable` "poor", else "unacceptable".
CREATE TABLE IF NOT EXISTS metric_thresholds
(
    operation    String,
    measure      String COMMENT 'duration_ms, memory_mb or cpu_pct',
    target       Float64,
    good         Float64,
    acceptable   Float64,
    unacceptable Float64
)
ENGINE = MergeTree
ORDER BY (operation, measure);
