"""A ClickHouse HTTP endpoint for tests, backed by the real engine (chdb).

There is no ClickHouse server on our machines or in CI, so the tests that run the
collector over ``clickhouse_url = http://...`` talk to this: one process that owns an
embedded ClickHouse directory and answers the part of ClickHouse's HTTP interface
that clickhouse-connect uses. Every statement is executed by the real engine; only
the HTTP framing is emulated here. It lives with the tests, is never shipped, and
README.md beside it says what a real server does that it does not.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import chdb
from aiohttp import web

# URL parameters that are HTTP transport, not settings (ClickHouse's HTTP handler).
TRANSPORT = frozenset({
    "query", "database", "default_format", "query_id", "session_id", "session_timeout",
    "session_check", "compress", "decompress", "user", "password", "quota_key",
    "buffer_size", "wait_end_of_query", "client_protocol_version", "role",
    "enable_http_compression", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "http_wait_end_of_query",
})
_SETTING = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)
_CODE = re.compile(r"Code: (\d+)")
# Statuses ClickHouse's HTTP handler gives some error codes (the rest are 500).
STATUS = {
    60: 404, 81: 404, 62: 400, 36: 400, 47: 400, 46: 400, 115: 400, 164: 403, 497: 403,
    516: 401, 159: 500, 241: 500,
}


def _decompress(data: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    if encoding == "lz4":
        import lz4.frame  # type: ignore[import-untyped]

        return bytes(lz4.frame.decompress(data))
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Engine:
    """Runs one HTTP request's statement on a connection of its own (a session per
    request: settings sent with one request never reach another)."""

    def __init__(self, path: str, threads: int = 16) -> None:
        self.path = path
        self._keep = chdb.connect(path)  # type: ignore[no-untyped-call]  # holds the engine open between requests
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="chserver")

    def run(self, sql: bytes, database: str | None, settings: dict[str, str],
            params: dict[str, str], fmt: str) -> tuple[bytes, dict[str, Any]]:
        conn = chdb.connect(self.path)  # type: ignore[no-untyped-call]
        try:
            if database:
                conn.query(f"USE `{database.replace('`', '')}`", "TabSeparated")
            # readonly last, as a server applies a request's settings before checking
            # them against the profile: a request may lower its own rights, once.
            for key in sorted(settings, key=lambda k: k == "readonly"):
                if not _SETTING.fullmatch(key):
                    raise ValueError(f"Code: 115. DB::Exception: Unknown setting {key!r}")
                conn.query(f"SET {key} = {_quote(settings[key])}", "TabSeparated")
            started = time.perf_counter()
            result = conn.query(sql, fmt, params=params)
            summary = {
                "read_rows": str(result.rows_read()), "read_bytes": str(result.bytes_read()),
                "written_rows": "0", "written_bytes": "0", "total_rows_to_read": "0",
                "result_rows": str(result.rows_read()), "result_bytes": str(len(result.bytes())),
                "elapsed_ns": str(int((time.perf_counter() - started) * 1e9)),
            }
            return bytes(result.bytes()), summary
        finally:
            conn.close()

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._keep.close()


ENGINE = web.AppKey("engine", Engine)


async def handle(request: web.Request) -> web.StreamResponse:
    if request.path == "/ping" or (request.method == "GET" and "query" not in request.query
                                   and request.path == "/"):
        return web.Response(text="Ok.\n")
    engine = request.app[ENGINE]
    q = request.query
    query_id = q.get("query_id") or str(uuid.uuid4())
    try:
        body = _decompress(await request.read(), request.headers.get("Content-Encoding", ""))
    except Exception as exc:
        return _error(f"Code: 432. DB::Exception: cannot decompress the body: {exc}", query_id)
    if request.content_type.startswith("multipart/"):
        return _error("Code: 48. DB::Exception: external data (multipart) is not emulated",
                      query_id)
    text = q.get("query", "")
    sql = (text.encode() + (b"\n" + body if body else b"")) if text else body
    settings = {k: v for k, v in q.items() if k not in TRANSPORT and not k.startswith("param_")}
    params = {k[len("param_"):]: v for k, v in q.items() if k.startswith("param_")}
    head = sql[:65536].decode("utf-8", "replace")
    m = _FORMAT.search(head) if not head.lstrip().upper().startswith("INSERT") else None
    fmt = m.group(1) if m else q.get("default_format", "TabSeparated")
    loop = asyncio.get_running_loop()
    try:
        data, summary = await loop.run_in_executor(
            engine.executor, engine.run, sql, q.get("database"), settings, params, fmt)
    except Exception as exc:
        return _error(str(exc), query_id)
    headers = {
        "X-ClickHouse-Query-Id": query_id,
        "X-ClickHouse-Format": fmt,
        "X-ClickHouse-Timezone": "UTC",
        "X-ClickHouse-Server-Display-Name": "chserver",
        "X-ClickHouse-Summary": json.dumps(summary),
        "Content-Type": "application/octet-stream",
    }
    return web.Response(body=data, headers=headers)


def _error(message: str, query_id: str) -> web.Response:
    text = message[message.find("Code: "):] if "Code: " in message else message
    m = _CODE.search(text)
    code = int(m.group(1)) if m else 1000
    return web.Response(
        status=STATUS.get(code, 500), text=text.rstrip() + "\n",
        headers={"X-ClickHouse-Exception-Code": str(code), "X-ClickHouse-Query-Id": query_id,
                 "Content-Type": "text/plain; charset=UTF-8"})


def make_app(path: str) -> web.Application:
    # A whole insert body is read at once: tests insert tens of MB at most.
    app = web.Application(client_max_size=1 << 30)
    app[ENGINE] = Engine(path)
    app.router.add_route("*", "/{tail:.*}", handle)

    async def close(app: web.Application) -> None:
        app[ENGINE].close()

    app.on_cleanup.append(close)
    return app
