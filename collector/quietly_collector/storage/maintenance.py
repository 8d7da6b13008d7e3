"""One maintenance cycle (``quietly gc``, ``POST /v1/admin/gc``, and every
``maintenance_interval_s``): expired rows gone now, deleted installs gone
everywhere, failed mutations cleared.

1. Mutations of this database that failed (``latest_fail_reason``) are killed:
   they would retry forever. What they were for is redone below.
2. Every partition holding a part with rows past its TTL gets
   ``ALTER TABLE ... MATERIALIZE TTL IN PARTITION`` (synchronous), which rewrites
   it without them. ClickHouse finds such parts itself only at its next TTL merge
   (``merge_with_ttl_timeout``, 4 h on a server).
3. Every per-install table is searched for installs that have a deletion
   receipt; rows found (an insert racing a deletion, another collector, a
   restore) are deleted like a deletion request deletes them.
   Before that, days past retention are trimmed from the day sets of live rows
   (``agg_active_days_v2``, ``agg_features_v2``; aggregates.py).
4. Every partition of an aggregate table left in more than one part, up to
   ``COMPACT_MAX_ROWS`` rows, is merged (``OPTIMIZE ... PARTITION ID ... FINAL``).
   The views aggregate their tables' rows again at each query, so they pay for
   every unmerged row; background merges leave small tables in several parts for
   hours.

It runs under the writer's lock, so no insert or deletion interleaves with it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from quietly_collector.storage import aggregates
from quietly_collector.storage.deletion import RECEIPTS_TABLE, installs_where, per_install_tables
from quietly_collector.storage.mutations import Targets, quote_ident, quote_str
from quietly_collector.storage.store import Store

log = logging.getLogger("quietly.maintenance")

_EXPIRED_SQL = (
    "SELECT table, partition_id, sum(rows) FROM system.parts"
    " WHERE database = currentDatabase() AND active"
    " AND delete_ttl_info_min > toDateTime(0) AND delete_ttl_info_min <= now()"
    " GROUP BY table, partition_id ORDER BY table, partition_id"
)
_ROWS_SQL = (
    "SELECT sum(rows) FROM system.parts WHERE database = currentDatabase() AND active"
    " AND table = {t:String} AND partition_id = {p:String}"
)
# Partitions larger than this are left to ClickHouse's own merges: OPTIMIZE rewrites
# the whole partition, every cycle.
COMPACT_MAX_ROWS = 5_000_000
_UNMERGED_SQL = (
    "SELECT table, partition_id, count(), sum(rows) FROM system.parts"
    " WHERE database = currentDatabase() AND active AND table IN"
    " (SELECT name FROM system.tables WHERE database = currentDatabase()"
    " AND engine LIKE '%AggregatingMergeTree')"
    " GROUP BY table, partition_id HAVING count() > 1 AND sum(rows) <= {max:UInt64}"
    " ORDER BY table, partition_id"
)
_FAILED_SQL = (
    "SELECT count() FROM system.mutations WHERE database = currentDatabase()"
    " AND NOT is_done AND latest_fail_reason != ''"
)


@dataclass
class GcReport:
    expired_rows: dict[str, int] = field(default_factory=dict)
    stray_rows: dict[str, int] = field(default_factory=dict)
    # Table -> parts merged away (a partition of n parts counts n - 1).
    parts_compacted: dict[str, int] = field(default_factory=dict)
    mutations_killed: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "expired_rows": self.expired_rows,
            "stray_rows_deleted": self.stray_rows,
            "parts_compacted": self.parts_compacted,
            "mutations_killed": self.mutations_killed,
            "seconds": round(self.seconds, 3),
        }


def run_gc(store: Store) -> GcReport:
    """Blocking: run in a thread, holding the writer's lock."""
    started = time.perf_counter()
    report = GcReport()
    _, [(failed,)] = store.query(_FAILED_SQL)
    if failed:
        store.write_command(
            "KILL MUTATION WHERE database = currentDatabase()"
            " AND NOT is_done AND latest_fail_reason != '' SYNC"
        )
        report.mutations_killed = int(failed)
    _, partitions = store.query(_EXPIRED_SQL)
    for table, partition, before in partitions:
        store.write_command(
            f"ALTER TABLE {quote_ident(str(table))} MATERIALIZE TTL IN PARTITION ID"
            f" {quote_str(str(partition))}",
            {"mutations_sync": 2},
        )
        _, [(after,)] = store.query(_ROWS_SQL, {"t": table, "p": partition})
        gone = int(before) - int(after or 0)
        if gone:
            report.expired_rows[str(table)] = report.expired_rows.get(str(table), 0) + gone
    trimmed = aggregates.trim_expired_days(store)
    if trimmed:
        log.info("expired days trimmed from live rows: %s", trimmed)
    targets = Targets(store)  # on a cluster: every shard, not the connected node's
    for table, has_project in per_install_tables(store):
        target = targets[table]
        # A receipt deletes its own project's install only (see installs_where).
        if has_project:
            sql = (f"SELECT project, install_hash, count() FROM {target.read}"
                   " WHERE (project, install_hash) IN"
                   f" (SELECT project, install_hash FROM {RECEIPTS_TABLE})"
                   " GROUP BY project, install_hash")
        else:
            sql = (f"SELECT '', install_hash, count() FROM {target.read}"
                   f" WHERE install_hash IN (SELECT install_hash FROM {RECEIPTS_TABLE})"
                   " GROUP BY install_hash")
        _, found = store.query(sql)
        if not found:
            continue
        where = installs_where([(str(p), int(h)) for p, h, _ in found], has_project)
        rebuild = (aggregates.rollup_days(store, where)
                   if table == aggregates.ROLLUP_SOURCE else [])
        store.write_command(f"ALTER TABLE {target.alter} DELETE WHERE {where}",
                            {"mutations_sync": 2})
        aggregates.rebuild_rollup(store, rebuild)
        report.stray_rows[table] = sum(int(n) for _, _, n in found)
    _compact(store, targets, report)
    report.seconds = time.perf_counter() - started
    return report


def _compact(store: Store, targets: Targets, report: GcReport) -> None:
    # On a cluster the parts seen are the connected node's; ON CLUSTER merges the
    # partition on every shard (one already merged is rewritten, at worst).
    _, rows = store.query(_UNMERGED_SQL, {"max": COMPACT_MAX_ROWS})
    for table, partition, parts, _rows in rows:
        store.write_command(
            f"OPTIMIZE TABLE {targets[str(table)].alter} PARTITION ID {quote_str(str(partition))}"
            " FINAL"
        )
        report.parts_compacted[str(table)] = (
            report.parts_compacted.get(str(table), 0) + int(parts) - 1
        )


@dataclass
class MaintenanceState:
    runs: int = 0
    last_at: str = ""
    last: dict[str, Any] = field(default_factory=dict)
    last_error: str = ""
