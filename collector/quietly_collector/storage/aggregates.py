"""Upkeep of the aggregates that a plain ``ALTER TABLE ... DELETE`` cannot keep right
(migration 0009):

* ``agg_performance_rollup_v2`` has no ``install_hash`` (that is what makes it small),
  so a deletion cannot remove one install's samples from it. The days the deleted
  install had in ``agg_performance`` (the per-install, erasable source) are taken
  before its rows go, and afterwards rebuilt from what ``agg_performance`` still holds.
* ``agg_active_days_v2`` and ``agg_features_v2`` keep an install's days in one row
  (an array, a map). A TTL on ``last_day`` drops a row once its newest day expires;
  older days inside a live row are trimmed here, at each maintenance cycle.

Everything blocks, and runs in the writer's thread under its lock, so no insert
interleaves with a rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from quietly_collector.settings import retention_of
from quietly_collector.storage.mutations import Targets
from quietly_collector.storage.store import Store

ROLLUP = "agg_performance_rollup_v2"
ROLLUP_SOURCE = "agg_performance"
_KEYS = "project, app, day, operation, measure, app_version"

# Table -> (column, expression keeping its unexpired days; {keep} is the predicate).
DAY_SETS: dict[str, tuple[str, str]] = {
    "agg_active_days_v2": ("days", "arrayFilter(d -> {keep}, days)"),
    "agg_features_v2": ("uses", "mapFilter((d, n) -> {keep}, uses)"),
}


def rollup_days(store: Store, installs: str) -> list[date]:
    """Days of ``agg_performance`` holding rows of these installs (an SQL condition of
    our own: deletion.installs_in); call before deleting them."""
    _, rows = store.query(
        f"SELECT DISTINCT day FROM {ROLLUP_SOURCE} WHERE {installs} ORDER BY day"
    )
    return [r[0] for r in rows]


def rebuild_rollup(store: Store, days: Sequence[date]) -> None:
    """Replace the rollup's rows of these days by the merge of ``agg_performance``'s."""
    if not days:
        return
    in_days = ",".join(f"'{d.isoformat()}'" for d in sorted(set(days)))
    store.write_command(
        f"ALTER TABLE {Targets(store)[ROLLUP].alter} DELETE WHERE day IN ({in_days})",
        {"mutations_sync": 2},
    )
    # insert_deduplicate = 0: a rebuild may produce the very block an earlier one
    # inserted, and the table's deduplication window would silently drop it.
    store.write_command(
        f"INSERT INTO {ROLLUP} SELECT {_KEYS}, sum(samples),"
        " quantilesTDigestMergeState(0.5, 0.95, 0.99)(q), uniqState(install_hash)"
        f" FROM {ROLLUP_SOURCE} WHERE day IN ({in_days}) GROUP BY {_KEYS}",
        {"insert_deduplicate": 0},
    )


def trim_expired_days(store: Store) -> dict[str, int]:
    """Remove days past retention from the day sets of live rows; rows changed per table."""
    out: dict[str, int] = {}
    targets = Targets(store)  # on a cluster: every shard, not the connected node's
    for table, (column, expr) in DAY_SETS.items():
        days = retention_of(store.settings, table)
        if days <= 0:
            continue
        # The same condition as the table's TTL (retention.ttl_expression).
        expired = f"toDateTime(d) + toIntervalDay({int(days)}) <= now()"
        keys = "days" if column == "days" else "mapKeys(uses)"
        where = f"arrayExists(d -> {expired}, {keys})"
        _, [(n,)] = store.query(f"SELECT count() FROM {table} WHERE {where}")
        if not n:
            continue
        keep = f"toDateTime(d) + toIntervalDay({int(days)}) > now()"
        store.write_command(
            f"ALTER TABLE {targets[table].alter} UPDATE {column} = {expr.format(keep=keep)}"
            f" WHERE {where}",
            {"mutations_sync": 2},
        )
        out[table] = int(n)
    return out
