"""PostHog capture (``/batch/``, ``/capture/``, ``/e/``, ``/i/v0/e/``): posthog-python,
posthog-js and clients built to the same format.

The project key is inside the body (``api_key`` or ``token``), so the body is read
first, under the size bound and deadline of every route and in the unauthenticated
share of the batch slots (intake.admit_body_keyed_and_ingest), then the key goes
through the auth gate's one key check (``authenticate_body``). Events are mapped in
posthog_map.py and go through ``Collector.ingest`` like every other route. The
framing: a batch ``{"api_key", "batch": [...], "sent_at"}``, one event, or an array of
events carrying ``properties.token``; gzip as ``Content-Encoding``, as posthog-js's
``?compression=gzip-js`` or by its magic bytes; posthog-js's base64 form (``data=``).
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from quietly_collector.access.gate import (
    Credential,
    Level,
    access,
    authenticate_body,
    principal,
)
from quietly_collector.pipeline.body import BodyError, Inflater
from quietly_collector.pipeline.collector import COLLECTOR
from quietly_collector.pipeline.decode import BatchError
from quietly_collector.pipeline.utf8 import utf8_error
from quietly_collector.receivers import posthog_map
from quietly_collector.receivers.errors import error_dialect
from quietly_collector.receivers.intake import (
    Opened,
    Translated,
    admit_body_keyed_and_ingest,
    foreign_ids,
)
from quietly_collector.receivers.segment import aware

ROUTES = ("/batch/", "/capture/", "/e/", "/i/v0/e/")
CONTENT_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded",
                 "application/octet-stream")  # the last: no Content-Type at all
GZIP_MAGIC = b"\x1f\x8b"
_any = msgspec.json.Decoder(Any)


class _Batch(msgspec.Struct):
    batch: list[msgspec.Raw]
    api_key: Any = None
    token: Any = None
    sent_at: Any = None


_batch = msgspec.json.Decoder(_Batch)
_events = msgspec.json.Decoder(list[msgspec.Raw])
# An event as sent, and its decoded value (None when it is not JSON).
Event = tuple[msgspec.Raw, Any]
# PostHog's error types by status; posthog-python logs `detail`.
_TYPES = {401: ("authentication_error", "invalid_api_key"), 503: ("server_error", "unavailable")}
# posthog-js retries network errors and 5xx only, and drops every 4xx (408 and 429
# too); posthog-python retries 408, 429 and 5xx. "Retry later" is therefore a 503 here
# (Retry-After kept), which both retry.
_RETRY_LATER = frozenset({408, 429})


def error_body(status: int, reason: str) -> web.Response:
    if status in _RETRY_LATER:
        status = 503
    kind, code = _TYPES.get(status, ("validation_error", "invalid_input"))
    return web.json_response({"type": kind, "code": code, "detail": reason, "error": reason},
                             status=status)


def unwrap(raw: bytes | bytearray, compression: str, form: bool, limit: int) -> bytes | bytearray:
    """The JSON inside posthog-js's encodings; ``limit``: the decompressed bound."""
    if form:
        try:
            fields = urllib.parse.parse_qs(bytes(raw).decode("ascii"), max_num_fields=16)
            raw = base64.b64decode(fields["data"][0], validate=False)
        except (UnicodeDecodeError, ValueError, KeyError, binascii.Error):
            raise BodyError(400, "form body must be data=<base64 JSON> (posthog-js)") from None
    elif compression not in ("", "gzip-js", "gzip", "base64"):
        raise BodyError(415, f"unsupported compression {compression[:20]!r}"
                             " (use gzip-js, gzip or none)")
    if bytes(raw[:2]) == GZIP_MAGIC:
        inflater = Inflater(limit)
        inflater.feed(bytes(raw))
        return inflater.finish()
    if len(raw) > limit:
        raise BodyError(413, f"body is over the {limit}-byte limit")
    return raw


