"""The scale-out (ClickHouse cluster) variant of every migration, derived from the
single-node migration files, so the two schemas cannot drift apart.

Each statement is rewritten, never re-typed:

* event-fed tables (``events``, ``rejected_events``, ``deletion_receipts``, every
  ``agg_*``) become ``<name>_local`` with a ``Replicated*MergeTree`` engine (one
  replica set per shard) and a ``Distributed`` table under the original name,
  sharded by ``install_hash`` where the table has one: an install's events and
  aggregate rows live on one shard, and the collector reads and writes the names
  it always used;
* small tables the collector writes as a whole (settings, thresholds, audit log,
  alerts, ``schema_migrations``) are replicated to every node under their own name,
  with no shard: ``TRUNCATE`` + ``INSERT`` and ``FINAL`` keep working unchanged;
* materialized views read and write the local tables (they run where the insert
  lands); parameterized views read the Distributed tables;
* backfills (``INSERT ... SELECT`` in 0009) run once, from one node, through the
  Distributed tables, synchronously: the source is read from every shard and the
  rows land on the shard their sharding key picks, as the views would have put them.

Tokens (identifiers, strings, comments) are rewritten, not regex-replaced over raw
text, so a column called ``events`` stays a column; tests parse every output
statement with ClickHouse's own parser (``formatQuery``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from quietly_collector.settings import RETENTION_COLUMNS, Settings, retention_of
from quietly_collector.storage.migrations import migration_files, split_statements, view_statements

# Written by the collector as a whole, small, not per install: one copy per node.
GLOBAL_TABLES = frozenset({
    "metric_settings", "metric_thresholds", "audit_log",
    "alert_state", "alert_history", "alert_notifications", "schema_migrations",
    # One lease per name for the whole cluster; one staging table the leader promotes
    # from (and drops parts of) wherever its rows were inserted.
    "leases", "events_staging", "pseudonym_keys",
})
LOCAL_SUFFIX = "_local"
_NON_REPLICATED = "non_replicated_deduplication_window"
_TOKEN = re.compile(
    r"(?P<comment>--[^\n]*)|(?P<string>'(?:[^'\\]|\\.|'')*')|(?P<quoted>`[^`]*`)"
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_]*)|(?P<space>\s+)|(?P<other>.)",
    re.S,
)
_CREATE_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)\s*\(", re.S)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w+)(?:\(([^()]*)\))?")
_MV = re.compile(r"CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS\b", re.S)
_VIEW = re.compile(r"CREATE (OR REPLACE VIEW|VIEW IF NOT EXISTS) (\w+) AS\b", re.S)
_ALTER = re.compile(r"ALTER TABLE (\w+) (.*)", re.S)
_DROP = re.compile(r"DROP (VIEW|TABLE) IF EXISTS (\w+)$", re.S)
_INSERT = re.compile(r"INSERT INTO (\w+)(\s+\([^)]*\))?\s+(SELECT|VALUES)\b", re.S)
_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations"
    " (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))"
    " ENGINE = MergeTree ORDER BY version"
)


@dataclass(frozen=True)
class Statement:
    sql: str
    source: str  # migration file, or "" for statements of the generator itself
    note: str = ""  # printed as a comment above it


@dataclass(frozen=True)
class Target:
    cluster: str
    database: str

    def q(self, name: str) -> str:
        return f"{self.database}.{name}"

    @property
    def on(self) -> str:
        return f"ON CLUSTER '{self.cluster}'"

    def zk_path(self, table: str) -> str:
        shard = "all" if table in GLOBAL_TABLES else "{shard}"
        return f"/clickhouse/tables/{shard}/{self.database}/{table}"


def cluster_statements(cluster: str, database: str = "quietly",
                       after_version: int = 0) -> list[Statement]:
    """Every statement, in migration order (``after_version``: only later migrations),
    then the current metric views."""
    for value, what in ((cluster, "cluster"), (database, "database")):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"{what}: expected a plain identifier, got {value!r}")
    t = Target(cluster, database)
    out = [Statement(f"CREATE DATABASE IF NOT EXISTS {database} {t.on}", "")]
    out += [Statement(s, "") for s in _create_table(_SCHEMA_MIGRATIONS, t)]
    sharded = _sharded_tables()
    for version, name, sql in migration_files():
        if version <= after_version:
            continue
        for stmt in split_statements(sql):
            out += [Statement(s, name, _note(s)) for s in transform(stmt.rstrip(";"), t, sharded)]
        out.append(Statement(
            f"INSERT INTO {t.q('schema_migrations')} (version, name) VALUES ({version}, '{name}')",
            name, "recorded, so `quietly migrate` and the collector find nothing to apply"))
    for stmt in view_statements():
        out += [Statement(s, "views.sql") for s in transform(stmt.rstrip(";"), t, sharded)]
    return out


def _note(sql: str) -> str:
    if sql.startswith("INSERT INTO") and "SELECT" in sql:
        return "backfill: run once, on one node (Distributed to Distributed)"
    return ""


def _sharded_tables() -> frozenset[str]:
    names = {m.group(1) for _, _, sql in migration_files() for m in _CREATE_TABLE.finditer(sql)}
    return frozenset(names - GLOBAL_TABLES)


def transform(stmt: str, t: Target, sharded: frozenset[str]) -> list[str]:
    """The cluster statements standing for one single-node statement."""
    if _CREATE_TABLE.match(stmt):
        return _create_table(stmt, t)
    if m := _MV.match(stmt):
        body = _rewrite_tables(stmt[m.end():], t, sharded, local=True)
        target = m.group(2) + (LOCAL_SUFFIX if m.group(2) in sharded else "")
        return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {t.q(m.group(1))} {t.on}"
                f" TO {t.q(target)} AS{body}"]
    if m := _VIEW.match(stmt):
        body = _rewrite_tables(stmt[m.end():], t, sharded, local=False)
        return [f"CREATE {m.group(1)} {t.q(m.group(2))} {t.on} AS{body}"]
    if m := _ALTER.match(stmt):
        name, rest = m.group(1), m.group(2)
        local = name + LOCAL_SUFFIX if name in sharded else name
        # Replicated tables deduplicate by their own window.
        rest = rest.replace(_NON_REPLICATED, "replicated_deduplication_window")
        out = [f"ALTER TABLE {t.q(local)} {t.on} {rest}"]
        if local != name and rest.lstrip().upper().startswith("ADD COLUMN"):
            # The Distributed table over it names its columns too.
            out.append(f"ALTER TABLE {t.q(name)} {t.on} {rest}")
        return out
    if m := _DROP.match(stmt):
        kind, name = m.groups()
        drops = [f"DROP {kind} IF EXISTS {t.q(name)} {t.on}"]
        if kind == "TABLE" and name in sharded:
            drops.append(f"DROP TABLE IF EXISTS {t.q(name + LOCAL_SUFFIX)} {t.on}")
        return drops
    if m := _INSERT.match(stmt):
        columns = m.group(2) or ""
        body = _rewrite_tables(stmt[m.start(3):], t, sharded, local=False)
        sync = " SETTINGS insert_distributed_sync = 1" if m.group(1) in sharded else ""
        return [f"INSERT INTO {t.q(m.group(1))}{columns}{sync} {body}"]
    raise ValueError(f"no cluster form for: {stmt[:80]}")


def _create_table(stmt: str, t: Target) -> list[str]:
    m = _CREATE_TABLE.match(stmt)
    assert m is not None
    name = m.group(1)
    close = _matching_paren(stmt, m.end() - 1)
    columns, tail = stmt[m.end() - 1 : close + 1], stmt[close + 1 :]
    e = _ENGINE.search(tail)
    if e is None or not e.group(1).endswith("MergeTree"):
        raise ValueError(f"{name}: expected a MergeTree engine")
    local = name if name in GLOBAL_TABLES else name + LOCAL_SUFFIX
    args = [f"'{t.zk_path(local)}'", "'{replica}'"] + ([e.group(2)] if e.group(2) else [])
    engine = f"ENGINE = Replicated{e.group(1)}({', '.join(args)})"
    tail = tail[: e.start()] + engine + tail[e.end() :]
    tail = tail.replace(_NON_REPLICATED, "replicated_deduplication_window")
    out = [f"CREATE TABLE IF NOT EXISTS {t.q(local)} {t.on}\n{columns}{tail}"]
    if local != name:
        key = "install_hash" if re.search(r"^\s*install_hash\s", columns, re.M) else "rand()"
        out.append(
            f"CREATE TABLE IF NOT EXISTS {t.q(name)} {t.on} AS {t.q(local)}"
            f" ENGINE = Distributed('{t.cluster}', '{t.database}', '{local}', {key})"
        )
    return out


def _matching_paren(text: str, start: int) -> int:
    depth = 0
    for tok in _TOKEN.finditer(text, start):
        if tok.lastgroup == "other":
            depth += {"(": 1, ")": -1}.get(tok.group(), 0)
            if depth == 0:
                return tok.start()
    raise ValueError("unbalanced parentheses")


def _rewrite_tables(sql: str, t: Target, sharded: frozenset[str], *, local: bool) -> str:
    """Qualify every table read (an identifier after FROM or JOIN that names one of
    ours) with the database, and point sharded ones at ``_local`` when ``local``."""
    known = sharded | GLOBAL_TABLES
    out: list[str] = []
    previous = ""
    for tok in _TOKEN.finditer(sql):
        text, kind = tok.group(), tok.lastgroup
        if kind == "ident" and previous in ("FROM", "JOIN") and text in known:
            text = t.q(text + LOCAL_SUFFIX if local and text in sharded else text)
        if kind not in ("space", "comment"):
            previous = tok.group().upper()
        out.append(text)
    return "".join(out)


def render(statements: list[Statement]) -> str:
    """A script for ``clickhouse-client --multiquery``."""
    lines: list[str] = []
    source = None
    for s in statements:
        if s.source != source:
            source = s.source
            lines.append(f"\n-- {source or 'database and schema_migrations'}")
        if s.note:
            lines.append(f"-- {s.note}")
        lines.append(s.sql + ";")
    return "\n".join(lines).lstrip() + "\n"



def retention_statements(cluster: str, database: str, settings: Settings) -> list[Statement]:
    """TTLs of the local tables from the retention settings (the collector's own
    retention step leaves Distributed tables alone: retention.py)."""
    from quietly_collector.storage.retention import ttl_expression

    t = Target(cluster, database)
    out = []
    for table, column in RETENTION_COLUMNS.items():
        days = retention_of(settings, table)
        if days > 0:
            local = table if table in GLOBAL_TABLES else table + LOCAL_SUFFIX
            out.append(Statement(
                f"ALTER TABLE {t.q(local)} {t.on} MODIFY TTL {ttl_expression(column, days)}",
                "retention (from the settings)"))
    return out
