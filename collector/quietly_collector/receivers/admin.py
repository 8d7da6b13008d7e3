"""The admin API and the collector's own endpoints: health, readiness, the API
description, SQL in the sandbox, counters, a maintenance cycle on demand.

Who may call each is declared with ``@access`` and checked by the auth gate
(access/gate.py) before the handler runs. Each answers JSON.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from importlib import resources
from typing import Any

import msgspec
from aiohttp import web

from quietly_collector.access.appkeys import REQUEST_ID
from quietly_collector.access.gate import Level, access
from quietly_collector.pipeline.body import BodyError, read_body
from quietly_collector.pipeline.collector import COLLECTOR
from quietly_collector.receivers.errors import error_body
from quietly_collector.receivers.intake import RETRY_AFTER_SECONDS
from quietly_collector.storage import audit
from quietly_collector.storage.sandbox.runner import Busy, Refused, SqlError
from quietly_collector.storage.store import StorageError


def _unavailable(reason: str) -> web.Response:
    resp = error_body(503, reason)
    resp.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return resp


@access(Level.PUBLIC)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@access(Level.PUBLIC)
async def readyz(request: web.Request) -> web.Response:
    c = request.app[COLLECTOR]
    storage = c.storage_ok and await asyncio.to_thread(c.store.ping)
    spool_ok = not c.spool.full and not c.spool.broken  # broken: a failed fsync, until restart
    body = {
        "status": "ready" if storage and spool_ok else "not ready",
        "storage": storage,
        "spool_bytes": c.spool.pending_bytes,
        "spool_limit_bytes": c.spool.max_bytes,
        "spool_rows": c.spool.pending_rows,
    }
    return web.json_response(body, status=200 if storage and spool_ok else 503)


_OPENAPI: bytes | None = None


@access(Level.PUBLIC)
async def openapi(request: web.Request) -> web.Response:
    global _OPENAPI
    if _OPENAPI is None:
        _OPENAPI = (resources.files("quietly_collector.receivers") / "openapi.json").read_bytes()
    return web.Response(body=_OPENAPI, content_type="application/json")


class SqlRequest(msgspec.Struct):
    sql: str


@access(Level.ADMIN)
async def post_sql(request: web.Request) -> web.Response:
    s = request.app[COLLECTOR].settings
    try:
        async with asyncio.timeout(s.body_timeout_s):
            body = await read_body(request, s.sql_max_query_bytes, s.sql_max_query_bytes)
        query = msgspec.json.decode(body, type=SqlRequest).sql
    except TimeoutError:
        return _timed_out(s.body_timeout_s)
    except BodyError as exc:
        return error_body(exc.status, exc.reason)
    # msgspec raises UnicodeDecodeError for invalid UTF-8 in a string, RecursionError
    # past ~1000 levels of nesting: bad bodies too, not server errors.
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        return error_body(400, f'expected {{"sql": "SELECT ..."}}: {exc}')
    except RecursionError:
        return error_body(400, 'expected {"sql": "SELECT ..."}: nested too deeply')
    store = request.app[COLLECTOR].store
    error = outcome = ""
    columns: list[str] = []
    rows: list[Any] = []
    try:
        columns, rows = await store.sandbox.run(query)
    except Busy as exc:
        resp = error_body(429, str(exc))
        resp.headers["Retry-After"] = "1"
        return resp
    except Refused as exc:
        error, outcome = f"refused: {exc}", "refused"
    except SqlError as exc:
        error, outcome = str(exc), "error"
    detail: dict[str, Any] = {"sql": audit.clean(query)}
    detail.update({"error": audit.clean(error, 300)} if error else {"rows": len(rows)})
    row = audit.entry("admin", "sql", detail, request[REQUEST_ID], outcome or "ok")
    try:
        await asyncio.to_thread(audit.record, store, row)
    except StorageError as exc:
        # No answer leaves without its audit row.
        return _unavailable(f"audit log not writable, answer withheld: {str(exc)[:300]}")
    if error:
        return error_body(400, error[:2000])
    # default=str: UUIDs, datetimes and decimals become their text form.
    text = json.dumps({"columns": columns, "rows": [list(r) for r in rows]}, default=str)
    return web.Response(text=text, content_type="application/json")


def _timed_out(seconds: int) -> web.Response:
    resp = error_body(408, f"the request body did not arrive within {seconds} s"
                           " (body_timeout_s)")
    resp.force_close()
    return resp


@access(Level.ADMIN)
async def get_stats(request: web.Request) -> web.Response:
    c = request.app[COLLECTOR]
    w = c.writer
    return web.json_response(
        {
            "counters": dict(sorted(c.counters.items())),
            "spool": {
                "bytes": c.spool.pending_bytes,
                "rows": c.spool.pending_rows,
                "limit_bytes": c.spool.max_bytes,
            },
            # Whether this collector holds the leader lease (alerts, maintenance, promotion).
            "leader": {"held": c.leader.valid(), "epoch": c.leader.epoch},
            "deletions": {
                "received": c.counters["deletions_received"],
                "applied": c.counters["deletions_applied"],
                "rows_deleted": c.counters["deletion_rows_deleted"],
                "installs_deleted": len(c.deleted.hashes),
            },
            "rate_limited": dict(sorted(c.limiter.limited.items())),
            "maintenance": {**asdict(c.maintenance),
                            "interval_s": c.settings.maintenance_interval_s},
            "storage_ok": c.storage_ok,
            "last_storage_error": w.stats.last_error if w else "",
            "inserted_rows": w.stats.inserted_rows if w else 0,
            "inserts": w.stats.inserted_batches if w else 0,
        }
    )


@access(Level.ADMIN)
async def post_gc(request: web.Request) -> web.Response:
    """Run one maintenance cycle now (what ``quietly gc`` asks a running collector)."""
    try:
        report = await request.app[COLLECTOR].maintain("admin", request[REQUEST_ID])
    except StorageError as exc:
        return error_body(503, f"maintenance failed: {str(exc)[:500]}")
    return web.json_response(report.as_json())
