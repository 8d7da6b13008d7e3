"""Deletions and upkeep on a cluster reach every shard (mutations.py).

No cluster runs here (see docs/operations.md): the engine text is the one ClickHouse's
own parser gives the `quietly cluster-ddl` statements, and every statement a cluster
target produces is parsed by the embedded engine. On a single node nothing changes."""

from __future__ import annotations

import re

from quietly_collector.storage.cluster_ddl import cluster_statements
from quietly_collector.storage.deletion import per_install_tables
from quietly_collector.storage.mutations import Target, Targets, parse_distributed
from quietly_collector.storage.store import Store

CLUSTER = "qc"
_ENGINE = re.compile(r"ENGINE = (Distributed\(.*?\))")




def _formatted(store: Store, sql: str) -> str:
    _, [(text,)] = store.query("SELECT formatQuery({q:String})", {"q": sql})
    return str(text)


def test_every_distributed_table_of_the_cluster_ddl_is_recognised(single: Store) -> None:
    statements = cluster_statements(CLUSTER, "quietly")
    engines = [m.group(1) for s in statements
               if (m := _ENGINE.search(_formatted(single, s.sql)))]
    assert len(engines) >= 10  # events, rejected_events, receipts, every agg_* table
    created = {m.group(1) for s in statements
               if (m := re.search(r"CREATE TABLE IF NOT EXISTS (?:\S+\.)?`?(\w+)`?", s.sql))}
    for engine in engines:
        parsed = parse_distributed(engine)
        assert parsed is not None, engine
        cluster, database, local = parsed
        assert (cluster, database) == (CLUSTER, "quietly")
        assert local.endswith("_local") and local in created


def test_names_with_quotes_and_other_engines() -> None:
    assert parse_distributed("Distributed('a\\'b', 'db', 't_local', rand())") == (
        "a'b", "db", "t_local")
    assert parse_distributed("ReplicatedMergeTree('/p/{shard}', '{replica}')") is None
    assert parse_distributed("Merge('db', '^t')") is None


def test_cluster_targets_alter_every_shard_and_parse(single: Store) -> None:
    local = Target(read="`events`", alter="`events_local` ON CLUSTER 'qc'")
    for sql in (
        f"ALTER TABLE {local.alter} DELETE WHERE install_hash IN (1,2)",
        f"ALTER TABLE {local.alter} UPDATE days = arrayFilter(d -> d > today(), days)"
        " WHERE 1",
    ):
        assert "ON CLUSTER qc" in _formatted(single, sql)


def test_on_a_single_node_every_table_is_its_own_target(single: Store) -> None:
    targets = Targets(single)
    assert not targets.clustered
    tables = [t for t, _ in per_install_tables(single)]
    assert "events" in tables
    for table in tables:
        assert targets[table] == Target.local(table)
