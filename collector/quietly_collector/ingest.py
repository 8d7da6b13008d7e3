"""Turn one decoded batch into stored rows and per-event verdicts.

Each event is decoded on its own (from a ``msgspec.Raw`` slice of the batch),
so a bad event is rejected with a reason and its ``$.path`` while its
neighbours go on. Everything here is synchronous and pure apart from counters:
the view awaits durability and the duplicate lookup around it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec

from quietly_schemas import Catalog, EventSchema, scrub_counted

_Keyword = r"^[A-Za-z0-9_.:+\-]*$"
_TS_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)


def _kw(n: int) -> Any:
    return Annotated[str, msgspec.Meta(max_length=n, pattern=_Keyword)]


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
    context: Context = msgspec.field(default_factory=Context)
    props: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))


class BatchIn(msgspec.Struct, kw_only=True, gc=False):
    sent_at: AwareDatetime | None = None
    events: list[msgspec.Raw]


class Row(msgspec.Struct, array_like=True, gc=False):
    """One row of the ``events`` table, in column order (JSONCompactEachRow)."""

    event_id: uuid.UUID
    project: str
    event: str
    version: int
    install_hash: int
    session_hash: int
    ts: datetime
    client_ts: datetime
    sent_at: datetime | None
    received_at: datetime
    ts_source: str
    app: str
    app_version: str
    os: str
    os_version: str
    locale: str
    sdk: str
    sdk_version: str
    consent: str
    props: msgspec.Raw


class RejectedRow(msgspec.Struct, array_like=True, gc=False):
    """One row of ``rejected_events``: the reason, never the payload."""

    received_at: datetime
    project: str
    batch_index: int
    event_id: str
    event: str
    version: int
    reason: str


EVENT_COLUMNS: tuple[str, ...] = Row.__struct_fields__
REJECTED_COLUMNS: tuple[str, ...] = RejectedRow.__struct_fields__

_batch_decoder = msgspec.json.Decoder(BatchIn)
_event_decoder = msgspec.json.Decoder(EventIn)
_dict_decoder = msgspec.json.Decoder(dict[str, Any])
_encoder = msgspec.json.Encoder()


class BatchError(ValueError):
    """The body as a whole is unusable (HTTP 400)."""


def decode_batch(body: bytes) -> BatchIn:
    try:
        return _batch_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BatchError(_reason(str(exc), "$")) from None
    except msgspec.DecodeError as exc:
        raise BatchError(f"body is not valid JSON: {exc}") from None


def _reason(message: str, prefix: str) -> str:
    """Rewrite msgspec's ``- at `$.x``` into ``at <prefix>.x`` relative to the batch."""
    text, sep, path = message.rpartition(" - at `")
    if not sep:
        return f"{message} at {prefix}"
    return f"{text} at {prefix}{path.rstrip('`')[1:]}"


@dataclass
class Rejection:
    index: int
    event_id: str | None
    reason: str
    event: str = ""
    version: int = 0


@dataclass
class Candidate:
    """A valid event, not yet checked for duplicates."""

    index: int
    event_id: uuid.UUID
    ts: datetime
    line: bytes


@dataclass
class Processed:
    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)


@dataclass
class IngestContext:
    catalog: Catalog
    pseudonymize: Any  # Callable[[bytes], int]
    max_event_bytes: int
    future_tolerance: timedelta


def _event_id_of(raw: bytes) -> str | None:
    """Best effort event id for a rejection, only if it is a well-formed UUID."""
    try:
        obj = _dict_decoder.decode(raw)
        return str(uuid.UUID(str(obj.get("event_id"))))
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError, AttributeError):
        return None


def _decode_props(
    schema: EventSchema, raw: msgspec.Raw, prefix: str, counters: Counter[str]
) -> Any:
    try:
        return msgspec.json.decode(raw, type=schema.props_type)
    except msgspec.ValidationError as exc:
        if "unknown field" not in str(exc):
            raise _PropsError(_reason(str(exc), prefix)) from None
    # Undeclared properties: decode again ignoring them, and count what was dropped.
    try:
        props = msgspec.json.decode(raw, type=schema.lenient_type)
    except msgspec.ValidationError as exc:
        raise _PropsError(_reason(str(exc), prefix)) from None
    sent = _dict_decoder.decode(raw)
    counters["props_dropped_undeclared"] += len(set(sent) - set(schema.fields))
    return props


