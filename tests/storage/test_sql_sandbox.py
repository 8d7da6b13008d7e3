"""The SQL sandbox: what an engineer's SQL may read, and everything it may not.

Checked on the real engine (its own parser decides what a statement touches): an
adversarial corpus is refused with a reason naming what, the read-only queries an
engineer writes (and every SQL example in the docs) are answered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from quietly_collector.storage.sandbox.functions import allowed
from quietly_collector.storage.sandbox.runner import Refused, SqlError
from quietly_collector.storage.store import Store

ROOT = Path(__file__).resolve().parents[2]

# (statement, what the refusal must name)
REFUSED = [
    # Files and output.
    ("SELECT 'x' INTO OUTFILE '/tmp/quietly-sandbox-probe'", "INTO OUTFILE"),
    ("SELECT 'x' INTO OUTFILE '/tmp/quietly-sandbox-probe' APPEND", "INTO OUTFILE"),
    ("SELECT 'x' INTO OUTFILE '/tmp/quietly-sandbox-probe' TRUNCATE", "INTO OUTFILE"),
    ("select 1 into outfile '/tmp/quietly-sandbox-probe'", "INTO OUTFILE"),
    ("SELECT 1 /* c */ INTO/**/OUTFILE '/tmp/quietly-sandbox-probe'", "INTO OUTFILE"),
    ("SELECT * FROM file('/etc/passwd', 'RawBLOB')", "file()"),
    ("SELECT * FROM FILE('/etc/passwd', 'RawBLOB')", "FILE()"),
    ("SELECT * FROM `file`('pseudonym.key', 'RawBLOB')", "file()"),
    ("SELECT file('/etc/passwd')", "file()"),
    ("SELECT length(file('/etc/passwd')) + 1", "file()"),
    ("SELECT arrayMap(x -> file(x), ['/etc/passwd'])", "file()"),
    ("SELECT * FROM fileCluster('c', '/etc/*')", "fileCluster()"),
    ("SELECT * FROM filesystem('/')", "filesystem()"),
    # Network and other databases.
    ("SELECT * FROM url('http://127.0.0.1:1/', 'RawBLOB')", "url()"),
    ("SELECT * FROM remote('127.0.0.1:9000', system.one)", "remote()"),
    ("SELECT * FROM remoteSecure('127.0.0.1:9440', system.one)", "remoteSecure()"),
    ("SELECT * FROM cluster('default', system.one)", "cluster()"),
    ("SELECT * FROM s3('http://127.0.0.1:1/b/k', 'CSV')", "s3()"),
    ("SELECT * FROM mysql('127.0.0.1:3306', 'db', 't', 'u', 'p')", "mysql()"),
    ("SELECT * FROM postgresql('127.0.0.1:5432', 'db', 't', 'u', 'p')", "postgresql()"),
    ("SELECT * FROM executable('cat /etc/passwd', 'RawBLOB', 'x String')", "executable()"),
    ("SELECT * FROM merge('system', '.*')", "merge()"),
    ("SELECT * FROM dictionary('d')", "dictionary()"),
    ("SELECT * FROM input('x String')", "input()"),
    ("SELECT * FROM viewExplain('EXPLAIN', '', (SELECT 1))", "viewExplain()"),
    ("SELECT * FROM (EXPLAIN SELECT 1)", "viewExplain()"),
    ("SELECT hasColumnInTable('127.0.0.1', 'u', 'p', 'system', 'one', 'dummy')",
     "hasColumnInTable()"),
    ("SELECT dictGet('d', 'a', toUInt64(1))", "dictGet()"),
    ("SELECT joinGet('j', 'v', 1)", "joinGet()"),
    ("SELECT getServerSetting('path')", "getServerSetting()"),
    ("SELECT sleep(3)", "sleep()"),
    ("SELECT logTrace('x')", "logTrace()"),
    ("SELECT aiGenerate('x')", "aiGenerate()"),
    # Outside the database, also hidden in expressions, subqueries, CTEs and unions.
    ("SELECT query FROM system.query_log", "system.query_log"),
    ("SELECT * FROM system.processes", "system.processes"),
    ("SELECT path FROM system.parts", "system.parts"),
    ("SELECT data_path FROM system.databases", "system.databases"),
    ("SELECT inIgnoreSet(1, system.settings)", "system.settings"),
    ("SELECT globalNotInIgnoreSet(1, system.query_log)", "system.query_log"),
    ("SELECT arrayReduce('stochasticLinearRegression', [1.0], [2.0])",
     "stochasticLinearRegression()"),
    ("SELECT initializeAggregation('naiveBayesClassifier', 1)", "naiveBayesClassifier()"),
    ("SELECT arrayReduce(concat('fi', 'le'), ['/etc/passwd'])", "string literal"),
    ("SELECT * FROM default.anything", "default.anything"),
    ("SELECT * FROM INFORMATION_SCHEMA.TABLES", "INFORMATION_SCHEMA.TABLES"),
    ("SELECT 1 WHERE 'x' IN system.query_log", "system.query_log"),
    ("SELECT count() FROM events WHERE event IN (SELECT query FROM system.query_log)",
     "system.query_log"),
    ("WITH q AS (SELECT * FROM system.query_log) SELECT * FROM q", "system.query_log"),
    ("SELECT 1 UNION ALL SELECT * FROM file('/etc/passwd', 'RawBLOB')", "file()"),
    ("SELECT 1 INTERSECT SELECT length(file('/etc/passwd'))", "file()"),
    ("SELECT (SELECT (SELECT file('/etc/passwd')))", "file()"),
    ("SELECT * FROM events AS e JOIN system.query_log AS q ON 1", "system.query_log"),
    ("SELECT * FROM `system`.`query_log`", "system.query_log"),
    ("SELECT * FROM system .query_log", "system.query_log"),
    # Statements other than SELECT.
    ("SET max_result_rows = 1", "not SET"),
    ("SHOW TABLES", "SHOW TABLES"),
    ("SYSTEM STOP MERGES", ""),
    ("KILL QUERY WHERE 1", ""),
    ("DROP TABLE events", "DROP"),
    ("INSERT INTO audit_log (actor) VALUES ('x')", "INSERT"),
    ("ALTER TABLE events DELETE WHERE 1", ""),
    ("CREATE TABLE x (a Int8) ENGINE = Memory", "CREATE"),
    ("EXPLAIN SELECT 1", "EXPLAIN"),
    ("SELECT 1; DROP TABLE events", ""),
    # Clauses that would lift limits or choose the output.
    ("SELECT 1 SETTINGS max_execution_time = 0", "SETTINGS"),
    ("SELECT count() FROM events SETTINGS readonly = 0", "SETTINGS"),
    ("SELECT * FROM (SELECT 1 SETTINGS max_result_rows = 0)", "SETTINGS"),
    ("SELECT 1 FORMAT CSV", "FORMAT"),
    ("SELECT 1 FORMAT JSONEachRow SETTINGS max_threads = 1", ""),
    ("SELECT count() FROM events -- x\nINTO OUTFILE '/tmp/quietly-sandbox-probe'",
     "INTO OUTFILE"),
    # Unicode look-alikes and escapes are names the parser sees as they are.
    ("SELECT * FROM \uff46\uff49\uff4c\uff45('/etc/passwd')", ""),  # fullwidth "file"
    ("SELECT * FROM `fi\\x6ce`('/etc/passwd', 'RawBLOB')", "file()"),
]

# What an engineer writes against the documented tables and views.
ANSWERED = [
    "SELECT event, count() FROM events GROUP BY event ORDER BY event",
    "select count() from events where toDate(ts) >= today() - 7",
    "SELECT e.event, r.reason FROM events AS e LEFT JOIN rejected_events AS r"
    " ON e.project = r.project LIMIT 5",
    "WITH d AS (SELECT install_hash, toDate(ts) AS day FROM events)"
    " SELECT day, uniqExact(install_hash) FROM d GROUP BY day",
    "SELECT 1 UNION ALL SELECT 2 UNION DISTINCT SELECT 3",
    "SELECT countIf(event = 'crash'), uniqExactIf(install_hash, event = 'crash'),"
    " quantile(0.5)(toUInt64(1)), COUNT(*), Sum(1) FROM events",
    "SELECT name, type FROM system.columns WHERE database = currentDatabase()"
    " AND table = 'events'",
    "SELECT name, engine FROM system.tables WHERE database = currentDatabase()",
    "SELECT * FROM metric_dau(since = '2026-11-01', until = '2026-11-30', app = '')",
    "SELECT * FROM metric_dau_by(since = '2026-11-01', until = '2026-11-30', app = '',"
    " by = ['channel'], where = [])",
    "SELECT number FROM numbers(3) ARRAY JOIN [1, 2] AS x",
    "SELECT row_number() OVER (ORDER BY number) FROM numbers(2)",
    "SELECT toStartOfWeek(now(), 1), now() - INTERVAL 1 DAY, CAST(1 AS String), 1::String",
    "SELECT JSONExtractString(props, 'feature') FROM events WHERE props LIKE '%x%'",
    "SELECT count() FROM events -- a trailing comment",
    "SELECT 'файл', 'Ünïcödé' AS `café`",
    "SELECT * FROM quietly_sandbox_db_placeholder.events",
    "SELECT arrayReduce('sumIf', [1, 2], [1, 0]), arrayReduce('quantile(0.5)', [1, 2, 3])",
]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, chdb_path: Path) -> Iterator[Store]:
    """One migrated database for the whole file: the sandbox only reads."""
    from quietly_collector.storage.migrations import migrate
    from tests.conftest import make_settings

    settings = make_settings(tmp_path_factory.mktemp("sandbox"), chdb_path)
    store = Store(settings)
    store.connect()
    migrate(store, settings)
    try:
        yield store
    finally:
        store.close()


def _run(store: Store, sql: str) -> tuple[list[str], list[Sequence[Any]]]:
    return store.sandbox.query(sql.replace("quietly_sandbox_db_placeholder", store.database))


@pytest.mark.parametrize(("sql", "names"), REFUSED)
def test_a_statement_that_reaches_outside_is_refused_naming_what(
    single: Store, sql: str, names: str
) -> None:
    with pytest.raises((Refused, SqlError)) as refused:
        _run(single, sql)
    if names:
        assert refused.type is Refused, refused.value
        assert names in str(refused.value), str(refused.value)
    assert not Path("/tmp/quietly-sandbox-probe").exists()


@pytest.mark.parametrize("sql", ANSWERED)
def test_the_queries_engineers_write_are_answered(single: Store, sql: str) -> None:
    columns, _ = _run(single, sql)
    assert columns


def _doc_examples() -> list[str]:
    """Every `quietly sql "..."` and every SELECT of a ```sql block in the README and
    docs/."""
    out: list[str] = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r'quietly sql "([^"]+)"', text):
            if "…" not in m.group(1):
                out.append(" ".join(m.group(1).split()))
        for block in re.findall(r"```sql\n(.*?)```", text, re.DOTALL):
            # Reads only: security.md's block is DDL for a server's administrator.
            out += [s.strip() for s in block.split(";")
                    if s.strip().upper().startswith(("SELECT", "WITH"))]
    return out


DOC_EXAMPLES = _doc_examples()


def test_the_docs_have_sql_examples() -> None:
    assert len(DOC_EXAMPLES) >= 8


@pytest.mark.parametrize("sql", DOC_EXAMPLES)
def test_every_sql_example_of_the_docs_is_answered(single: Store, sql: str) -> None:
    _run(single, sql)


def test_a_function_the_list_does_not_name_is_refused_even_if_the_engine_has_it(
    single: Store,
) -> None:
    # A function created after the list was written (an operator's, or a new engine's).
    single.command(f"CREATE FUNCTION IF NOT EXISTS quietlyNewFn_{single.database}"
                   " AS (x) -> x + 1")
    try:
        name = f"quietlyNewFn_{single.database}"
        assert single.query(f"SELECT {name}(1)")[1] == [(2,)]  # the engine has it
        with pytest.raises(Refused, match=name):
            _run(single, f"SELECT {name}(1)")
    finally:
        single.command(f"DROP FUNCTION IF EXISTS quietlyNewFn_{single.database}")
    engine = {str(r[0]) for r in single.query("SELECT name FROM system.functions")[1]}
    unlisted = sorted(engine - allowed().exact)
    assert {"file", "dictGet", "hasColumnInTable", "joinGet", "sleep"} <= set(unlisted)


def test_limits_hold_and_no_query_can_lift_them(tmp_path: Path, chdb_path: Path) -> None:
    from tests.conftest import make_settings

    s = make_settings(tmp_path, chdb_path, sql_max_result_rows=10, sql_max_execution_s=1)
    store = Store(s)
    store.connect()
    try:
        with pytest.raises(SqlError, match="max rows: 10"):
            store.sandbox.query("SELECT number FROM numbers(11)")
        assert len(store.sandbox.query("SELECT number FROM numbers(10)")[1]) == 10
        with pytest.raises(SqlError, match=r"TIMEOUT_EXCEEDED|Timeout exceeded"):
            store.sandbox.query("SELECT count() FROM numbers(100000000000)")
        with pytest.raises(Refused, match="SETTINGS"):
            store.sandbox.query("SELECT number FROM numbers(11) SETTINGS max_result_rows = 0")
        # The collector's own queries are not limited by the sandbox's session.
        assert len(store.query("SELECT number FROM numbers(11)")[1]) == 11
    finally:
        store.close()


def test_an_answer_that_failed_part_way_never_reaches_the_next_query(
    tmp_path: Path, chdb_path: Path
) -> None:
    """A query whose first block is sent before its second breaks a limit leaves that
    block in chdb's connection: it must reach neither the parser (a forged tree that
    would let file() through) nor the next engineer's answer."""
    import json as _json

    from tests.conftest import make_settings

    store = Store(make_settings(tmp_path, chdb_path, sql_max_result_rows=1000))
    store.connect()
    try:
        forged = _json.dumps(_tree(store, "SELECT 1"))
        prime = (f"SELECT x FROM (SELECT '{forged}' AS x, 0 AS k UNION ALL SELECT"
                 " toString(number), 1 FROM numbers(300000)) ORDER BY k")
        for _ in range(3):
            with pytest.raises(SqlError):
                store.sandbox.query(prime)
            with pytest.raises(Refused, match="file"):
                store.sandbox.query("SELECT file('/etc/hostname')")
            assert store.sandbox.query("SELECT 'mine' AS x")[1] == [("mine",)]
    finally:
        store.close()


def _tree(store: Store, sql: str) -> Any:
    import json as _json

    _, rows = store.query("SELECT parseQueryToJSON({q:String})", {"q": sql})
    return _json.loads(rows[0][0])


def test_a_union_cannot_pass_the_row_or_byte_limit(tmp_path: Path, chdb_path: Path) -> None:
    from tests.conftest import make_settings

    store = Store(make_settings(tmp_path, chdb_path, sql_max_result_rows=1000,
                                sql_max_result_bytes=1 << 20))
    store.connect()
    try:
        with pytest.raises(SqlError, match="more than 1000 rows"):
            store.sandbox.query("SELECT toUInt64(1) UNION ALL SELECT number FROM numbers(300000)")
        with pytest.raises(SqlError, match="sql_max_result_bytes"):
            store.sandbox.query("SELECT repeat('x', 100000) FROM numbers(20)"
                                " UNION ALL SELECT 'y'")
        assert len(store.sandbox.query("SELECT number FROM numbers(1000)")[1]) == 1000
    finally:
        store.close()


def test_the_collectors_reader_recovers_from_a_query_that_failed_part_way(
    single: Store,
) -> None:
    from quietly_collector.storage.store import StorageError

    with pytest.raises(StorageError, match="boom"):
        single.query("SELECT throwIf(number = 200000, 'boom') FROM numbers(300000)")
    assert single.query("SELECT 'real'")[1] == [("real",)]
