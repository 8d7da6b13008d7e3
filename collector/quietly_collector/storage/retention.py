"""Retention: a ClickHouse TTL per table, from configuration (settings.RETENTION_COLUMNS).

Set by ``quietly migrate`` and at start. A TTL is enforced when ClickHouse merges
a part with expired rows; a server does that at most every ``merge_with_ttl_timeout``
(4 h) per partition, so the maintenance cycle (maintenance.py) also expires them.
"""

from __future__ import annotations

import re

from quietly_collector.settings import RETENTION_COLUMNS, Settings, retention_of
from quietly_collector.storage.store import Store

_TTL = re.compile(r"\bTTL (.+?)(?: SETTINGS |$)")


def ttl_expression(column: str, days: int) -> str:
    return f"toDateTime({column}) + toIntervalDay({days})"


def apply_retention(store: Store, settings: Settings) -> dict[str, int]:
    """Set or remove each table's TTL; returns the days per table (0: kept)."""
    out = {}
    for table, column in RETENTION_COLUMNS.items():
        out[table] = days = retention_of(settings, table)
        _apply_ttl(store, table, column, days)
    return out


def _apply_ttl(store: Store, table: str, column: str, days: int) -> None:
    _, rows = store.query(
        "SELECT create_table_query, engine FROM system.tables"
        " WHERE database = currentDatabase() AND name = {t:String}",
        {"t": table},
    )
    # On a cluster the TTL belongs to the local table (`quietly cluster-ddl`).
    if not rows or rows[0][1] == "Distributed":
        return
    m = _TTL.search(str(rows[0][0]))
    current = m.group(1).strip() if m else ""
    wanted = ttl_expression(column, days) if days > 0 else ""
    # Unchanged: no ALTER, since MODIFY TTL rewrites every part of the table.
    if current == wanted:
        return
    if wanted:
        store.command(f"ALTER TABLE {table} MODIFY TTL {wanted}")
    else:
        store.command(f"ALTER TABLE {table} REMOVE TTL")
