"""The schema: numbered migrations (sql/migrations, tables and materialized views),
applied once each and recorded in ``schema_migrations``, then the current metric
views (sql/views.sql), the retention TTLs and the metric settings."""

from __future__ import annotations

import re
from importlib import resources

from quietly_collector.settings import Settings
from quietly_collector.storage.metric_config import write_metric_settings
from quietly_collector.storage.retention import apply_retention
from quietly_collector.storage.store import Store

_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migration_files() -> list[tuple[int, str, str]]:
    """The numbered migrations (tables and materialized views), in order."""
    root = resources.files("quietly_collector.storage") / "sql" / "migrations"
    out = []
    for entry in root.iterdir():
        m = _MIGRATION_FILE.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)


def views_sql() -> str:
    """The one current definition of every metric view (CREATE OR REPLACE VIEW)."""
    return (resources.files("quietly_collector.storage") / "sql" / "views.sql").read_text(
        encoding="utf-8")


def split_statements(sql: str) -> list[str]:
    """Split on ``;`` at line ends; comments are dropped (ClickHouse takes one statement
    per request over HTTP)."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";").strip()]


def migrate(store: Store, settings: Settings) -> list[str]:
    """Apply every migration not yet recorded, then the metric views (views.sql), the
    retention TTLs and the metric settings. Idempotent."""
    store.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))"
        " ENGINE = MergeTree ORDER BY version"
    )
    _, rows = store.query("SELECT version FROM schema_migrations")
    done = {int(r[0]) for r in rows}
    applied = []
    for version, name, sql in migration_files():
        if version in done:
            continue
        for stmt in split_statements(sql):
            store.command(stmt.rstrip(";"))
        store.command(
            f"INSERT INTO schema_migrations (version, name) VALUES ({version}, '{name}')"
        )
        applied.append(name)
    # Every time: a view's definition changes without a migration, and an old database
    # gets the same views as a fresh one.
    for stmt in split_statements(views_sql()):
        store.command(stmt.rstrip(";"))
    apply_retention(store, settings)
    write_metric_settings(store, settings)
    return applied
