"""Every migration applies to a fresh database, twice without change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quietly_collector.storage.migrations import (
    migrate,
    migration_files,
    split_statements,
    view_statements,
    views_sql,
)
from quietly_collector.storage.store import Store
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


def test_views_have_one_current_definition_outside_the_numbered_migrations() -> None:
    view = re.compile(r"^CREATE (OR REPLACE )?VIEW ", re.IGNORECASE)
    for _, name, sql in migration_files():
        for stmt in split_statements(sql):
            assert not view.match(stmt), f"{name} defines a view: {stmt[:60]}"
    from quietly_collector.insights.metrics import METRICS, NOT_VIEWS, UNSEGMENTED

    def names(statements: list[str]) -> list[str]:
        found = [re.match(r"CREATE OR REPLACE VIEW (metric_\w+) AS", s) for s in statements]
        assert all(found)
        return [m.group(1) for m in found if m]

    # views.sql writes each segmented view once, as metric_<name>_by;
    # metric_install_segment(s): each install's segment(s), joined by those.
    written = names(split_statements(views_sql()))
    assert len(written) == len(set(written))
    views = [m for m in METRICS if m not in NOT_VIEWS]
    assert set(written) == {f"metric_{m}_by" for m in views if m not in UNSEGMENTED} | {
        f"metric_{m}" for m in views if m in UNSEGMENTED} | {
        "metric_install_segments", "metric_install_segment"}
    # ... and the store gets the plain metric_<name> and metric_<name>_by_segment of
    # each, derived from it.
    made = names(view_statements())
    assert len(made) == len(set(made))
    assert set(made) == set(written) | {f"metric_{m}" for m in views} | {
        f"metric_{m}_by_segment" for m in views if m not in UNSEGMENTED}


def _schema(store: Store) -> dict[str, tuple[str, str]]:
    _, rows = store.query(
        "SELECT name, engine, create_table_query FROM system.tables"
        " WHERE database = currentDatabase() AND name != 'schema_migrations'")
    return {str(n): (str(e), str(q).replace(store.database + ".", "DB."))
            for n, e, q in rows}


@pytest.mark.parametrize("old_version", [8, 13])
def test_a_database_made_by_the_old_migrations_upgrades_to_the_fresh_schema(
    tmp_path: Path, chdb_path: Path, old_version: int
) -> None:
    """Migrations up to 0013 as they were when each of them also replaced views
    (tests/fixtures/migrations_0013), then today's migrate: the same tables and views
    as a database created today."""
    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    old = sorted((fixtures / "migrations_0013").glob("*.sql"))
    settings = make_settings(tmp_path, chdb_path)
    store = Store(settings)
    store.connect()
    fresh = Store(make_settings(tmp_path, chdb_path))
    fresh.connect()
    try:
        store.command("CREATE TABLE schema_migrations (version UInt32, name String,"
                      " applied_at DateTime64(3, 'UTC') DEFAULT now64(3))"
                      " ENGINE = MergeTree ORDER BY version")
        for path in old[:old_version]:
            for stmt in split_statements(path.read_text()):
                store.command(stmt.rstrip(";"))
            store.command(f"INSERT INTO schema_migrations (version, name) VALUES"
                          f" ({int(path.name[:4])}, '{path.name}')")
        applied = migrate(store, settings)
        assert applied == [n for v, n, _ in migration_files() if v > old_version]
        migrate(fresh, fresh.settings)
        assert _schema(store) == _schema(fresh)
    finally:
        store.close()
        fresh.close()


def test_a_failed_migration_disconnects_so_the_next_attempt_migrates(
        tmp_path: Path, chdb_path: Path) -> None:
    """Connected but half-migrated, a collector would store into a half-built schema and
    never try again (seen over HTTP): the Store connects only with its preparation done."""
    from quietly_collector.settings import Settings
    from quietly_collector.storage.store import StorageError

    calls: list[int] = []

    def prepare(store: Store, settings: Settings) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise StorageError("Code: 159. DB::Exception: Timeout exceeded")

    store = Store(make_settings(tmp_path, chdb_path), prepare)
    try:
        with pytest.raises(StorageError):
            store.ensure_ready()
        assert not store.connected
        store.ensure_ready()
        assert store.connected and len(calls) == 2
    finally:
        store.close()
