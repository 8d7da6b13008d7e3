"""The wire format of a batch, decoded: envelopes, contexts and properties, each
refused with its reason and its ``$.path`` while its neighbours go on. Decoders are
built once."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from quietly_collector.pipeline.utf8 import utf8_error
from quietly_schemas import EventSchema
from quietly_schemas.catalog import keyword_ok, version_ok

_CONTEXT_KEYWORDS = ("app", "os", "locale", "sdk")
_CONTEXT_VERSIONS = ("app_version", "os_version", "sdk_version")


def _kw(n: int) -> Any:
    # The character set is checked after decoding, with a cache (keyword_ok).
    return Annotated[str, msgspec.Meta(max_length=n)]


class Context(msgspec.Struct, kw_only=True, gc=False):
    app: _kw(128) = ""  # type: ignore[valid-type]
    app_version: _kw(64) = ""  # type: ignore[valid-type]
    os: _kw(32) = ""  # type: ignore[valid-type]
    os_version: _kw(64) = ""  # type: ignore[valid-type]
    locale: _kw(35) = ""  # type: ignore[valid-type]
    sdk: _kw(64) = ""  # type: ignore[valid-type]
    sdk_version: _kw(64) = ""  # type: ignore[valid-type]
    # Absent consent is read as the narrower level, never the wider one.
    consent: Literal["off", "basic", "detailed"] = "basic"


AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class EventIn(msgspec.Struct, kw_only=True, gc=False):
    event_id: uuid.UUID
    event: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    version: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 1
    ts: AwareDatetime
    install_id: uuid.UUID
    session_id: uuid.UUID | None = None
    context: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))
    props: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))


class BatchIn(msgspec.Struct, kw_only=True, gc=False):
    sent_at: AwareDatetime | None = None
    events: list[msgspec.Raw]


class _Envelopes(msgspec.Struct, kw_only=True, gc=False):
    """The same body with every event's envelope decoded, in one call."""

    events: list[EventIn]


_batch_decoder = msgspec.json.Decoder(BatchIn)
_envelopes_decoder = msgspec.json.Decoder(_Envelopes)
_event_decoder = msgspec.json.Decoder(EventIn)
_dict_decoder = msgspec.json.Decoder(dict[str, Any])


class BatchError(ValueError):
    """The body as a whole is unusable (HTTP 400)."""


def decode_batch(body: bytes | bytearray) -> BatchIn:
    bad = utf8_error(body)
    if bad is not None:
        raise BatchError(bad)
    try:
        return _batch_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BatchError(reason(str(exc), "$")) from None
    except msgspec.DecodeError as exc:
        raise BatchError(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        # msgspec stops at the interpreter's recursion limit (about 1000 levels).
        raise BatchError("body is not valid JSON: nested too deeply") from None


def envelopes(
    body: bytes | bytearray, batch: BatchIn, max_event_bytes: int
) -> list[EventIn] | None:
    """Every event's envelope, decoded in one call, or None when some event is over
    the size limit or invalid: then ``process_events`` decodes each on its own, for
    its own reason (one call is cheaper than one per event)."""
    if not batch.events or max(map(len, batch.events)) > max_event_bytes:
        return None
    try:
        return _envelopes_decoder.decode(body).events
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None


class EnvelopeError(Exception):
    """An event whose envelope cannot be read; ``reason`` carries its ``$.events[i]``."""

    def __init__(self, event_id: str | None, reason: str) -> None:
        self.event_id = event_id
        self.reason = reason


def envelope(raw: msgspec.Raw, i: int, max_bytes: int) -> EventIn:
    """One event's envelope, decoded on its own (when the batch's all-at-once decode
    failed): its own reason when it is over the size limit or malformed."""
    if len(raw) > max_bytes:
        raise EnvelopeError(event_id_of(raw), f"event is {len(raw)} bytes, over the"
                            f" {max_bytes}-byte limit at $.events[{i}]")
    try:
        return _event_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise EnvelopeError(event_id_of(raw), reason(str(exc), f"$.events[{i}]")) from None
    except msgspec.DecodeError as exc:
        raise EnvelopeError(None, f"{exc} at $.events[{i}]") from None


def reason(message: str, prefix: str) -> str:
    """Rewrite msgspec's ``- at `$.x``` into ``at <prefix>.x`` relative to the batch."""
    text, sep, path = message.rpartition(" - at `")
    if not sep:
        return f"{message} at {prefix}"
    return f"{text} at {prefix}{path.rstrip('`')[1:]}"


_CONTEXT_CACHE_MAX = 10_000
NOT_KEYWORD = (
    "Expected an identifier: only [A-Za-z0-9_.:+-], and nothing that looks like personal"
    " data (e-mail, IP address, phone number)"
)
_context_decoder = msgspec.json.Decoder(Context)


class PropsDecoder:
    """Decoders for one event schema, built once."""

    def __init__(self, schema: EventSchema) -> None:
        self.schema = schema
        self.strict = msgspec.json.Decoder(schema.props_type)
        self.lenient = msgspec.json.Decoder(schema.lenient_type)
        self.declared = frozenset(schema.fields)

    def decode(self, raw: msgspec.Raw, counters: Counter[str]) -> Any:
        try:
            return self.strict.decode(raw)
        except msgspec.ValidationError as exc:
            if "unknown field" not in str(exc):
                raise
        # Undeclared properties: decode again ignoring them, and count what was dropped.
        props = self.lenient.decode(raw)
        counters["props_dropped_undeclared"] += len(set(_dict_decoder.decode(raw)) - self.declared)
        return props


def app_of(raw: bytes) -> str:
    """Best effort app of a refused event (its ``context.app``), if it is an identifier;
    only refusals pay for it."""
    try:
        obj = _dict_decoder.decode(raw)
        app = obj.get("context", {}).get("app", "")
    except (msgspec.DecodeError, msgspec.ValidationError, AttributeError, RecursionError):
        return ""
    return app if isinstance(app, str) and len(app) <= 128 and keyword_ok(app) else ""


def event_id_of(raw: bytes) -> str | None:
    """Best effort event id for a rejection, only if it is a well-formed UUID."""
    try:
        obj = _dict_decoder.decode(raw)
        return str(uuid.UUID(str(obj.get("event_id"))))
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError, AttributeError):
        return None


class Reject(Exception):
    """An event refused; ``reason`` ends with `` at <path within the event>``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def context_of(raw: msgspec.Raw, cache: dict[bytes, Context]) -> Context:
    key = bytes(raw)
    c = cache.get(key)
    if c is not None:
        return c
    try:
        c = _context_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise Reject(reason(str(exc), ".context")) from None
    for name in _CONTEXT_KEYWORDS:
        if not keyword_ok(getattr(c, name)):
            raise Reject(f"{NOT_KEYWORD} at .context.{name}")
    for name in _CONTEXT_VERSIONS:
        if not version_ok(getattr(c, name)):
            raise Reject(f"{NOT_KEYWORD} at .context.{name}")
    if len(cache) >= _CONTEXT_CACHE_MAX:
        cache.clear()
    cache[key] = c
    return c


