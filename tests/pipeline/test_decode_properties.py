"""Properties of the ingest decoder over generated bodies (hypothesis).

For any body at all (JSON of any shape, batches with events that are partly right,
and those bodies cut, spliced or sprinkled with stray bytes):

- ``decode_batch`` either returns a batch or raises ``BatchError`` (a 400), nothing
  else: anything else would be a 500;
- ``process_events`` gives every event exactly one verdict: a candidate for storage
  or a rejection whose reason names ``$.events[i]``, and nothing raises;
- what would be stored is valid JSON, holds only declared properties, and its text
  properties are already scrubbed;
- decoding every envelope in one call (``envelopes``, the collector's fast path) gives
  exactly what decoding each event on its own gives.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quietly_collector.pipeline.decode import BatchError, decode_batch, envelopes
from quietly_collector.pipeline.process import IngestContext, process_events, rejected_lines
from quietly_collector.pipeline.pseudonym import Pseudonymizer
from quietly_schemas import EventSchema, FieldSpec, load_catalog, scrub
from tests.pii_strategies import PII_STRATEGIES

CATALOG = load_catalog()
SCHEMAS = {s.key: s for s in CATALOG}
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

FIXED = settings(
    max_examples=150, derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)

_pii_text = st.one_of(*PII_STRATEGIES.values()).map(lambda d: d[1].replace("{}", d[0]))


_times = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.isoformat())


def _field(spec: FieldSpec) -> st.SearchStrategy[Any]:
    if spec.values:
        return st.sampled_from(spec.values)
    low = None if spec.min is None else int(spec.min)
    high = None if spec.max is None else int(spec.max)
    return {
        "int": st.integers(low, high), "float": st.floats(low, high, allow_nan=False),
        "bool": st.booleans(), "keyword": st.from_regex(r"[a-z0-9_.]{1,12}", fullmatch=True),
    }.get(spec.type, st.one_of(st.text(max_size=40), _pii_text))


Change = tuple[str, Any] | None


def _damage(ev: dict[str, Any], change: Change, prop: Change, drop: set[str]) -> dict[str, Any]:
    """One field and one property set to anything, and some fields removed."""
    ev = {k: v for k, v in ev.items() if k not in drop}
    if change is not None:
        ev[change[0]] = change[1]
    if prop is not None and isinstance(ev.get("props"), dict):
        ev["props"] = {**ev["props"], prop[0]: prop[1]}
    return ev


def _event(schema: EventSchema) -> st.SearchStrategy[dict[str, Any]]:
    """Events of one type, right or damaged. Built once per type: strategies made
    inside a draw slow generation down. Hypothesis steers away from choices it has
    tried, so "mostly right" is a valid event and a separate draw of what to damage."""
    declared = st.fixed_dictionaries(
        {n: _field(f) for n, f in schema.fields.items() if f.required},
        optional={n: _field(f) for n, f in schema.fields.items() if not f.required},
    )
    undeclared = st.dictionaries(st.text(max_size=6), json_values, max_size=2)
    ev = st.fixed_dictionaries({
        "event_id": st.uuids().map(str),
        "event": st.just(schema.name),
        "version": st.just(schema.version),
        "ts": _times,
        "install_id": st.uuids().map(str),
        "session_id": st.none() | st.uuids().map(str),
        "context": st.fixed_dictionaries({}, optional={
            "app": st.from_regex(r"[a-z\-]{1,10}", fullmatch=True),
            "consent": st.sampled_from(["basic", "detailed", "off", "all"]),
            "locale": st.text(max_size=8),
        }),
        "props": st.builds(lambda a, b: {**b, **a}, declared, undeclared),
    })
    fields = ["event_id", "event", "version", "ts", "install_id", "session_id", "context"]
    change = st.none() | st.tuples(st.sampled_from([*fields, "props"]), json_values)
    names = sorted(schema.fields) or ["x"]
    prop = st.none() | st.tuples(st.sampled_from(names), json_values)
    nothing: set[str] = set()
    drop = st.just(nothing) | st.sets(st.sampled_from(fields), max_size=2)
    return st.builds(_damage, ev, change, prop, drop)


events = st.one_of(*(_event(s) for s in SCHEMAS.values()))


batches = st.fixed_dictionaries(
    {"events": st.lists(st.one_of(events, events, json_values), max_size=4)},
    optional={"sent_at": _times | json_values, "extra": json_values},
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    obj = draw(st.one_of(batches, batches, batches, json_values))
    data = json.dumps(obj, allow_nan=True).encode()
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        # Byte-level damage: cut, a stray byte, a byte that is not UTF-8 at the start of
        # a string value, or a slice repeated (which can duplicate keys).
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["cut", "insert", "not utf-8", "repeat"]))
        if how == "cut":
            data = data[:at]
        elif how == "insert":
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at:]
        elif how == "not utf-8":
            starts = [m.end() for m in re.finditer(rb'": "', data)] or [0]
            at = draw(st.sampled_from(starts))
            bad = draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80"]))
            data = data[:at] + bad + data[at:]
        else:
            end = draw(st.integers(at, len(data)))
            data = data[:end] + data[at:end] + data[end:]
    return data


CTX = IngestContext(
    catalog=CATALOG, pseudonymize=Pseudonymizer(b"k" * 32), max_event_bytes=2048,
    future_tolerance=timedelta(seconds=60),
)


_paths: set[str] = set()


def _check(body: bytes) -> int:
    """Run the decoder as the collector does; return how many events were stored."""
    try:
        batch = decode_batch(body)
    except BatchError:
        return -1
    decoded = envelopes(body, batch, CTX.max_event_bytes)
    processed = process_events(batch, "proj", NOW, CTX, decoded)
    if decoded is not None:
        alone = process_events(batch, "proj", NOW, CTX)
        assert [c.line for c in processed.candidates] == [c.line for c in alone.candidates]
        assert processed.rejected == alone.rejected
        assert processed.counters == alone.counters
        _paths.add("one call")
    else:
        _paths.add("each alone")
    verdicts = [c.position for c in processed.candidates] + [r.index for r in processed.rejected]
    assert sorted(verdicts) == list(range(len(batch.events)))
    for r in processed.rejected:
        assert f"$.events[{r.index}]" in r.reason, r.reason
    rejected_lines(processed.rejected, "proj", NOW)
    for c in processed.candidates:
        row = json.loads(c.line)
        if c.deletion:
            continue
        schema = SCHEMAS[(row[2], row[3])]
        stored = row[-1]
        assert set(stored) <= set(schema.fields)
        for name in schema.text_fields:
            if stored.get(name):
                assert scrub(stored[name]) == stored[name]
    return len(processed.candidates)


def test_any_body_gets_batch_error_or_one_verdict_per_event() -> None:
    outcomes: set[str] = set()

    @FIXED
    @given(bodies())
    def check(body: bytes) -> None:
        stored = _check(body)
        outcomes.add("400" if stored < 0 else "stored" if stored else "none stored")

    check()
    # The property is only as good as its inputs: they must reach all three outcomes,
    # and both ways of decoding envelopes.
    assert outcomes == {"400", "stored", "none stored"}
    assert _paths == {"one call", "each alone"}


def test_one_valid_event_is_stored() -> None:
    ev = {"event_id": str(uuid.uuid4()), "event": "feature_used", "ts": "2026-11-23T09:00:00Z",
          "install_id": str(uuid.uuid4()), "props": {"feature": "x"}}
    assert _check(json.dumps({"events": [ev]}).encode()) == 1


def test_each_event_is_stored_with_its_own_context() -> None:
    """Contexts usually repeat within a batch (the decoder reuses the last one); when
    they change, each event still gets its own, and a bad one rejects only its event."""
    def ev(context: dict[str, Any]) -> dict[str, Any]:
        return {"event_id": str(uuid.uuid4()), "event": "feature_used",
                "ts": "2026-11-23T09:00:00Z", "install_id": str(uuid.uuid4()),
                "props": {"feature": "x"}, "context": context}

    a = {"app": "alpha", "consent": "detailed"}
    b = {"app": "beta", "consent": "basic"}
    bad = {"app": "alpha", "consent": "all"}
    body = json.dumps({"events": [ev(a), ev(a), ev(bad), ev(b), ev(a), ev(bad), ev(bad)]})
    batch = decode_batch(body.encode())
    processed = process_events(batch, "proj", NOW, CTX)
    stored = {c.position: json.loads(c.line) for c in processed.candidates}
    app, consent = 11, 18  # columns of the events table (ingest.Row)
    assert {i: (r[app], r[consent]) for i, r in stored.items()} == {
        0: ("alpha", "detailed"), 1: ("alpha", "detailed"),
        3: ("beta", "basic"), 4: ("alpha", "detailed"),
    }
    assert [r.index for r in processed.rejected] == [2, 5, 6]
    assert all(".context.consent" in r.reason for r in processed.rejected)
