"""``POST /segment/v1/batch``: the Segment batch API (segment-analytics-python, and the
format RudderStack, Jitsu and PostHog accept).

``track`` calls (and ``screen``, as ``screen_viewed``) are translated into native
events and sent through ``Collector.ingest``: the same validation, scrubbing,
duplicate filter, rejected_events rows and spool as ``POST /v1/batch``. The
mapping is in docs/protocol.md ("Segment batch").
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from quietly_collector.access.gate import Credential, Level, access
from quietly_collector.pipeline.collector import COLLECTOR
from quietly_collector.pipeline.decode import AwareDatetime, BatchError
from quietly_collector.pipeline.foreign import ForeignIds
from quietly_collector.pipeline.utf8 import utf8_error
from quietly_collector.receivers.errors import error_dialect
from quietly_collector.receivers.intake import (
    Translated,
    admit_and_ingest,
    foreign_ids,
    keyword,
    sender,
)

# Call types that carry no event: accepted, counted, not stored.
IGNORED_TYPES = frozenset({"identify", "page", "group", "alias"})
# (context object, key) -> context field.
CONTEXT = {
    ("app", "name"): "app",
    ("app", "version"): "app_version",
    ("os", "name"): "os",
    ("os", "version"): "os_version",
    ("library", "name"): "sdk",
    ("library", "version"): "sdk_version",
}
_TEXT = ("app", "os", "sdk", "locale")
_NOT_NAME = re.compile(r"[^a-z0-9]+")


class _Batch(msgspec.Struct):
    batch: list[msgspec.Raw]
    sentAt: str | None = None  # Segment's field name


_batch_decoder = msgspec.json.Decoder(_Batch)
_call_decoder = msgspec.json.Decoder(Any)
_time_decoder = msgspec.json.Decoder(AwareDatetime)


def event_name(name: str) -> str:
    """'Feature Used' -> 'feature_used': Segment's names as catalog names."""
    return _NOT_NAME.sub("_", name.strip().lower()).strip("_") or name


def aware(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _time_decoder.decode(msgspec.json.encode(value))
    except msgspec.ValidationError:
        return None


def _context(ctx: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(ctx, dict):
        return out
    for (obj, key), name in CONTEXT.items():
        part = ctx.get(obj)
        if isinstance(part, dict) and part.get(key) is not None:
            out[name] = str(part[key])
    if isinstance(ctx.get("locale"), str):
        out["locale"] = ctx["locale"]
    for name in _TEXT:
        if name in out:
            out[name] = keyword(out[name])
    quietly = ctx.get("quietly")
    if isinstance(quietly, dict) and quietly.get("consent") is not None:
        out["consent"] = quietly["consent"]
    return out


def _event(call: dict[str, Any], raw: bytes, sent_at: str, ids: ForeignIds) -> dict[str, Any]:
    if call.get("type") == "screen":
        name: Any = "screen_viewed"
        props = {**_dict(call.get("properties")), "screen": call.get("name")}
    else:
        name = call.get("event")
        name = event_name(name) if isinstance(name, str) else name
        props = _dict(call.get("properties"))
    ev: dict[str, Any] = {"event": name, "props": props, "context": _context(call.get("context"))}
    mid = call.get("messageId")
    # Without a messageId the call's own bytes name it: a resend is still a duplicate.
    ev["event_id"] = ids.event(mid if mid else hashlib.sha256(raw).hexdigest())
    # Segment's receivedAt rule: no timestamp means the time it was sent.
    ev["ts"] = call.get("timestamp") or call.get("originalTimestamp") or sent_at
    install = call.get("anonymousId") or call.get("userId")
    if install is not None:
        ev["install_id"] = ids.install(install)
    quietly = _dict(call.get("context")).get("quietly")
    if isinstance(quietly, dict) and quietly.get("event_version") is not None:
        ev["version"] = quietly["event_version"]
    return ev


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def translate(body: bytes | bytearray, counters: Counter[str], ids: ForeignIds) -> Translated:
    bad = utf8_error(body)
    if bad is not None:
        raise BatchError(bad)
    try:
        batch = _batch_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BatchError(f"expected a Segment batch {{\"batch\": [...]}}: {exc}") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BatchError(f"body is not valid JSON: {exc}") from None
    sent = aware(batch.sentAt)
    if batch.sentAt is not None and sent is None:
        counters["segment_sent_at_invalid"] += 1  # no skew correction, not a refusal
    sent_text = (sent or datetime.now(UTC)).isoformat()
    events: list[Any] = []
    out = Translated(b"")
    for i, raw in enumerate(batch.batch):
        try:
            call = _call_decoder.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            call = None
        kind = call.get("type") if isinstance(call, dict) else None
        if isinstance(kind, str) and kind in IGNORED_TYPES:
            out.ignored += 1
            counters[f"segment_calls_ignored_{kind}"] += 1
            continue
        if isinstance(call, dict) and kind in ("track", "screen"):
            events.append(_event(call, bytes(raw), sent_text, ids))
        else:
            # Not a call we know: the native check rejects it, with its reason, on its own.
            events.append(raw)
        out.origin.append(i)
    native: dict[str, Any] = {"events": events}
    if sent is not None:
        native["sent_at"] = sent  # the native skew correction: ts + (received - sentAt)
    out.body = msgspec.json.encode(native)
    return out


# Segment's error codes by status: analytics-python logs `code` and `message` of an
# error body ("Unknown error" without them).
_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 408: "timeout",
          413: "too_large", 415: "unsupported_media_type", 429: "rate_limited",
          503: "unavailable"}


def error_body(status: int, reason: str) -> web.Response:
    """The collector's ``error``, and Segment's ``code`` and ``message`` beside it."""
    return web.json_response({"error": reason, "code": _CODES.get(status, "error"),
                              "message": reason}, status=status)


@error_dialect(error_body)
@access(Level.WRITE, Credential.BASIC_USER)
async def post_batch(request: web.Request) -> web.Response:
    collector = request.app[COLLECTOR]
    project = sender(request, ("application/json",))
    counters = collector.counters
    ids = foreign_ids(request, project)
    outcome = await admit_and_ingest(
        request, project, lambda raw: translate(raw, counters, ids), error_body
    )
    if isinstance(outcome, web.Response):
        return outcome
    counters["segment_calls_ignored"] += outcome[1].ignored
    # Segment's answer. Rejected calls are in rejected_events and the counters, as
    # native ones are; Segment clients would only log them anyway.
    return web.json_response({"success": True})