class _PropsError(Exception):
    pass


def process_events(
    batch: BatchIn, project: str, received_at: datetime, ctx: IngestContext
) -> Processed:
    out = Processed()
    counters = out.counters
    sent_at = batch.sent_at
    skew = (received_at - sent_at) if sent_at is not None else timedelta(0)
    ts_source = "sent_at_skew" if sent_at is not None else "client"
    latest = received_at + ctx.future_tolerance
    catalog = ctx.catalog
    pseudo = ctx.pseudonymize
    for i, raw in enumerate(batch.events):
        prefix = f"$.events[{i}]"
        if len(raw) > ctx.max_event_bytes:
            out.rejected.append(
                Rejection(
                    i,
                    _event_id_of(raw),
                    f"event is {len(raw)} bytes, over the {ctx.max_event_bytes}-byte limit"
                    f" at {prefix}",
                )
            )
            continue
        try:
            ev = _event_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            out.rejected.append(Rejection(i, _event_id_of(raw), _reason(str(exc), prefix)))
            continue
        except msgspec.DecodeError as exc:
            out.rejected.append(Rejection(i, None, f"{exc} at {prefix}"))
            continue
        schema = catalog.get(ev.event, ev.version)
        eid = str(ev.event_id)
        if schema is None:
            known = catalog.versions(ev.event)
            why = (
                f"unknown version {ev.version} of event {ev.event!r} (known: {known})"
                if known
                else f"unknown event type {ev.event!r}"
            )
            out.rejected.append(Rejection(i, eid, f"{why} at {prefix}.event", ev.event, ev.version))
            continue
        consent = ev.context.consent
        if consent == "off":
            out.rejected.append(
                Rejection(i, eid, f"consent is off at {prefix}.context.consent", ev.event)
            )
            continue
        if schema.consent == "detailed" and consent != "detailed":
            out.rejected.append(
                Rejection(
                    i, eid, f"event needs detailed consent at {prefix}.context.consent", ev.event
                )
            )
            continue
        try:
            props = _decode_props(schema, ev.props, f"{prefix}.props", counters)
        except _PropsError as exc:
            out.rejected.append(Rejection(i, eid, str(exc), ev.event, ev.version))
            continue
        if consent == "basic":
            for name in schema.detailed_fields:
                if getattr(props, name) is not None:
                    setattr(props, name, None)
                    counters["props_dropped_consent"] += 1
        for name in schema.text_fields:
            value = getattr(props, name)
            if value:
                clean, found = scrub_counted(value)
                if found:
                    setattr(props, name, clean)
                    for kind, n in found.items():
                        counters[f"redacted_{kind}"] += n
        client_ts = ev.ts
        ts = client_ts + skew
        source = ts_source
        if ts > latest:
            ts, source = received_at, "received_at"
        if ts < _TS_FLOOR:
            out.rejected.append(
                Rejection(i, eid, f"ts is before 2000-01-01 at {prefix}.ts", ev.event, ev.version)
            )
            continue
        c = ev.context
        row = Row(
            ev.event_id,
            project,
            ev.event,
            ev.version,
            pseudo(ev.install_id.bytes),
            pseudo(ev.session_id.bytes) if ev.session_id is not None else 0,
            ts,
            client_ts,
            sent_at,
            received_at,
            source,
            c.app,
            c.app_version,
            c.os,
            c.os_version,
            c.locale,
            c.sdk,
            c.sdk_version,
            consent,
            msgspec.Raw(_encoder.encode(props)),
        )
        out.candidates.append(Candidate(i, ev.event_id, ts, _encoder.encode(row)))
    return out


def rejected_lines(
    rejected: list[Rejection], project: str, received_at: datetime
) -> list[bytes]:
    from quietly_schemas import scrub

    lines = []
    for r in rejected:
        row = RejectedRow(
            received_at,
            project,
            r.index,
            r.event_id or "",
            scrub(r.event)[:64],
            r.version,
            # msgspec quotes offending values in some messages; scrub them too.
            scrub(r.reason)[:1000],
        )
        lines.append(_encoder.encode(row))
    return lines
