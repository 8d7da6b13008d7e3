"""ClickHouse access through clickhouse-connect, embedded (chdb) or over HTTP.

One code path: only the client construction differs. Each role gets its own
client (writer, reader) because a client serializes its calls; every method
here is blocking and is run in a thread by the async callers.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect

from quietly_collector.settings import Settings, SettingsError
from quietly_collector.storage.sandbox.runner import Sandbox, limits

INSERT_SETTINGS: dict[str, Any] = {
    # We batch ourselves; an async insert would acknowledge before storing.
    "async_insert": 0,
    "date_time_input_format": "best_effort",
    "input_format_json_read_objects_as_strings": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
}
# Error codes meaning the data itself cannot be stored (retrying cannot help).
DATA_ERROR_CODES = frozenset({6, 26, 27, 38, 41, 53, 62, 69, 70, 72, 117, 131, 321, 691})
_CODE = re.compile(r"Code: (\d+)")


# Clients serving the collector's own reads (metrics, dashboard, reports) at once.
READERS = 3

# Ids per lookup query: twice 39 bytes each must stay under max_query_size (256 KiB).
LOOKUP_CHUNK = 3_000


class StorageError(Exception):
    """ClickHouse refused or could not be reached."""

    @property
    def is_data_error(self) -> bool:
        m = _CODE.search(str(self))
        return m is not None and int(m.group(1)) in DATA_ERROR_CODES


def _server_kwargs(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"clickhouse_url: expected http(s)://user:pass@host:port/db, got {url!r}"
        )
    return {
        "host": parts.hostname,
        "port": parts.port or (8443 if parts.scheme == "https" else 8123),
        "username": unquote(parts.username or "default"),
        "password": unquote(parts.password or ""),
        "secure": parts.scheme == "https",
        "autogenerate_session_id": False,
    }


def database_of(settings: Settings) -> str:
    """The URL's path names the database when given; otherwise the ``database`` setting."""
    if settings.clickhouse_url:
        path = urlsplit(settings.clickhouse_url).path.strip("/")
        if path:
            return path
    return settings.database


def make_client(
    settings: Settings, database: str | None, session_settings: dict[str, Any] | None = None
) -> Any:
    """A client of its own session; ``session_settings`` apply to each of its queries."""
    try:
        if settings.embedded:
            path = settings.chdb_dir.resolve()
            path.mkdir(parents=True, exist_ok=True)
            kwargs: dict[str, Any] = {"dsn": f"chdb://{path}"}
            if database:
                kwargs["database"] = database
            if session_settings:
                kwargs["settings"] = session_settings
            return clickhouse_connect.get_client(**kwargs)
        return clickhouse_connect.get_client(
            database=database or "default", settings=session_settings,
            **_server_kwargs(settings.clickhouse_url)
        )
    except SettingsError:
        raise
    except Exception as exc:
        if settings.embedded and _locked_elsewhere(settings.chdb_dir):
            raise StorageError(data_dir_lock_hint(settings.chdb_dir)) from exc
        raise StorageError(f"cannot connect to ClickHouse: {exc}") from exc


def _locked_elsewhere(path: Path) -> bool:
    """ClickHouse holds an flock on ``status`` while a process uses the directory."""
    import fcntl

    try:
        fd = os.open(path / "status", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


class _Client:
    """One role's client (reader, health, lookups, appender), used by one thread at a
    time. After a failed call it is closed and made anew at the next: a chdb
    connection whose answer failed part-way keeps the blocks it had produced and
    hands them to its next query (seen with chdb 4.4 / ClickHouse 26.9)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None
        self._lock = threading.Lock()

    def call(self, fn: Callable[[Any], Any]) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make()
            try:
                return fn(self._client)
            except Exception as exc:
                self._discard()
                raise StorageError(str(exc)) from exc

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def _discard(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def close(self) -> None:
        with self._lock:
            self._discard()


class _Pool:
    """A few clients of one role, each used by one thread at a time: a slow query
    holds one of them, not the role."""

    def __init__(self, make: Callable[[], Any], size: int) -> None:
        self._clients = [_Client(make) for _ in range(size)]
        self._next = 0

    def call(self, fn: Callable[[Any], Any]) -> Any:
        for client in self._clients:
            if not client.busy:
                return client.call(fn)
        self._next = (self._next + 1) % len(self._clients)  # all busy: queue on one
        return self._clients[self._next].call(fn)

    def close(self) -> None:
        for client in self._clients:
            client.close()


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
        self._reader = _Pool(lambda: make_client(
            settings, self.database, {"max_execution_time": settings.query_max_execution_s}),
            READERS)
        self._health = _Client(made)
        self._lookups = _Client(made)
        self._appender = _Client(made)
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
        """Connect and prepare (migrate) if not done yet (ClickHouse was down at start)."""
        if self._writer is None:
            self.connect()
            if self._prepare is not None:
                self._prepare(self, self.settings)

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
        self, role: _Client | _Pool, sql: str, parameters: dict[str, Any] | None = None,
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

    def command(self, sql: str) -> Any:
        if self._writer is None:
            raise StorageError("ClickHouse is not reachable yet")
        return self._reader.call(lambda c: c.command(sql))

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


def data_dir_lock_hint(path: Path) -> str:
    return (
        f"the embedded ClickHouse in {path} is in use by another process"
        " (a running collector?). Query it through the collector (quietly sql),"
        " or stop the collector first."
    )
