"""Turn one decoded batch into stored rows and per-event verdicts.

For each event, in order: its envelope (decode.py); its schema, context, consent,
properties and corrected time (``validate``); what basic consent keeps
(``drop_detailed``); free text scrubbed (``scrub_text``); and the row the spool
carries, ids pseudonymized (``candidate``).
A refused event gets its reason and ``$.path``; its neighbours go on. Synchronous and
pure apart from counters: the collector awaits durability and duplicate lookups
around it. On the event loop for every event, so each step is a plain function over
locals, the common cases first.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from quietly_collector.pipeline.decode import (
    NOT_KEYWORD,
    BatchIn,
    Context,
    EnvelopeError,
    EventIn,
    PropsDecoder,
    Reject,
    app_of,
    context_of,
    envelope,
    reason,
)
from quietly_collector.pipeline.pseudonym import Pseudonymizer
from quietly_collector.pipeline.rejections import rejection_kind
from quietly_collector.storage.deletion import DELETION_EVENT, DeletionRow, encode_request
from quietly_collector.storage.rows import RejectedRow, Row
from quietly_schemas import Catalog, EventSchema, scrub, scrub_counted

_TS_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
_encoder = msgspec.json.Encoder()


@dataclass
class Rejection:
    index: int
    event_id: str | None
    reason: str
    event: str = ""
    version: int = 0
    app: str = ""


CLIENT_REPORT = "client_report"


class Candidate(msgspec.Struct, gc=False):
    """A valid event, not yet checked for duplicates. A Struct, not a NamedTuple: built
    once per event on the event loop, where a Struct is several times cheaper."""

    position: int
    event_id: uuid.UUID
    # event_id.int and ts as epoch seconds: what the duplicate filter compares.
    key: int
    ts: float
    line: bytes
    install_hash: int
    # A deletion_request: ``line`` is a deletion.DeletionRow, not an events row.
    deletion: bool = False
    # A client_report's counts by reason: the collector counts them once it is durable.
    report: dict[str, int] | None = None


@dataclass
class Processed:
    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    deletions: int = 0
    reports: int = 0


@dataclass
class IngestContext:
    catalog: Catalog
    pseudonymize: Pseudonymizer
    max_event_bytes: int
    future_tolerance: timedelta
    # Decoded, checked contexts by their raw JSON: SDKs send the same context
    # on every event, so it is decoded and checked once per distinct value.
    contexts: dict[bytes, Context] = field(default_factory=dict)
    decoders: dict[tuple[str, int], PropsDecoder] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.decoders = {s.key: PropsDecoder(s) for s in self.catalog}


class _Batch:
    """What every event of one batch shares."""

    __slots__ = ("last_context", "last_raw", "latest", "project", "received_at", "sent_at",
                 "skew", "ts_source")

    def __init__(self, batch: BatchIn, project: str, received_at: datetime,
                 tolerance: timedelta) -> None:
        self.project = project
        self.received_at = received_at
        self.sent_at = batch.sent_at
        self.skew = (received_at - batch.sent_at) if batch.sent_at is not None else timedelta(0)
        self.ts_source = "sent_at_skew" if batch.sent_at is not None else "client"
        self.latest = received_at + tolerance
        # SDKs send one context for a whole batch: compared with the last one first.
        self.last_raw: msgspec.Raw | None = None
        self.last_context = Context()


def validate(ev: EventIn, ctx: IngestContext, b: _Batch, counters: Counter[str]
             ) -> tuple[EventSchema, Context, Any, datetime, str]:
    """The event checked against its schema: the schema, its context (and whether its
    consent lets it in), its properties, and its corrected time (client time plus the
    batch's clock skew; a time further ahead than the tolerance is the time of
    arrival) with what set it. One function, not one per check: it runs for every
    event on the event loop."""
    dec = ctx.decoders.get((ev.event, ev.version))
    if dec is None:
        known = ctx.catalog.versions(ev.event)
        raise Reject(f"unknown version {ev.version} of event {ev.event!r} (known: {known})"
                     " at .event" if known else f"unknown event type {ev.event!r} at .event")
    schema = dec.schema
    if ev.context == b.last_raw:
        c = b.last_context
    else:
        c = context_of(ev.context, ctx.contexts)
        b.last_raw, b.last_context = ev.context, c
    # A deletion_request is sent because consent went off: the one exception.
    if c.consent == "off" and ev.event != DELETION_EVENT:
        raise Reject("consent is off at .context.consent")
    if schema.consent == "detailed" and c.consent != "detailed":
        raise Reject("event needs detailed consent at .context.consent")
    try:
        props = dec.decode(ev.props, counters)
    except msgspec.ValidationError as exc:
        raise Reject(reason(str(exc), ".props")) from None
    bad = schema.bad_keyword(props)
    if bad is not None:
        raise Reject(f"{NOT_KEYWORD} at .props.{bad}")
    ts = ev.ts + b.skew
    if ts < _TS_FLOOR:
        raise Reject("ts is before 2000-01-01 at .ts")
    if ts > b.latest:
        return schema, c, props, b.received_at, "received_at"
    return schema, c, props, ts, b.ts_source


def drop_detailed(props: Any, schema: EventSchema, counters: Counter[str]) -> None:
    """Under basic consent, the properties that need detailed consent are dropped."""
    for name in schema.detailed_fields:
        if getattr(props, name) is not None:
            setattr(props, name, None)
            counters["props_dropped_consent"] += 1


def scrub_text(props: Any, schema: EventSchema, locale: str, counters: Counter[str]) -> None:
    """Personal data out of every free-text property (the locale hints at phone
    numbers' country)."""
    for name in schema.text_fields:
        value = getattr(props, name)
        if value:
            clean, found = scrub_counted(value, locale)
            if found:
                setattr(props, name, clean)
                for kind, n in found.items():
                    counters[f"redacted_{kind}"] += n


def candidate(i: int, ev: EventIn, c: Context, props: Any, ts: datetime, source: str,
              pseudo: Pseudonymizer, b: _Batch) -> Candidate:
    """The row the spool carries, ids pseudonymized (a deletion request's own row for
    one)."""
    hashed = pseudo.cache  # a cache hit costs no call
    install = ev.install_id.int
    install_hash = hashed.get(install) or pseudo(install)
    eid = ev.event_id
    if ev.event == DELETION_EVENT:
        line = encode_request(DeletionRow(eid, b.project, install_hash, ts, b.received_at))
        return Candidate(i, eid, eid.int, ts.timestamp(), line, install_hash, True)
    session = ev.session_id
    if session is None:
        session_hash = 0
    else:
        sk = session.int
        session_hash = hashed.get(sk) or pseudo(sk)
    encode = _encoder.encode
    row = Row(eid, b.project, ev.event, ev.version, install_hash, session_hash, ts, ev.ts,
              b.sent_at, b.received_at, source, c.app, c.app_version, c.os, c.os_version,
              c.locale, c.sdk, c.sdk_version, c.consent, msgspec.Raw(encode(props)))
    return Candidate(i, eid, eid.int, ts.timestamp(), encode(row), install_hash)


def process_events(
    batch: BatchIn, project: str, received_at: datetime, ctx: IngestContext,
    decoded: list[EventIn] | None = None,
) -> Processed:
    """``decoded``: the envelopes of ``batch.events`` from ``envelopes``, if it had them."""
    out = Processed()
    counters = out.counters
    candidates = out.candidates
    b = _Batch(batch, project, received_at, ctx.future_tolerance)
    for i, raw in enumerate(batch.events):
        try:
            ev = decoded[i] if decoded is not None else envelope(raw, i, ctx.max_event_bytes)
        except EnvelopeError as err:
            out.rejected.append(Rejection(i, err.event_id, err.reason, app=app_of(raw)))
            continue
        try:
            schema, c, props, ts, source = validate(ev, ctx, b, counters)
        except Reject as rej:
            why, _, path = rej.reason.rpartition(" at ")
            out.rejected.append(Rejection(
                i, str(ev.event_id), f"{why} at $.events[{i}]{path}", ev.event, ev.version,
                app_of(raw)))
            continue
        if schema.detailed_fields and c.consent == "basic":
            drop_detailed(props, schema, counters)
        if schema.text_fields:
            scrub_text(props, schema, c.locale, counters)
        made = candidate(i, ev, c, props, ts, source, ctx.pseudonymize, b)
        if made.deletion:
            out.deletions += 1
        elif ev.event == CLIENT_REPORT:
            made.report = {k: v for k, v in msgspec.structs.asdict(props).items() if v}
            out.reports += 1
        candidates.append(made)
    return out


def rejected_lines(
    rejected: list[Rejection], project: str, received_at: datetime
) -> list[bytes]:
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
            r.app,
            rejection_kind(r.reason),
        )
        lines.append(_encoder.encode(row))
    return lines
