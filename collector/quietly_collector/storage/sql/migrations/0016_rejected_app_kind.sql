-- The app of a refused event and the kind of its reason (pipeline/rejections.py): the
-- loss account (metric_delivery) reports refusals per day, app and kind. Rows from
-- before have neither (''); spool lines written before carry 7 values, read with
-- input_format_json_compact_allow_variable_number_of_columns (store.py).
ALTER TABLE rejected_events ADD COLUMN IF NOT EXISTS app LowCardinality(String) DEFAULT '';
ALTER TABLE rejected_events ADD COLUMN IF NOT EXISTS kind LowCardinality(String) DEFAULT '';
