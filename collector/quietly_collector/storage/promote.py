"""Promotion: staged events into ``events``, each id once, by one collector at a time.

With several collectors over one ClickHouse server, a resent batch may reach a
collector that cannot know another still holds the first copy in its spool; both
store it. Materialized views fire on every insert into ``events``, so the copies
must meet before that table. So every writer inserts into ``events_staging``
(migration 0017, no views), and the holder of the ``leader`` lease alone moves
staged rows into ``events``, in one ``INSERT ... SELECT`` that leaves out ids already
there, repeats within the staged rows, and installs with a deletion receipt. One
writer of ``events`` at a time (the lease) makes that check and that insert one
step: no two collectors can both find an id absent.

The staged rows are taken by whole parts (a committed part never changes), and
their parts are dropped once promoted. A part merged meanwhile is not found to
drop; its rows come up again next time and the check leaves out what was moved.
Everything here blocks and runs in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from quietly_collector.storage.mutations import quote_str
from quietly_collector.storage.rows import EVENT_COLUMNS
from quietly_collector.storage.store import INSERT_SETTINGS, StorageError, Store

STAGING_TABLE = "events_staging"
# Parts per promotion: each writer's insert is one part (two with rows of two months).
MAX_PARTS = 20
_PARTS_SQL = (
    "SELECT name, rows FROM system.parts WHERE database = currentDatabase()"
    " AND table = {t:String} AND active ORDER BY modification_time, name LIMIT {n:UInt32}"
)


@dataclass
class Promoted:
    parts: int = 0
    staged: int = 0  # rows in the parts taken
    promoted: int = 0  # rows inserted into events
    parts_kept: int = 0  # not dropped (merged meanwhile): taken again next time

    @property
    def skipped(self) -> int:
        """Staged rows left out: ids already in events, repeats, deleted installs."""
        return self.staged - self.promoted


def staged_rows(store: Store) -> int:
    _, rows = store.query(
        "SELECT sum(rows) FROM system.parts WHERE database = currentDatabase()"
        " AND table = {t:String} AND active", {"t": STAGING_TABLE})
    return int(rows[0][0] or 0) if rows else 0


def promote_once(store: Store, max_seconds: float) -> Promoted:
    """One promotion, within ``max_seconds`` (the lease's remaining time: a promotion
    must not outlive the lease it runs under)."""
    out = Promoted()
    if max_seconds < 1:
        return out
    _, parts = store.query(_PARTS_SQL, {"t": STAGING_TABLE, "n": MAX_PARTS})
    if not parts:
        return out
    names = [str(p[0]) for p in parts]
    out.parts, out.staged = len(names), sum(int(p[1]) for p in parts)
    taken = "(" + ",".join(quote_str(n) for n in names) + ")"
    cols = ", ".join(EVENT_COLUMNS)
    where = (
        f" FROM {STAGING_TABLE} WHERE _part IN {taken}"
        " AND event_id NOT IN (SELECT event_id FROM events WHERE event_id IN"
        f" (SELECT event_id FROM {STAGING_TABLE} WHERE _part IN {taken}))"
        " AND (project, install_hash) NOT IN (SELECT project, install_hash"
        " FROM deletion_receipts)"
    )
    limit = {"max_execution_time": max(1, int(max_seconds))}
    _, counted = store.query(f"SELECT uniqExact(event_id){where}", settings=limit)
    out.promoted = int(counted[0][0]) if counted else 0
    if out.promoted:
        # The first copy received wins, as a single collector would have kept it.
        store.command(
            f"INSERT INTO events ({cols}) SELECT {cols}{where}"
            " ORDER BY received_at LIMIT 1 BY event_id",
            {**INSERT_SETTINGS, **limit})
    for name in names:
        try:
            store.command(f"ALTER TABLE {STAGING_TABLE} DROP PART {quote_str(name)}")
        except StorageError:
            out.parts_kept += 1
    return out


__all__ = ["MAX_PARTS", "STAGING_TABLE", "Promoted", "promote_once", "staged_rows"]
