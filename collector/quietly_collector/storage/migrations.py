"""The schema: numbered migrations (sql/migrations, tables and materialized views),
applied once each and recorded in ``schema_migrations``, then the current metric
views (sql/views.sql), the retention TTLs and the metric settings."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from importlib import resources

from quietly_collector.settings import Settings
from quietly_collector.storage.lease import Lease
from quietly_collector.storage.metric_config import write_metric_settings
from quietly_collector.storage.retention import apply_retention
from quietly_collector.storage.store import StorageError, Store
from quietly_collector.storage.views import expand

log = logging.getLogger("quietly.migrations")
# How long a start waits for another collector's migrations (0009's backfill of a
# large database takes minutes).
LOCK_WAIT_S = 900.0
_LEASES_SQL = (
    "CREATE TABLE IF NOT EXISTS leases (name String, epoch UInt64, holder String,"
    " renewed_at DateTime64(3, 'UTC'), expires_at DateTime64(3, 'UTC'))"
    " ENGINE = MergeTree ORDER BY (name, epoch, renewed_at)"
    " TTL toDateTime(renewed_at) + toIntervalDay(1)"
)


class SchemaTooNew(Exception):
    """The database was migrated by a newer collector: this one must not run on it.
    Not a StorageError: a collector retries those, and this one it must not."""

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


def view_statements() -> list[str]:
    """The statements making the metric views: each ``_by`` view of views.sql and the
    plain view derived from it (storage/views.py)."""
    return expand(split_statements(views_sql()))


def split_statements(sql: str) -> list[str]:
    """Split on ``;`` at line ends; comments are dropped (ClickHouse takes one statement
    per request over HTTP)."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";").strip()]


def migrate(store: Store, settings: Settings) -> list[str]:
    """Apply every migration not yet recorded, then the metric views (views.sql), the
    retention TTLs and the metric settings. Idempotent. With a ClickHouse server, under
    the ``migrations`` lease: collectors that start together apply each migration once."""
    store.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))"
        " ENGINE = MergeTree ORDER BY version"
    )
    if settings.embedded:  # one process owns the directory: nobody to race
        return _migrate(store, settings, None)
    # Made here, not by a migration: the lock must exist before the first one runs.
    store.command(_LEASES_SQL)
    with _locked(store, settings) as lease:
        return _migrate(store, settings, lease)


@contextlib.contextmanager
def _locked(store: Store, settings: Settings) -> Iterator[Lease]:
    lease = Lease(store, "migrations", settings.lease_ttl_s)
    deadline = time.monotonic() + LOCK_WAIT_S
    while not lease.acquire():
        if time.monotonic() > deadline:
            raise StorageError(f"migrations: another collector held the lock for over"
                               f" {LOCK_WAIT_S:.0f} s")
        time.sleep(min(1.0, settings.lease_ttl_s / 10))
    # Renewed while the migrations run: a long backfill must not let another start in.
    done = threading.Event()

    def renew() -> None:
        while not done.wait(settings.lease_ttl_s / 3):
            with contextlib.suppress(Exception):
                lease.acquire()

    keeper = threading.Thread(target=renew, name="quietly-migrations-lease", daemon=True)
    keeper.start()
    try:
        yield lease
    finally:
        done.set()
        keeper.join()
        lease.release()


def check_version(store: Store) -> set[int]:
    """The versions recorded; SchemaTooNew if one is newer than this collector knows."""
    _, rows = store.query("SELECT version FROM schema_migrations")
    done = {int(r[0]) for r in rows}
    known = max(v for v, _, _ in migration_files())
    if done and max(done) > known:
        raise SchemaTooNew(
            f"database {store.database} has schema version {max(done)}, newer than this"
            f" collector's {known}: a newer collector migrated it. Upgrade this collector"
            " (docs/operations.md, Upgrades), or point it at another database.")
    return done


def _migrate(store: Store, settings: Settings, lease: Lease | None) -> list[str]:
    done = check_version(store)
    applied = []
    for version, name, sql in migration_files():
        if version in done:
            continue
        if lease is not None and not lease.valid():
            raise StorageError("migrations: the lock lapsed (ClickHouse too slow to renew it)")
        log.info("applying migration %s", name)
        for stmt in split_statements(sql):
            store.command(stmt.rstrip(";"))
        store.command(
            f"INSERT INTO schema_migrations (version, name) VALUES ({version}, '{name}')"
        )
        applied.append(name)
    # Every time: a view's definition changes without a migration, and an old database
    # gets the same views as a fresh one.
    for stmt in view_statements():
        store.command(stmt.rstrip(";"))
    apply_retention(store, settings)
    write_metric_settings(store, settings)
    return applied
