"""Where a deletion or an upkeep mutation must run: one node, or every shard.

On a single node a table is its own target. On a cluster (`quietly cluster-ddl`) the
collector's table names are ``Distributed`` tables in front of ``<name>_local``
tables on every shard; an ``ALTER TABLE ... DELETE`` on the node the collector
happens to be connected to would erase an install from one shard only, and then a
receipt would claim it gone. So the engine of every table is read from
``system.tables``: a local table behind a ``Distributed`` one is read through the
``Distributed`` table (every shard) and altered ``ON CLUSTER``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from quietly_collector.storage.store import Store

# Distributed('cluster', 'database', 'local_table'[, sharding_key[, policy]]), as
# ClickHouse writes it in system.tables.engine_full.
_STR = r"'((?:[^'\\]|\\.)*)'"
_DISTRIBUTED = re.compile(rf"^Distributed\(\s*{_STR}\s*,\s*{_STR}\s*,\s*{_STR}")
_UNESCAPE = re.compile(r"\\(.)")


def quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_distributed(engine_full: str) -> tuple[str, str, str] | None:
    """(cluster, database, local table) of a Distributed engine, else None."""
    m = _DISTRIBUTED.match(engine_full.strip())
    if not m:
        return None
    cluster, database, local = (_UNESCAPE.sub(r"\1", g) for g in m.groups())
    return cluster, database, local


@dataclass(frozen=True)
class Target:
    read: str  # what to SELECT from to see every row (quoted)
    alter: str  # what follows ALTER TABLE to change every row

    @staticmethod
    def local(table: str) -> Target:
        return Target(quote_ident(table), quote_ident(table))


class Targets:
    """Table name -> Target for the current database, read once per use."""

    def __init__(self, store: Store) -> None:
        _, rows = store.query(
            "SELECT name, engine_full FROM system.tables"
            " WHERE database = currentDatabase() AND engine = 'Distributed'"
        )
        self._by_table: dict[str, Target] = {}
        for name, engine_full in rows:
            parsed = parse_distributed(str(engine_full))
            if parsed is None:
                continue
            cluster, _database, local = parsed
            target = Target(quote_ident(str(name)),
                            f"{quote_ident(local)} ON CLUSTER {quote_str(cluster)}")
            # Callers may name either the local table (found by its columns and
            # engine) or the Distributed one (a fixed name such as the rollup).
            self._by_table[local] = self._by_table[str(name)] = target

    @property
    def clustered(self) -> bool:
        return bool(self._by_table)

    def __getitem__(self, table: str) -> Target:
        return self._by_table.get(table) or Target.local(table)
