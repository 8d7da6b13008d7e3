"""Which functions and table functions the SQL sandbox lets a query call.

The lists are allow-lists, committed beside this module (``allowed_functions.txt``):
a function the engine gains in a later release, or one an operator creates, is
refused until it is added there. ``python -m quietly_collector.storage.sandbox.functions``
writes the file from the running engine's ``system.functions`` by the rule below
(a category either computes on its arguments or it does not); review the diff.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources

ALLOWED_FILE = "allowed_functions.txt"

# Table functions that read nothing outside the query: generated rows only. Every
# other table function reads files, opens connections, runs programs or reads other
# databases (file, url, remote, s3, mysql, executable, merge, dictionary, ...).
TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generateSeries", "generate_series",
    "values",
})

# Categories of system.functions that reach outside the query's own data: the engine's
# dictionaries (external sources), machine addresses and server logs, models on disk,
# remote AI services, engine internals, and time-series functions with server state.
DENIED_CATEGORIES = frozenset({
    "Dictionary", "Embedded Dictionary", "Introspection", "Machine Learning", "AI",
    "Internal", "Time Series",
})

# The "Other" category mixes harmless helpers with functions that read files (file),
# other tables (joinGet), remote hosts (hasColumnInTable), the server's configuration,
# disks and environment, or that sleep, log or keep state: only these are allowed.
SAFE_OTHER = frozenset({
    "bar", "blockNumber", "blockSize", "blockSerializedSize", "byteSize", "colorOKLABToSRGB",
    "colorOKLCHToSRGB", "colorSRGBToOKLAB", "colorSRGBToOKLCH", "countDigits", "currentDatabase",
    "defaultValueOfArgumentType", "defaultValueOfTypeName", "digits", "dumpColumnStructure",
    "errorCodeToName", "finalizeAggregation", "flipCoordinates", "formatQuery",
    "formatQueryOrNull", "formatQuerySingleLine", "formatQuerySingleLineOrNull",
    "formatReadableDecimalSize", "formatReadableQuantity", "formatReadableSize",
    "formatReadableTimeDelta", "getSizeOfEnumType", "getSubcolumn", "getTypeSerializationStreams",
    "identity", "ignore", "indexHint", "initializeAggregation", "isConstant", "isDecimalOverflow",
    "lowCardinalityIndices", "lowCardinalityKeys", "MACNumToString", "MACStringToNum",
    "MACStringToOUI", "materialize", "minSampleSizeContinuous", "minSampleSizeConversion",
    "neighbor", "normalizeQuery", "normalizeQueryKeepNames", "normalizedQueryHash",
    "normalizedQueryHashKeepNames", "parseISO8601Duration", "parseReadableSize",
    "parseReadableSizeOrNull", "parseReadableSizeOrZero", "parseTimeDelta", "rowNumberInAllBlocks",
    "rowNumberInBlock", "runningAccumulate", "runningDifference",
    "runningDifferenceStartingWithFirstValue", "throwIf", "toColumnTypeName", "toTypeName",
    "transform", "variantElement", "variantType", "visibleWidth",
})

# Names the parser produces that system.functions does not list.
SYNTAX = frozenset({"lambda"})


@dataclass(frozen=True)
class Allowed:
    exact: frozenset[str]
    # Lower-cased names of the case-insensitive ones (COUNT, Sum, ...).
    folded: frozenset[str]
    aggregates: frozenset[str]
    combinators: tuple[str, ...]

    def function(self, name: str) -> bool:
        if name in self.exact or name.lower() in self.folded:
            return True
        return self._combined(name)

    def _combined(self, name: str) -> bool:
        # countIf, uniqExactIfState, sumMapMerge: an allowed aggregate and combinators.
        for suffix in self.combinators:
            if name.endswith(suffix) and len(name) > len(suffix):
                base = name[: -len(suffix)]
                if base in self.aggregates or base.lower() in self.folded_aggregates:
                    return True
                if self._combined(base):
                    return True
        return False

    @property
    def folded_aggregates(self) -> frozenset[str]:
        return frozenset(a.lower() for a in self.aggregates)


@cache
def allowed() -> Allowed:
    text = (resources.files("quietly_collector.storage.sandbox") / ALLOWED_FILE).read_text("utf-8")
    exact: set[str] = set(SYNTAX)
    folded: set[str] = set()
    aggregates: set[str] = set()
    combinators: tuple[str, ...] = ()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, flags = line.partition(" ")
        if name == "combinators:":
            combinators = tuple(sorted(flags.split(), key=len, reverse=True))
            continue
        exact.add(name)
        if "i" in flags:
            folded.add(name.lower())
        if "a" in flags:
            aggregates.add(name)
    return Allowed(frozenset(exact), frozenset(folded), frozenset(aggregates), combinators)


def generate(rows: list[tuple[str, str, str, int, int]], combinators: list[str],
             version: str) -> str:
    """The file's text from system.functions rows (name, categories, alias_to,
    is_aggregate, case_insensitive) and the aggregate combinators."""
    by_name = {r[0]: r for r in rows}

    def ok(name: str, seen: int = 0) -> bool:
        r = by_name.get(name)
        if r is None or seen > 4:
            return False
        if r[2]:  # an alias is what it names
            return ok(r[2], seen + 1)
        if r[1] in DENIED_CATEGORIES:
            return False
        if r[1] == "Other" or not r[1]:
            return name in SAFE_OTHER
        return True

    lines = [
        "# Functions the SQL sandbox allows (quietly_collector/sqlsandbox/functions.py).",
        f"# Written from ClickHouse {version}'s system.functions by the rule in functions.py;",
        "# flags: a = aggregate, i = case-insensitive. A function not listed is refused.",
        "combinators: " + " ".join(sorted(combinators)),
    ]
    for name in sorted(by_name, key=str.lower):
        if ok(name):
            r = by_name[name]
            target = by_name.get(r[2], r) if r[2] else r
            flags = ("a" if target[3] else "") + ("i" if r[4] else "")
            lines.append(f"{name} {flags}".rstrip())
    return "\n".join(lines) + "\n"


def main() -> int:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn="chdb://:memory:")
    rows = client.query(
        "SELECT name, categories, alias_to, is_aggregate, case_insensitive FROM system.functions"
        " WHERE origin = 'System'"
    ).result_rows
    combinators = [r[0] for r in client.query(
        "SELECT name FROM system.aggregate_function_combinators").result_rows]
    version = client.query("SELECT version()").result_rows[0][0]
    path = resources.files("quietly_collector.storage.sandbox") / ALLOWED_FILE
    text = generate([tuple(r) for r in rows], combinators, str(version))
    with resources.as_file(path) as p:
        p.write_text(text, encoding="utf-8")
    print(f"wrote {text.count(chr(10)) - 4} functions to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
