"""Numbered, idempotent ClickHouse migrations (``NNNN_name.sql``)."""
