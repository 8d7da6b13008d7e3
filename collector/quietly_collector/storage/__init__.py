"""ClickHouse access: the store, its schema (sql/), and what runs on it."""
