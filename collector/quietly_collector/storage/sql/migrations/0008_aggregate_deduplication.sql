-- A retried insert into `events` (same deduplication token) must not count twice in
-- the aggregates. `deduplicate_blocks_in_dependent_materialized_views = 1` only
-- deduplicates a view's block when the view's target table keeps a deduplication
-- log of its own; MergeTree tables keep none unless given a window (0004 gave none,
-- so a retry whose first attempt had landed was dropped by `events` but counted again
-- by every `agg_*` table). Idempotent: setting the same value again changes nothing.
ALTER TABLE agg_install_day MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE agg_sessions MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE agg_session_events MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE agg_features MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE agg_performance MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE agg_jobs MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE agg_surveys MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE agg_deployments MODIFY SETTING non_replicated_deduplication_window = 10000;
