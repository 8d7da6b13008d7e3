"""Decide whether a parsed statement may run in the SQL sandbox.

The statement is parsed by ClickHouse itself (``parseQueryToJSON``: the engine's own
parser, its tree as JSON), never by patterns over the text, and the tree is checked
against allow-lists: one SELECT (``WITH``, ``UNION``, ``INTERSECT``, ``EXCEPT`` and
subqueries included) that reads tables and views of the collector's database or a
few ``system`` tables, calls only listed functions and table functions, and carries
no ``INTO OUTFILE``, ``FORMAT`` or ``SETTINGS``. A node type the checker does not
know is refused: a later engine's new syntax fails closed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from quietly_collector.storage.sandbox.functions import TABLE_FUNCTIONS, allowed

# The system tables an engineer needs to explore the schema. Not query_log (other
# people's queries), processes, settings of the server, disks or users.
# Not parts or databases either: they show paths on the host's disk.
SYSTEM_TABLES = frozenset({
    "one", "numbers", "tables", "columns", "functions", "table_functions",
    "data_type_families", "aggregate_function_combinators",
})

ROOTS = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery"})
NODE_TYPES = ROOTS | frozenset({
    "ArrayJoin", "Asterisk", "ColumnsApplyTransformer", "ColumnsExceptTransformer",
    "ColumnsListMatcher", "ColumnsRegexpMatcher", "ColumnsReplaceTransformer",
    "ColumnsReplaceTransformerReplacement", "ColumnsTransformerList", "ExpressionList",
    "Function", "Identifier", "Literal", "OrderByElement", "QualifiedAsterisk",
    "QualifiedColumnsListMatcher", "QualifiedColumnsRegexpMatcher", "QueryParameter",
    "SampleRatio", "SelectQuery", "Subquery", "TableExpression", "TableIdentifier",
    "TableJoin", "TablesInSelectQuery", "TablesInSelectQueryElement", "WindowDefinition",
    "WindowListElement", "WithElement", "InterpolateElement",
})
# What each refused statement type is, for the message.
STATEMENTS = {
    "ShowTablesQuery": "SHOW TABLES (use SELECT name FROM system.tables WHERE database ="
                       " currentDatabase())",
    "ExplainQuery": "EXPLAIN",
    "SetQuery": "SET",
}
# Set-membership operators: `x IN t` reads table t.
IN_FUNCTIONS = frozenset({
    "in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn", "globalNullIn",
    "globalNotNullIn", "inIgnoreSet", "notInIgnoreSet", "nullInIgnoreSet",
    "notNullInIgnoreSet", "globalInIgnoreSet", "globalNotInIgnoreSet",
    "globalNullInIgnoreSet", "globalNotNullInIgnoreSet",
})
# Functions that call an aggregate function named by their first (string) argument.
BY_NAME = frozenset({"arrayReduce", "arrayReduceInRanges", "initializeAggregation"})


class Refused(ValueError):
    """The statement is not allowed in the sandbox; the message names what."""


@dataclass(frozen=True)
class Scope:
    database: str
    # Views of the database, callable with parameters: metric_dau(since = ..., ...).
    views: frozenset[str]


def check(tree: Any, scope: Scope) -> None:
    if not isinstance(tree, dict):
        raise Refused("the statement could not be read")
    kind = tree.get("type", "")
    if kind not in ROOTS:
        what = STATEMENTS.get(kind, kind.removesuffix("Query").upper() or "this statement")
        raise Refused(f"only a single SELECT is allowed, not {what}")
    for node, key in _nodes(tree, ""):
        _check_node(node, key, scope)


def _nodes(node: Any, key: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every object of the tree with the key it hangs under."""
    stack: list[tuple[Any, str]] = [(node, key)]
    while stack:
        value, under = stack.pop()
        if isinstance(value, dict):
            yield value, under
            stack.extend((v, k) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, under) for v in value)


def _check_node(node: dict[str, Any], key: str, scope: Scope) -> None:
    if "out_file" in node:
        raise Refused("INTO OUTFILE is not allowed: results are returned, never written")
    if "format_ast" in node:
        raise Refused("FORMAT is not allowed: the API chooses the output format")
    if "settings_ast" in node or "settings" in node:
        raise Refused("SETTINGS is not allowed: the sandbox's limits are fixed")
    kind = node.get("type")
    if kind is None:
        return  # a value inside a node (a literal's field), not a node
    if kind not in NODE_TYPES:
        raise Refused(f"{STATEMENTS.get(kind, kind)} is not allowed in the SQL sandbox")
    if kind == "Function":
        name = str(node.get("name", ""))
        if key == "table_function":
            _table_function(name, scope)
        else:
            _function(name)
            _in_table(node, scope)
            if name in BY_NAME:
                _named_aggregate(node)
    elif kind == "TableIdentifier":
        _table(node, scope)
    elif kind == "ColumnsApplyTransformer":
        _function(str(node.get("func_name", "")))


def _function(name: str) -> None:
    if not allowed().function(name):
        raise Refused(f"function {name}() is not allowed in the SQL sandbox (it is not on the"
                      " list of functions that only compute on their arguments)")


def _named_aggregate(node: dict[str, Any]) -> None:
    args = node.get("arguments", {}).get("children", [])
    first = args[0] if args and isinstance(args[0], dict) else {}
    value = first.get("value", {}) if first.get("type") == "Literal" else {}
    named = value.get("value") if isinstance(value, dict) else None
    if not isinstance(named, str):
        raise Refused(f"{node.get('name')}() takes the aggregate function's name as a string"
                      " literal in the SQL sandbox")
    # "quantile(0.5)" style names: the function is what stands before "(".
    _function(named.partition("(")[0].strip())


def _table_function(name: str, scope: Scope) -> None:
    if name in TABLE_FUNCTIONS or name in scope.views:
        return
    raise Refused(f"table function {name}() is not allowed: only the database's parameterized"
                  f" views and {', '.join(sorted(TABLE_FUNCTIONS))}")


def _in_table(node: dict[str, Any], scope: Scope) -> None:
    if node.get("name") not in IN_FUNCTIONS:
        return
    args = node.get("arguments", {}).get("children", [])
    if len(args) == 2 and isinstance(args[1], dict) and args[1].get("type") == "Identifier":
        _table(args[1], scope)


def _table(node: dict[str, Any], scope: Scope) -> None:
    parts = node.get("name_parts") or [node.get("name", "")]
    if len(parts) == 1:
        return  # the collector's database (the session's), or a WITH name
    if len(parts) == 2:
        database, table = (str(p) for p in parts)
        if database == scope.database:
            return
        if database == "system" and table in SYSTEM_TABLES:
            return
        if database == "system":
            raise Refused(f"table system.{table} is not allowed; system tables allowed:"
                          f" {', '.join(sorted(SYSTEM_TABLES))}")
    raise Refused(f"table {'.'.join(map(str, parts))} is outside the collector's database"
                  f" {scope.database!r}")
