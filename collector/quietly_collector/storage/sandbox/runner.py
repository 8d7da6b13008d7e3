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
    def __init__(self, make_client: Callable[[], Any], database: str, concurrency: int) -> None:
        self._make_client = make_client
        self.database = database
        self.concurrency = concurrency
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
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
        """Blocking: parse, check, run."""
        client = self._acquire()
        try:
            check(self._parse(client, sql), Scope(self.database, self._views_of(client)))
            # The newline ends a trailing "-- comment" before the driver's FORMAT clause.
            columns, rows = _run(client, sql + "\n")
            if not columns and not rows:
                columns = self._columns_of_empty(client, sql)
            return columns, rows
        finally:
            self._idle.put(client)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._idle = queue.SimpleQueue()
        with self._lock:
            for c in self._clients:
                with contextlib.suppress(Exception):  # closing is best effort
                    c.close()
            self._clients.clear()

    def _acquire(self) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if len(self._clients) < self.concurrency:
                client = self._make_client()
                self._clients.append(client)
                return client
        return self._idle.get()

    @staticmethod
    def _parse(client: Any, sql: str) -> Any:
        try:
            _, rows = _run(client, "SELECT parseQueryToJSON({q:String})", {"q": sql})
        except SqlError as exc:
            # Parsed, but of a kind the parser cannot show as a tree (DESCRIBE, INSERT
            # with data): not a SELECT, so refused without running anything.
            if "Code: 36." in str(exc) and "parseQueryToJSON" in str(exc):
                word = (sql.split() or ["this"])[0].upper()[:20]
                raise Refused(f"only a single SELECT is allowed, not {word}") from None
            raise
        return json.loads(str(rows[0][0]))

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
        try:
            _, described = _run(client, f"DESCRIBE TABLE ({sql}\n)")
        except SqlError:
            return []
        return [str(r[0]) for r in described]


def _run(client: Any, sql: str, parameters: dict[str, Any] | None = None
         ) -> tuple[list[str], list[Sequence[Any]]]:
    try:
        result = client.query(sql, parameters=parameters)
    except Exception as exc:
        raise SqlError(str(exc)) from exc
    return list(result.column_names), list(result.result_rows)


__all__ = ["Busy", "Refused", "Sandbox", "SqlError", "limits"]
