"""The cluster DDL (cluster_ddl.py): every statement parses, every single-node object
has its cluster counterpart, and on one simulated shard the metric views give the
single-node answers. No ZooKeeper or cluster here: see docs/operations.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quietly_collector.commands.main import main
from quietly_collector.insights.metrics import METRICS, NOT_VIEWS, PERIOD_VIEWS, UNSEGMENTED
from quietly_collector.storage.cluster_ddl import (
    GLOBAL_TABLES,
    cluster_statements,
    render,
    retention_statements,
)
from quietly_collector.storage.store import Store
from tests.conftest import make_settings

CLUSTER = "qc"




def _parses(store: Store, sql: str) -> bool:
    try:
        store.query("SELECT formatQuery({q:String})", {"q": sql})
    except Exception:
        return False
    return True


def test_every_statement_parses(single: Store) -> None:
    # The check is not vacuous: ClickHouse's parser refuses a typo.
    assert not _parses(single, "CREATE TABLE x ON CLUSTER 'c' (a UInt8) ENGNE = Log")
    settings = make_settings(Path("/nonexistent"), Path("/nonexistent"), retention_days=400,
                             table_retention_days={"audit_log": 730})
    ttls = retention_statements(CLUSTER, "quietly", settings)
    assert len(ttls) == 3  # events, rejected_events (30 days by default), audit_log
    statements = cluster_statements(CLUSTER, "quietly") + ttls
    bad = [s.sql[:120] for s in statements if not _parses(single, s.sql)]
    assert bad == []
    # The printed script splits back into the same statements.
    script = render(statements)
    assert script.count(";\n") == len(statements)


def _objects(store: Store) -> dict[str, str]:
    rows = store.query(
        "SELECT name, engine FROM system.tables WHERE database = currentDatabase()")[1]
    return {str(r[0]): str(r[1]) for r in rows}


def test_every_table_and_view_has_its_cluster_counterpart(single: Store) -> None:
    created: dict[str, str] = {}
    for s in cluster_statements(CLUSTER, "quietly"):
        if m := re.match(r"CREATE (?:TABLE|MATERIALIZED VIEW|VIEW|OR REPLACE VIEW)"
                         r"(?: IF NOT EXISTS)? quietly\.(\w+) ON CLUSTER 'qc'", s.sql):
            e = re.search(r"ENGINE = (\w+)", s.sql)
            kind = "MaterializedView" if "MATERIALIZED" in s.sql else "View"
            created[m.group(1)] = e.group(1) if e and "VIEW" not in s.sql[:30] else kind
        elif m := re.match(r"DROP (?:TABLE|VIEW) IF EXISTS quietly\.(\w+) ", s.sql):
            created.pop(m.group(1), None)
    for name, engine in _objects(single).items():
        if engine.endswith("MergeTree"):
            if name in GLOBAL_TABLES:
                assert created[name] == "Replicated" + engine, name
            else:
                assert created[name + "_local"] == "Replicated" + engine, name
                assert created[name] == "Distributed", name
        else:
            assert created[name] == engine, name
    assert len(created) == len(_objects(single)) + len(
        [n for n in created if n.endswith("_local")])


def test_views_read_distributed_tables_and_materialized_views_local_ones() -> None:
    for s in cluster_statements(CLUSTER, "quietly"):
        tables = re.findall(r"\b(?:FROM|JOIN)\s+([\w.]+)", s.sql)
        ours = [t for t in tables if t.startswith("quietly.")]
        if s.sql.startswith("CREATE MATERIALIZED VIEW"):
            assert ours and all(t.endswith("_local") for t in ours), s.sql[:80]
            assert re.search(r" TO quietly\.\w+_local AS", s.sql), s.sql[:80]
        elif " VIEW " in s.sql[:30] or s.sql.startswith("INSERT"):
            assert not any(t.endswith("_local") for t in ours), s.sql[:80]
        # Every table read is qualified: none falls back to the session's database.
        unqualified = [t for t in tables if "." not in t and (t + "_local") in s.sql]
        assert unqualified == [], s.sql[:80]


def _one_shard(sql: str, database: str) -> str | None:
    """The statement as one shard would run it, on an engine with no ZooKeeper: the
    local tables become plain MergeTree, the Distributed ones a Merge over them."""
    if sql.startswith("INSERT INTO") and " SELECT " in f" {sql} ":
        return None  # a backfill into Distributed; nothing to backfill here
    sql = sql.replace(" ON CLUSTER 'qc'", "")
    sql = re.sub(r"ENGINE = Replicated(\w+)\('[^']*', '\{replica\}'(?:, ([^()]*))?\)",
                 lambda m: f"ENGINE = {m.group(1)}" + (f"({m.group(2)})" if m.group(2) else ""),
                 sql)
    sql = re.sub(r"ENGINE = Distributed\('qc', '\w+', '(\w+)', [^;]*\)$",
                 lambda m: f"ENGINE = Merge('{database}', '^{m.group(1)}$')", sql)
    return sql


EVENTS = """
INSERT INTO {t} (event_id, project, event, version, install_hash, session_hash, ts, client_ts,
    received_at, ts_source, app, app_version, props)
