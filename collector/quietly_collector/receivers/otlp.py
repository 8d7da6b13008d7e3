"""``POST /v1/logs``: OTLP/HTTP logs, where a record with an event name is an event.

Both encodings are read into the same protobuf message (JSON through
``json_format`` after turning OTLP's hex trace ids into protobuf's base64), then
translated into a native batch for ``Collector.ingest``. The mapping is in
docs/protocol.md ("OpenTelemetry logs").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from quietly_collector.access.gate import Level, access
from quietly_collector.pipeline.collector import COLLECTOR
from quietly_collector.pipeline.decode import BatchError
from quietly_collector.pipeline.foreign import ForeignIds
from quietly_collector.receivers.errors import error_body
from quietly_collector.receivers.intake import (
    Translated,
    admit_and_ingest,
    foreign_ids,
    keyword,
    sender,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# Attributes that say who and what, not props (first match wins).
EVENT_NAME = ("event.name",)
EVENT_ID = ("quietly.event_id", "event.id")
EVENT_VERSION = ("quietly.event_version",)
INSTALL_ID = ("quietly.install_id", "user.id")
SESSION_ID = ("quietly.session_id", "session.id")
CONSENT = ("quietly.consent",)
RESERVED = frozenset(
    EVENT_NAME + EVENT_ID + EVENT_VERSION + INSTALL_ID + SESSION_ID + CONSENT
)
# Resource attribute -> context field.
CONTEXT = {
    "service.name": "app",
    "service.version": "app_version",
    "os.type": "os",
    "os.version": "os_version",
    "quietly.locale": "locale",
    "telemetry.sdk.version": "sdk_version",
}
_TEXT = ("app", "os", "sdk", "locale")  # identifiers: spaces become underscores


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, kind)


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


def _take(attrs: dict[str, Any], names: tuple[str, ...], *more: dict[str, Any]) -> Any:
    return _take_named(attrs, names, *more)[1]


def _take_named(attrs: dict[str, Any], names: tuple[str, ...], *more: dict[str, Any]
                ) -> tuple[str, Any]:
    for where in (attrs, *more):
        for name in names:
            if where.get(name) is not None:
                return name, where[name]
    return "", None


def _own_or_keyed(name: str, value: Any, keyed: Callable[[object], str]) -> str:
    """Quietly's own ids (quietly.event_id, quietly.install_id, quietly.session_id:
    what its SDK sends to /v1/batch) stay themselves when they are UUIDs; any other
    client id (event.id, user.id, session.id) is keyed with the secret and the project."""
    if name.startswith("quietly."):
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            pass
    return keyed(value)


def _context(res: dict[str, Any]) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    for attr, name in CONTEXT.items():
        if res.get(attr) is not None:
            ctx[name] = res[attr]
    sdk, lang = res.get("telemetry.sdk.name"), res.get("telemetry.sdk.language")
    if sdk is not None:
        ctx["sdk"] = f"{sdk}-{lang}" if lang else sdk
    for name in _TEXT:
        if name in ctx:
            ctx[name] = keyword(ctx[name])
    for name, value in ctx.items():
        if not isinstance(value, str):
            ctx[name] = str(value)
    return ctx


def _ts(rec: LogRecord) -> str:
    nanos = rec.time_unix_nano or rec.observed_time_unix_nano
    try:
        return datetime.fromtimestamp(nanos / 1e9, UTC).isoformat() if nanos else ""
    except (OverflowError, ValueError, OSError):
        return "out of range"  # refused by the native check, with its reason


def translate(req: ExportLogsServiceRequest, ids: ForeignIds) -> Translated:
    events: list[dict[str, Any]] = []
    out = Translated(b"")
    n = -1
    for rl in req.resource_logs:
        res = _attrs(rl.resource.attributes)
        base_ctx = _context(res)
        res_bytes = rl.resource.SerializeToString(deterministic=True)
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                n += 1
                attrs = _attrs(rec.attributes)
                name = rec.event_name or attrs.get("event.name")
                if not name:
                    out.ignored += 1
                    continue
                ev: dict[str, Any] = {"event": name}
                name, eid = _take_named(attrs, EVENT_ID)
                if eid is None:
                    # Exporter retries resend the same record: the same id, a duplicate.
                    digest = hashlib.sha256(
                        res_bytes + rec.SerializeToString(deterministic=True)
                    ).hexdigest()
                    ev["event_id"] = ids.event(digest)
                else:
                    ev["event_id"] = _own_or_keyed(name, eid, ids.event)
                version = _take(attrs, EVENT_VERSION)
                if version is not None:
                    ev["version"] = version
                ts = _ts(rec)
                if ts:
                    ev["ts"] = ts
                name, install = _take_named(attrs, INSTALL_ID, res)
                if install is not None:
                    ev["install_id"] = _own_or_keyed(name, install, ids.install)
                name, session = _take_named(attrs, SESSION_ID, res)
                if session is not None:
                    ev["session_id"] = _own_or_keyed(name, session, ids.session)
                ctx = dict(base_ctx)
                consent = _take(attrs, CONSENT, res)
                if consent is not None:
                    ctx["consent"] = consent
                ev["context"] = ctx
                ev["props"] = {k: v for k, v in attrs.items() if k not in RESERVED}
                events.append(ev)
                out.origin.append(n)
    out.body = msgspec.json.encode({"events": events})
    return out


def _prepare_json(obj: Any) -> None:
    """Check the nesting json_format is lenient about (it takes a string for a message)
    and turn OTLP JSON's hex trace and span ids into protobuf's base64."""
    for rl in _objects(obj, "resourceLogs", "resource_logs"):
        for sl in _objects(rl, "scopeLogs", "scope_logs"):
            for rec in _objects(sl, "logRecords", "log_records"):
                for key in ("traceId", "trace_id", "spanId", "span_id"):
                    value = rec.get(key)
                    if isinstance(value, str) and value:
                        try:
                            rec[key] = base64.b64encode(bytes.fromhex(value)).decode()
                        except ValueError:
                            raise BatchError(f"{key} is not hex: {value[:40]!r}") from None


def _objects(obj: dict[str, Any], *keys: str) -> list[dict[str, Any]]:
    for key in keys:
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise BatchError(f"{key} must be an array of objects")
        return value
    return []


def decode(body: bytes | bytearray, json: bool) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    try:
        if json:
            obj = msgspec.json.decode(body)
            if not isinstance(obj, dict):
                raise BatchError("body must be a JSON object (ExportLogsServiceRequest)")
            _prepare_json(obj)
            json_format.ParseDict(obj, req, ignore_unknown_fields=True)
        else:
            req.ParseFromString(bytes(body))
    except (json_format.ParseError, DecodeError, msgspec.DecodeError, binascii.Error,
            ValueError, TypeError, AttributeError, RecursionError) as exc:
        if isinstance(exc, BatchError):
            raise
        kind = "OTLP JSON" if json else "OTLP protobuf"
        raise BatchError(f"body is not a valid {kind} ExportLogsServiceRequest: "
                         f"{str(exc)[:300]}") from None
    return req


def _error(status: int, reason: str) -> web.Response:
    return error_body(status, reason)


# OTel exporters send whatever headers they are configured with: Bearer is the one.
@access(Level.WRITE)
async def post_logs(request: web.Request) -> web.Response:
    collector = request.app[COLLECTOR]
    project = sender(request, (PROTOBUF, JSON))
    is_json = request.content_type == JSON
    ids = foreign_ids(request, project)
    outcome = await admit_and_ingest(
        request, project, lambda raw: translate(decode(raw, is_json), ids), _error
    )
    if isinstance(outcome, web.Response):
        return outcome
    result, translated = outcome
    collector.counters["otlp_log_records_ignored"] += translated.ignored
    resp = ExportLogsServiceResponse()
    notes = [f"log record {translated.origin[r['index']]}: {r['reason']}"
             for r in result.rejected[:10]]
    if translated.ignored:
        notes.append(f"{translated.ignored} log records without event.name ignored")
    if result.rejected or notes:
        resp.partial_success.rejected_log_records = len(result.rejected)
        resp.partial_success.error_message = "; ".join(notes)[:2000]
    if is_json:
        text = json_format.MessageToJson(resp, indent=None)
        return web.Response(text=text, content_type=JSON)
    return web.Response(body=resp.SerializeToString(), content_type=PROTOBUF)


__all__ = ["decode", "post_logs", "translate"]
