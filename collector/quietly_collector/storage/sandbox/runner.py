"""Run an engineer's SELECT in the sandbox: checked, limited, on clients of its own.

Each sandbox client is its own ClickHouse session created with the limits already
set and ``readonly = 1`` last, so nothing a query does reaches the collector's own
queries (a ``SET`` is refused, and would stay in that session if it were not), and
no query can lift a limit. Queries run on a thread pool of their own, at most
``sql_max_concurrency`` at once: a slow one never holds a thread that health checks,
metrics or the dashboard need.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from quietly_collector.storage.sandbox.check import Refused, Scope, check

# The views of the database are re-read this often (a migration may add one).
VIEWS_TTL_S = 60.0


class Busy(Exception):
    """Every sandbox slot is taken (HTTP 429)."""


class SqlError(Exception):
    """ClickHouse refused the statement: a syntax error, a limit, a missing table."""


def limits(max_execution_s: int, max_result_rows: int, max_memory_bytes: int) -> dict[str, Any]:
    # readonly last: the session takes the limits first, then can change nothing.
    return {
        "max_execution_time": max_execution_s,
        "max_result_rows": max_result_rows,
        "result_overflow_mode": "throw",
        "max_memory_usage": max_memory_bytes,
        "readonly": 1,
    }


class Sandbox:
    """Engineers' queries: parsed and checked on a client that runs nothing else, then
    run on a pool of limited clients. A client whose query failed is closed, never
    reused: chdb keeps the blocks of an answer that failed part-way and hands them to
    the connection's next query, which could otherwise be the parser's (a forged tree)
    or another engineer's (someone else's rows)."""

    def __init__(self, make_client: Callable[[], Any], database: str, concurrency: int,
                 max_rows: int, max_bytes: int) -> None:
        self._make_client = make_client
        self.database = database
        self.concurrency = concurrency
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._made = 0
        self._lock = threading.Lock()
        self._checker: Any = None
        self._checker_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._views: tuple[float, frozenset[str]] = (-VIEWS_TTL_S, frozenset())
        self.running = 0

    async def run(self, sql: str) -> tuple[list[str], list[Sequence[Any]]]:
        """The query's columns and rows; Refused, SqlError or Busy otherwise."""
        if self.running >= self.concurrency:
            raise Busy(f"{self.running} SQL queries are running (sql_max_concurrency);"
                       " retry later")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="quietly-sql")
        self.running += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self.query, sql)
        finally:
            self.running -= 1

    def query(self, sql: str) -> tuple[list[str], list[Sequence[Any]]]:
        """Blocking: parse and check, then run."""
        tree, views = self._checked(sql)
        check(tree, Scope(self.database, views))
        client = self._acquire()
        try:
            # The newline ends a trailing "-- comment" before the driver's FORMAT clause.
            columns, rows = self._bounded(client, sql + "\n")
        except BaseException:
            self._drop(client)
            raise
        if not columns and not rows:
            try:
                columns = self._columns_of_empty(client, sql)
            except SqlError:  # some SELECTs cannot be described: no names, as chdb gives
                self._drop(client)
                return columns, rows
        self._idle.put(client)
        return columns, rows

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        idle, self._idle = self._idle, queue.SimpleQueue()
        while not idle.empty():
            self._drop(idle.get_nowait())
        with self._checker_lock:
            if self._checker is not None:
                with contextlib.suppress(Exception):  # closing is best effort
                    self._checker.close()
                self._checker = None

    def _acquire(self) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._made < self.concurrency:
                self._made += 1
                try:
                    return self._make_client()
                except BaseException:
                    self._made -= 1
                    raise
        return self._idle.get()

    def _drop(self, client: Any) -> None:
        with contextlib.suppress(Exception):
            client.close()
        with self._lock:
            self._made -= 1

    def _checked(self, sql: str) -> tuple[Any, frozenset[str]]:
        """The statement's tree and the database's views, from the checker client."""
        with self._checker_lock:
            if self._checker is None:
                self._checker = self._make_client()
            try:
                return self._parse(self._checker, sql), self._views_of(self._checker)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._checker.close()
                self._checker = None
                raise

    @staticmethod
    def _parse(client: Any, sql: str) -> Any:
        try:
            _, rows = _run(client, "SELECT parseQueryToJSON({q:String}) AS tree", {"q": sql})
        except SqlError as exc:
            # Parsed, but of a kind the parser cannot show as a tree (DESCRIBE, INSERT
            # with data): not a SELECT, so refused without running anything.
            if "Code: 36." in str(exc) and "parseQueryToJSON" in str(exc):
                word = (sql.split() or ["this"])[0].upper()[:20]
                raise Refused(f"only a single SELECT is allowed, not {word}") from None
            raise
        if len(rows) != 1 or len(rows[0]) != 1 or not isinstance(rows[0][0], str):
            raise SqlError("the parser's answer is not one tree; the statement was not run")
        return json.loads(rows[0][0])

    def _bounded(self, client: Any, sql: str) -> tuple[list[str], list[Sequence[Any]]]:
        """The answer, block by block, refused once it passes sql_max_result_rows or
        about sql_max_result_bytes (the engine's own result limits miss a UNION's)."""
        rows: list[Sequence[Any]] = []
        size = 0
        try:
            with client.query_row_block_stream(sql) as stream:
                columns = list(stream.source.column_names)
                for block in stream:
                    rows += block
                    if len(rows) > self.max_rows:
                        raise SqlError(f"the result has more than {self.max_rows} rows"
                                       " (sql_max_result_rows); add a LIMIT")
                    size += _approx_bytes(block)
                    if size > self.max_bytes:
                        raise SqlError(f"the result is over {self.max_bytes} bytes"
                                       " (sql_max_result_bytes); select fewer columns or rows")
        except SqlError:
            raise
        except Exception as exc:
            raise SqlError(str(exc)) from exc
        return columns, rows

    def _views_of(self, client: Any) -> frozenset[str]:
        at, views = self._views
        if time.monotonic() - at < VIEWS_TTL_S:
            return views
        _, rows = _run(client, "SELECT name FROM system.tables WHERE database = currentDatabase()"
                               " AND engine = 'View'")
        views = frozenset(str(r[0]) for r in rows)
        self._views = (time.monotonic(), views)
        return views

    @staticmethod
    def _columns_of_empty(client: Any, sql: str) -> list[str]:
        # chdb returns no column names with no rows; a CSV without its header breaks the
        # scripts that read it. DESCRIBE of the same, already checked, SELECT names them.
        _, described = _run(client, f"DESCRIBE TABLE ({sql}\n)")
        return [str(r[0]) for r in described]


def _approx_bytes(block: Sequence[Sequence[Any]]) -> int:
    """About what a block of rows holds: the length of text and bytes, 16 a value else."""
    total = 0
    for row in block:
        for v in row:
            total += len(v) if isinstance(v, str | bytes) else 16
    return total


def _run(client: Any, sql: str, parameters: dict[str, Any] | None = None
         ) -> tuple[list[str], list[Sequence[Any]]]:
    try:
        result = client.query(sql, parameters=parameters)
    except Exception as exc:
        raise SqlError(str(exc)) from exc
    return list(result.column_names), list(result.result_rows)


__all__ = ["Busy", "Refused", "Sandbox", "SqlError", "limits"]