SELECT generateUUIDv4(), 'proj', ev, 1, install, install * 10 + number % 2,
       toDateTime64('2026-11-01 10:00:00', 3, 'UTC') + toIntervalDay(number % 9) AS t, t, t,
       'client', 'ide', '1.0', props
FROM numbers(60)
ARRAY JOIN [('feature_used', '{{"feature":"debugging"}}'),
            ('performance', '{{"operation":"build","duration_ms":120}}'),
            ('survey_response', '{{"survey":"nps","score":9}}'),
            ('deployment', '{{"environment":"production","success":true}}'),
            ('job_completed', '{{"job":"ship"}}'),
            ('build_finished', '{{"success":true,"duration_ms":900}}'),
            ('experiment_exposure', '{{"experiment":"tour","variant":"b"}}')] AS e
ARRAY JOIN [e.1] AS ev, [e.2] AS props, [number % 7] AS install
"""


def test_on_one_shard_every_metric_view_gives_the_single_node_answer(single: Store) -> None:
    db = single.database + "_cluster"
    for s in cluster_statements(CLUSTER, db):
        local = _one_shard(s.sql, db)
        if local is not None:
            single.command(local)
    for table in ("metric_settings", "metric_thresholds"):
        single.command(f"INSERT INTO {db}.{table} SELECT * FROM {single.database}.{table}")
    single.command(EVENTS.format(t="events"))
    single.command(EVENTS.format(t=f"{db}.events_local"))
    params = "since = '2026-10-01', until = '2027-12-31', app = ''"
    for name in METRICS:
        if name in NOT_VIEWS:
            continue
        period = ", period = 'week'" if name in PERIOD_VIEWS else ""
        # Each plain view, and its _by view with a breakdown (UNSEGMENTED have none).
        views = [f"metric_{name}({params}{period})"]
        if name not in UNSEGMENTED:
            views.append(f"metric_{name}_by({params}{period}, by = ['platform'], where = [])")
        for view in views:
            query = f"SELECT * FROM {{db}}{view} ORDER BY ALL"
            expected = single.query(query.format(db=""))
            assert expected[1], view  # the data reaches every metric
            assert single.query(query.format(db=f"{db}.")) == expected, view


def test_cli_prints_the_script_and_refuses_a_bad_name(
    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster-ddl", "--cluster", "qc", "--database", "tel", "--after", "10"]) == 0
    out = capsys.readouterr().out
    assert "-- 0011_metric_views_v3.sql" in out and "0010_" not in out
    assert "CREATE OR REPLACE VIEW tel.metric_wau ON CLUSTER 'qc' AS" in out
    assert main(["cluster-ddl", "--cluster", "qc; DROP"]) == 2
