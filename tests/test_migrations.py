"""Every migration applies to a fresh database, twice without change."""

from __future__ import annotations

import re
from pathlib import Path

from quietly_collector.store import Store, migrate, migration_files, split_statements
from tests.conftest import make_settings


def test_every_migration_applies_to_a_fresh_database_and_is_idempotent(
    tmp_path: Path, chdb_path: Path
) -> None:
    settings = make_settings(tmp_path, chdb_path, retention_days=400)
    store = Store(settings)
    store.connect()
    try:
        applied = migrate(store, settings)
        assert applied == [name for _, name, _ in migration_files()]
        assert migrate(store, settings) == []
        tables = {r[0] for r in store.query("SHOW TABLES")[1]}
        assert {"events", "rejected_events", "schema_migrations"} <= tables
        [(ddl,)] = store.query(
            "SELECT create_table_query FROM system.tables"
            " WHERE database = currentDatabase() AND name = 'events'"
        )[1]
        assert "toIntervalDay(400)" in ddl
        # Retention switched off again removes the TTL.
        settings2 = make_settings(tmp_path, chdb_path, database=settings.database)
        migrate(store, settings2)
        [(ddl,)] = store.query(
            "SELECT create_table_query FROM system.tables"
            " WHERE database = currentDatabase() AND name = 'events'"
        )[1]
        assert "TTL" not in ddl
    finally:
        store.close()


def _guarded_insert(stmt: str) -> bool:
    """A backfill ``INSERT INTO t SELECT`` that adds rows only while ``t`` is empty."""
    m = re.match(r"INSERT INTO (\w+)\s+SELECT ", stmt)
    return m is not None and f"(SELECT count() FROM {m.group(1)}) = 0" in stmt


def test_statements_replay_with_if_not_exists() -> None:
    for _, name, sql in migration_files():
        for stmt in split_statements(sql):
            upper = stmt.upper()
            # Setting a table setting to a value, replacing a view, dropping what may
            # be gone already, and a backfill guarded by emptiness replay as no-ops.
            replayable = ("IF NOT EXISTS" in upper or " MODIFY SETTING " in upper
                          or upper.startswith(("CREATE OR REPLACE VIEW ", "DROP VIEW IF EXISTS ",
                                               "DROP TABLE IF EXISTS "))
                          or _guarded_insert(stmt))
            assert replayable, f"{name}: {stmt[:60]}"


def test_migration_numbers_are_unique_and_sequential() -> None:
    numbers = [n for n, _, _ in migration_files()]
    assert numbers == list(range(1, len(numbers) + 1))