def frame(body: bytes | bytearray) -> tuple[str | None, list[Event], Any]:
    """(key, events each with its decoded value, batch sent_at) of a batch, one event,
    or an array of events. Each event is decoded once, here."""
    bad = utf8_error(body)
    if bad is not None:
        raise BatchError(bad)
    try:
        start = bytes(body[:64]).lstrip()[:1]
        if start == b"[":
            raws, key, sent_at = _events.decode(body), None, None
        else:
            try:
                b = _batch.decode(body)
                raws, key, sent_at = b.batch, _text(b.api_key) or _text(b.token), b.sent_at
            except msgspec.ValidationError:
                raws, key, sent_at = [msgspec.Raw(bytes(body))], None, None
                if not isinstance(_any.decode(body), dict):
                    raise BatchError(
                        "expected a PostHog batch, event or array of events") from None
    except msgspec.ValidationError as exc:
        raise BatchError(f"expected a PostHog batch, event or array of events: {exc}") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BatchError(f"body is not valid JSON: {exc}") from None
    events = [(raw, _decoded(raw)) for raw in raws]
    # Every key an event carries must be the request's: one request, one project.
    keys = {k for k in (_event_key(ev) for _, ev in events) if k is not None}
    if key is None and keys:
        key = min(keys)
    if keys - {key}:
        raise BatchError("events carry different project keys (api_key/token): send each"
                         " project's events in their own request")
    return key, events, sent_at


def _decoded(raw: msgspec.Raw) -> Any:
    try:
        return _any.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _event_key(ev: Any) -> str | None:
    if not isinstance(ev, dict):
        return None
    props = ev.get("properties")
    token = props.get("token") if isinstance(props, dict) else None
    return _text(ev.get("api_key")) or _text(ev.get("token")) or _text(token)


@error_dialect(error_body)
@access(Level.WRITE, Credential.BODY)
async def capture(request: web.Request) -> web.Response:
    collector = request.app[COLLECTOR]
    ctype = request.content_type
    if ctype not in CONTENT_TYPES:
        return error_body(415, f"Content-Type must be {' or '.join(CONTENT_TYPES[:3])},"
                               f" got {ctype[:60]!r}")
    compression = request.query.get("compression", "")
    form = ctype == "application/x-www-form-urlencoded"
    limit = collector.settings.max_decompressed_bytes
    counters = collector.counters

    def open_body(raw: bytes | bytearray) -> Opened:
        key, events, sent_at = frame(unwrap(raw, compression, form, limit))
        sent = aware(sent_at)
        if sent_at is not None and sent is None:
            counters["posthog_sent_at_invalid"] += 1  # no skew correction, not a refusal

        def translate(_: bytes | bytearray) -> Translated:
            ids = foreign_ids(request, _project(request))
            sent_text = (sent or datetime.now(UTC)).isoformat()
            return posthog_map.translate(events, sent, sent_text, ids, counters)
        return key, translate

    def check(key: str | None) -> str:
        project = authenticate_body(request, key).project
        assert project is not None  # a write principal always has one
        return project

    outcome = await admit_body_keyed_and_ingest(request, open_body, check, error_body)
    if isinstance(outcome, web.Response):
        return outcome
    result, translated = outcome
    counters["posthog_events_ignored"] += translated.ignored
    # PostHog's answer is {"status": 1}; its clients read only the status. The verdicts
    # beside it name each refused event by its place in the request.
    rejected = []
    for r in result.rejected:
        at = translated.origin[r["index"]]
        reason = str(r["reason"]).replace(f"$.events[{r['index']}]", f"$.batch[{at}]")
        rejected.append({"index": at, "event_id": r["event_id"], "reason": reason})
    return web.json_response({"status": 1, "accepted": result.accepted,
                              "duplicates": result.duplicates, "ignored": translated.ignored,
                              "rejected": rejected})


def _project(request: web.Request) -> str:
    project = principal(request).project
    assert project is not None
    return project


__all__ = ["ROUTES", "capture", "error_body", "frame", "unwrap"]
