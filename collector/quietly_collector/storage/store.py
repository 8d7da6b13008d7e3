"""The Store: every read and write of the collector's own, on ClickHouse through
clickhouse-connect, embedded (chdb) or over HTTP (clients.py makes the clients).

One code path: only the client construction differs. Each role gets its own
client (writer, reader) because a client serializes its calls; every method
here is blocking and is run in a thread by the async callers.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from quietly_collector.settings import Settings
from quietly_collector.storage.clients import (
    Pool,
    RoleClient,
    StorageError,
    database_of,
    make_client,
)
from quietly_collector.storage.sandbox.runner import Sandbox, limits

INSERT_SETTINGS: dict[str, Any] = {
    # We batch ourselves; an async insert would acknowledge before storing.
    "async_insert": 0,
    "date_time_input_format": "best_effort",
    "input_format_json_read_objects_as_strings": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    # Rows spooled by an older collector may lack columns added since (their defaults).
    "input_format_json_compact_allow_variable_number_of_columns": 1,
}
# Clients serving the collector's own reads (metrics, dashboard, reports) at once.
READERS = 3

# Ids per lookup query: twice 39 bytes each must stay under max_query_size (256 KiB).
LOOKUP_CHUNK = 3_000


class Store:
    def __init__(self, settings: Settings,
                 prepare: Callable[[Store, Settings], object] | None = None) -> None:
        """``prepare``: run once connected, before anything is written (the collector
        passes the migrations: storage/migrations.py)."""
        self.settings = settings
        self._prepare = prepare
        self.database = database_of(settings)
        self._writer: Any = None
        made = lambda: make_client(settings, self.database)  # noqa: E731
        # Each role on a client of its own, so none waits behind another: the metrics
        # and dashboard reader (time-limited), the readiness ping, the ingest path's
        # duplicate and deletion lookups, and small inserts from handlers (audit rows).
        self._reader = Pool(lambda: make_client(
            settings, self.database, {"max_execution_time": settings.query_max_execution_s}),
            READERS)
        self._health = RoleClient(made)
        self._lookups = RoleClient(made)
        self._appender = RoleClient(made)
        # No os_threads_nice_value_* here: with CAP_SYS_NICE the engine sets a query
        # thread's priority and resets it to 0 afterwards, undoing priority.py's.
        self._insert_settings = dict(INSERT_SETTINGS)
        # Engineers' SQL (/v1/sql, quietly sql): checked, limited, on clients of its own.
        self.sandbox = Sandbox(
            lambda: make_client(settings, self.database, limits(
                settings.sql_max_execution_s, settings.sql_max_result_rows,
                settings.sql_max_memory_bytes)),
            self.database, settings.sql_max_concurrency, settings.sql_max_result_rows,
            settings.sql_max_result_bytes,
        )

    @property
    def connected(self) -> bool:
        return self._writer is not None

    def ensure_ready(self) -> None:
        """Connect and prepare (migrate) if not done yet (ClickHouse was down at start).
        A failed preparation disconnects again: the next call retries it, rather than
        storing into a half-built schema."""
        if self._writer is None:
            self.connect()
            if self._prepare is not None:
                try:
                    self._prepare(self, self.settings)
                except BaseException:
                    writer: Any = self._writer
                    self._writer = None
                    with contextlib.suppress(Exception):
                        writer.close()
                    raise

    def connect(self) -> None:
        admin = make_client(self.settings, None)
        try:
            admin.command(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        except Exception as exc:
            raise StorageError(f"cannot create database {self.database}: {exc}") from exc
        self._writer = make_client(self.settings, self.database)

    def close(self) -> None:
        self.sandbox.close()
        for role in (self._reader, self._health, self._lookups, self._appender):
            role.close()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()

    # -- writing --------------------------------------------------------------
    def insert(
        self, table: str, columns: Sequence[str], data: bytes | bytearray, token: str
    ) -> None:
        self.ensure_ready()
        try:
            self._writer.raw_insert(
                table,
                list(columns),
                insert_block=data,
                fmt="JSONCompactEachRow",
                settings={**self._insert_settings, "insert_deduplication_token": token},
            )
        except Exception as exc:
            raise StorageError(str(exc)) from exc

    def append(self, table: str, columns: Sequence[str], data: bytes) -> None:
        """A small insert from a request handler (audit rows), on a client of its own: the
        writer's belongs to the writer's thread."""
        if self._writer is None:
            raise StorageError("ClickHouse is not reachable yet")
        self._appender.call(lambda c: c.raw_insert(
            table, list(columns), insert_block=data, fmt="JSONCompactEachRow",
            settings=INSERT_SETTINGS))

    def write_command(self, sql: str, settings: dict[str, Any] | None = None) -> None:
        """A statement on the writer's client (mutations): it may take long, and must
        not hold up the reader that serves /v1/sql."""
        self.ensure_ready()
        try:
            self._writer.command(sql, settings=settings)
        except Exception as exc:
            raise StorageError(str(exc)) from exc

    # -- reading --------------------------------------------------------------
    def query(
        self, sql: str, parameters: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> tuple[list[str], list[Sequence[Any]]]:
        """The collector's own queries (metrics, dashboard, maintenance): trusted SQL
        only, at most ``query_max_execution_s`` each; an engineer's goes through
        ``sandbox``."""
        return self._query(self._reader, sql, parameters, settings)

    def _query(
        self, role: RoleClient | Pool, sql: str, parameters: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> tuple[list[str], list[Sequence[Any]]]:
        if self._writer is None:
            raise StorageError("ClickHouse is not reachable yet")

        def run(client: Any) -> tuple[list[str], list[Sequence[Any]]]:
            # Rows read inside the call: a failure while streaming them discards the client.
            result = client.query(sql, parameters=parameters, settings=settings)
            return list(result.column_names), list(result.result_rows)

        out: tuple[list[str], list[Sequence[Any]]] = role.call(run)
        return out

    def query_named(
        self, sql: str, parameters: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> tuple[list[str], list[Sequence[Any]]]:
        """``query``, with the column names even of an empty answer: chdb returns none
        then, and a CSV without its header breaks the scripts that read it. They come
        from ``DESCRIBE`` of the same SELECT (empty if it cannot be described, e.g.
        ``SHOW TABLES``). Not for hot paths: an empty answer costs a second query."""
        columns, rows = self.query(sql, parameters, settings)
        if columns or rows:
            return columns, rows
        try:
            # The newline ends a trailing "-- comment" before the closing parenthesis.
            _, described = self.query(f"DESCRIBE TABLE ({sql}\n)", parameters, settings)
        except StorageError:
            return columns, rows
        return [str(r[0]) for r in described], rows

    def command(self, sql: str, settings: dict[str, Any] | None = None) -> Any:
        """A statement on a reader's client (never the writer's, which belongs to the
        writer's thread): DDL, leases, the promotion of staged events."""
        if self._writer is None:
            raise StorageError("ClickHouse is not reachable yet")
        return self._reader.call(lambda c: c.command(sql, settings=settings))

    def ping(self) -> bool:
        """On a client of its own: a long metrics query never makes /readyz wait."""
        try:
            self._query(self._health, "SELECT 1")
        except StorageError:
            return False
        return True

    def existing_ids(self, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        if not ids:
            return set()
        found: set[uuid.UUID] = set()
        for i in range(0, len(ids), LOOKUP_CHUNK):
            # A UUID's text is hex and dashes, nothing to escape: written straight in,
            # where binding escaped it character by character holding the GIL (4% of
            # the event loop's time at full load).
            chunk = "('" + "','".join([str(x) for x in ids[i : i + LOOKUP_CHUNK]]) + "')"
            # A deletion_request is not an event row: its id is in its receipt.
            _, rows = self._query(
                self._lookups,
                f"SELECT DISTINCT event_id FROM events WHERE event_id IN {chunk}"
                f" UNION ALL SELECT request_id FROM deletion_receipts WHERE request_id IN {chunk}"
            )
            found.update(uuid.UUID(str(r[0])) for r in rows)
        return found

    def recent_ids(self, since: datetime, limit: int) -> list[tuple[uuid.UUID, datetime]]:
        _, rows = self._query(
            self._lookups,
            "SELECT id, at FROM (SELECT event_id AS id, received_at AS at FROM events"
            " WHERE received_at >= {since:DateTime64(3, 'UTC')}"
            " UNION ALL SELECT request_id, received_at FROM deletion_receipts"
            " WHERE received_at >= {since:DateTime64(3, 'UTC')})"
            " ORDER BY at DESC LIMIT {limit:UInt64}",
            {"since": since.replace(tzinfo=None), "limit": limit},
        )
        return [(uuid.UUID(str(r[0])), r[1]) for r in rows]


__all__ = ["INSERT_SETTINGS", "LOOKUP_CHUNK", "READERS", "StorageError", "Store"]
