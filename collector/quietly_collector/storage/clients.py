"""ClickHouse clients: how one is made (embedded chdb or a server's HTTP), and the
collector's clients by role, each renewed after a failed call."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect

from quietly_collector.settings import Settings, SettingsError

# Error codes meaning the data itself cannot be stored (retrying cannot help).
DATA_ERROR_CODES = frozenset({6, 26, 27, 38, 41, 53, 62, 69, 70, 72, 117, 131, 321, 691})
_CODE = re.compile(r"Code: (\d+)")


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


class RoleClient:
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


class Pool:
    """A few clients of one role, each used by one thread at a time: a slow query
    holds one of them, not the role."""

    def __init__(self, make: Callable[[], Any], size: int) -> None:
        self._clients = [RoleClient(make) for _ in range(size)]
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


def data_dir_lock_hint(path: Path) -> str:
    return (
        f"the embedded ClickHouse in {path} is in use by another process"
        " (a running collector?). Query it through the collector (quietly sql),"
        " or stop the collector first."
    )
