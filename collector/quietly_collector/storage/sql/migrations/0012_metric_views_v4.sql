-- dau reads agg_active_days_v2 since this version (../views.sql), so nothing reads
-- agg_install_day_v2 and its materialized view, one of the costliest on every insert
-- into events: both go.
DROP VIEW IF EXISTS mv_install_day_v2;
DROP TABLE IF EXISTS agg_install_day_v2;
