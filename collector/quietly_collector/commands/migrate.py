"""``quietly migrate``: apply the ClickHouse migrations and views (idempotent)."""

from __future__ import annotations

import argparse
from typing import Any

from quietly_collector.commands.flags import COMMON, add_setting_flags, fatal
from quietly_collector.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("migrate", help="apply ClickHouse migrations (idempotent)")
    add_setting_flags(p, (
        *COMMON, "retention_days", "rejected_retention_days", "aggregate_retention_days",
        "table_retention_days",
        "activation_event", "production_environments", "perf_thresholds",
    ))


def run(args: argparse.Namespace, settings: Settings) -> int:
    from quietly_collector.storage.migrations import migrate
    from quietly_collector.storage.store import Store

    store = Store(settings)
    try:
        store.connect()
        applied = migrate(store, settings)
    except Exception as exc:
        return fatal(exc)
    finally:
        store.close()
    if applied:
        print("applied: " + ", ".join(applied))
    else:
        print(f"database {store.database} is up to date")
    return 0
