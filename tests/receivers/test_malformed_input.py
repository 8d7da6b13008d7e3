"""Malformed input: a reason and a 4xx for a body that is not a batch, a per-event
rejection for an event that is not an event, never a 500, and always quickly.

The documented answers are in docs/protocol.md ("Malformed input").
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.conftest import Running
from tests.helpers import ADMIN_TOKEN, WRITE_KEY, batch, event, headers
from tests.receivers.test_hardening import QUICK_S, compact, stored_ids

DEEP = 100_000


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b'{"a":' * depth + inner + b"}" * depth


def _evt() -> bytes:
    return compact(event())


# (case id, body, status, text the reason must contain)
BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("empty", b"", 400, "not valid JSON"),
    ("whitespace", b"  \n ", 400, "not valid JSON"),
    ("null", b"null", 400, "Expected `object`, got `null` at $"),
    ("array", b"[]", 400, "Expected `object`, got `array` at $"),
    ("string", b'"events"', 400, "Expected `object`, got `str` at $"),
    ("number", b"42", 400, "Expected `object`, got `int` at $"),
    ("true", b"true", 400, "Expected `object`, got `bool` at $"),
    ("no events", b"{}", 400, "missing required field `events`"),
    ("events null", b'{"events": null}', 400, "got `null` at $.events"),
    ("events object", b'{"events": {}}', 400, "Expected `array`, got `object` at $.events"),
    ("events string", b'{"events": "[]"}', 400, "Expected `array`, got `str` at $.events"),
    ("sent_at number", b'{"sent_at": 1700000000, "events": []}', 400, "at $.sent_at"),
    ("sent_at no offset", b'{"sent_at": "2026-01-01T00:00:00", "events": []}', 400, "$.sent_at"),
    ("sent_at 1e400", b'{"sent_at": 1e400, "events": []}', 400, "Number out of range"),
    ("events 2**200", b'{"events": %d}' % 2**200, 400, "at $.events"),
    ("truncated", b'{"events": [' + _evt(), 400, "not valid JSON"),
    ("trailing garbage", b'{"events": []} {}', 400, "not valid JSON"),
    ("single quotes", b"{'events': []}", 400, "not valid JSON"),
    ("comment", b'{"events": [] /* x */}', 400, "not valid JSON"),
    ("NaN", b'{"events": [' + _evt()[:-1] + b', "x": NaN}]}', 400, "not valid JSON"),
    ("Infinity", b'{"events": [], "sent_at": Infinity}', 400, "not valid JSON"),
    ("-Infinity", b'{"events": [{"props": {"duration_ms": -Infinity}}]}', 400, "not valid JSON"),
    ("nested arrays 100k", b"[" * DEEP + b"]" * DEEP, 400, "Expected `object`"),
    ("nested objects 100k", _nested(DEEP), 400, "nested too deeply"),
    ("nested in events 100k", b'{"events": [' + b"[" * DEEP + b"]" * DEEP + b"]}", 400,
     "nested too deeply"),
    ("nested in props 100k", b'{"events": [{"props": ' + _nested(DEEP) + b"}]}", 400,
     "nested too deeply"),
    ("nested unknown key 100k", b'{"x": ' + _nested(DEEP) + b', "events": []}', 400,
     "nested too deeply"),
    ("unclosed 100k", b'{"events": [' + b"[" * DEEP, 400, "not valid JSON"),
    ("bad utf-8 in event", b'{"events": [' + _evt().replace(b"debugging", b"debug\xffing")
     + b"]}", 400, "not valid UTF-8"),
    ("bad utf-8 in key", b'{"ev\xe9nts": []}', 400, "not valid UTF-8"),
    ("overlong utf-8", b'{"events": [], "x": "\xc0\xaf"}', 400, "not valid UTF-8"),
    ("utf-8 surrogate", b'{"events": [], "x": "\xed\xa0\x80"}', 400, "not valid UTF-8"),
    ("cut utf-8", b'{"events": []}\xe2\x82', 400, "not valid UTF-8"),
    ("utf-16", '{"events": []}'.encode("utf-16"), 400, "not valid UTF-8"),
    ("lone surrogate escape", b'{"events": [], "x": "\\ud800"}', 400, "not valid JSON"),
]


async def _post(server: Running, data: bytes, hdrs: dict[str, str] | None = None) -> Any:
    started = time.perf_counter()
    status, result = await server.post("/v1/batch", data, hdrs or headers())
    assert time.perf_counter() - started < QUICK_S, "answered too slowly"
    return status, result


async def test_bodies_that_are_not_a_batch_get_a_4xx_with_a_reason(server: Running) -> None:
    failures = []
    for name, data, want_status, want_text in BAD_BODIES:
        status, result = await _post(server, data)
        if status != want_status or not isinstance(result, dict) or want_text not in str(
            result.get("error")
        ):
            failures.append((name, status, result))
    assert failures == []
    # Nothing of it was stored, and the collector still works.
    ev = event()
    status, result = await _post(server, compact(batch([ev])))
    assert (status, result["accepted"]) == (200, 1)
    assert await stored_ids(server) == {ev["event_id"]}


NEAR_LIMIT = (10, 100, 500, 900, 950, 980, 990, 995, 1000, 1010, 2000)


async def test_nesting_near_the_decoders_limit_never_fails_the_server(server: Running) -> None:
    # msgspec's limit is the interpreter's recursion limit, which events and their
    # props meet at other stack depths than the batch: probe around it, everywhere.
    failures = []
    for where in ("props", "undeclared prop", "context", "event", "unknown key"):
        for depth in NEAR_LIMIT:
            ev = event()
            if where == "props":
                ev["props"]["feature"] = "DEEP"
            elif where == "undeclared prop":
                ev["props"]["extra"] = "DEEP"
            elif where == "context":
                ev["context"]["app"] = "DEEP"
            elif where == "event":
                ev["deep"] = "DEEP"
            body = compact({"events": [ev], "x": "DEEP" if where == "unknown key" else 0})
            body = body.replace(b'"DEEP"', b"[" * depth + b"]" * depth)
            status, result = await _post(server, body)
            if status == 400:
                ok = result["error"] == "body is not valid JSON: nested too deeply"
            elif status != 200:
                ok = False
            elif where in ("props", "context"):
                ok = result["accepted"] == 0 and len(result["rejected"]) == 1
            else:
                # An undeclared property and an unknown key are ignored, however deep.
                ok = (result["accepted"], result["rejected"]) == (1, [])
            if not ok:
                failures.append((where, depth, status, result))
    assert failures == []


def _ev_with(**changes: Any) -> dict[str, Any]:
    ev = event()
    for key, value in changes.items():
        if key.startswith("props_"):
            ev["props"][key[6:]] = value
        else:
            ev[key] = value
    return ev


BAD_EVENTS: list[tuple[Any, str]] = [
    (_ev_with(event_id=12345), "Expected `uuid`, got `int` at $.events[{i}].event_id"),
    (_ev_with(event_id="not-a-uuid"), "Invalid UUID at $.events[{i}].event_id"),
    (_ev_with(ts=1700000000), "at $.events[{i}].ts"),
    (_ev_with(ts="2026-01-01T00:00:00"), "at $.events[{i}].ts"),
    (_ev_with(version="1"), "Expected `int`, got `str` at $.events[{i}].version"),
    (_ev_with(version=2**200), "Expected `int` <= 65535 at $.events[{i}].version"),
    (_ev_with(version=-(2**200)), "Expected `int` >= 1 at $.events[{i}].version"),
    (_ev_with(version=1e400), "Number out of range at $.events[{i}].version"),
    (_ev_with(event=None), "Expected `str`, got `null` at $.events[{i}].event"),
    (_ev_with(props=[1, 2]), "Expected `object`, got `array` at $.events[{i}].props"),
    (_ev_with(context="basic"), "Expected `object`, got `str` at $.events[{i}].context"),
    (_ev_with(props_duration_ms="fast"), "at $.events[{i}].props.duration_ms"),
    (_ev_with(props_duration_ms=2**200), "at $.events[{i}].props.duration_ms"),
    (_ev_with(props_duration_ms=1e308), "at $.events[{i}].props.duration_ms"),
    (_ev_with(props_duration_ms=1e400), "Number out of range at $.events[{i}].props"),
    (_ev_with(props_success=1), "got `int` at $.events[{i}].props.success"),
    (7, "Expected `object`, got `int` at $.events[{i}]"),
    ("event", "Expected `object`, got `str` at $.events[{i}]"),
    (None, "Expected `object`, got `null` at $.events[{i}]"),
    ([], "Expected `object`, got `array` at $.events[{i}]"),
]


async def test_an_event_that_is_not_an_event_is_rejected_alone(server: Running) -> None:
    # Each bad event between two good ones: every bad one gets its reason at its index,
    # every good one is stored.
    events: list[Any] = []
    good: set[str] = set()
    for bad, _ in BAD_EVENTS:
        ok = event()
        good.add(ok["event_id"])
        events += [ok, bad]
    data = json.dumps(batch(events)).encode()
    # json.dumps writes 1e400 as the non-JSON Infinity; send the number as written.
    data = data.replace(b"Infinity", b"1e400")
    status, result = await _post(server, data)
    assert status == 200, result
    assert result["accepted"] == len(BAD_EVENTS)
    got = {r["index"]: r["reason"] for r in result["rejected"]}
    assert sorted(got) == [2 * n + 1 for n in range(len(BAD_EVENTS))]
    for n, (_, reason) in enumerate(BAD_EVENTS):
        i = 2 * n + 1
        assert reason.format(i=i) in got[i], (i, got[i])
    assert await stored_ids(server) == good


async def test_duplicate_keys_take_the_last_value_and_it_is_the_one_scrubbed(
    server: Running,
) -> None:
    # Documented: the last occurrence of a key wins, everywhere. What is scrubbed is
    # what is stored: a clean first value cannot smuggle a dirty second one past it.
    ev = event("crash", {"kind": "OSError", "message": "clean"}, consent="basic")
    first_id = ev["event_id"]
    text = compact(batch([ev])).decode()
    text = text.replace('"message":"clean"', '"message":"clean","message":"mail bob@example.com"')
    last_id = "9a1a2b3c-4d5e-4f60-8a7b-8c9d0e1f2a3b"
    two_ids = f'"event_id":"{first_id}","event_id":"{last_id}"'
    text = text.replace(f'"event_id":"{first_id}"', two_ids, 1)
    text = text.replace('"context":{', '"context":{"consent":"off",', 1)  # basic comes last
    assert text.count('"message"') == 2 and text.count('"event_id"') == 2
    status, result = await _post(server, text.encode())
    assert (status, result["accepted"], result["rejected"]) == (200, 1, [])
    await server.settle()
    rows = server.rows("SELECT toString(event_id), props, consent FROM events")
    assert [(r[0], json.loads(r[1])["message"], r[2]) for r in rows] == [
        (last_id, "mail [email]", "basic")
    ]


async def test_content_type_and_auth_problems_are_reasons_too(server: Running) -> None:
    good = compact(batch([event()]))
    cases: list[tuple[dict[str, str], int, str]] = [
        ({"Authorization": f"Bearer {WRITE_KEY}"}, 415, "application/json"),
        ({**headers(), "Content-Type": "application/json; charset=utf-8"}, 200, ""),
        ({**headers(), "Content-Type": "application/xml"}, 415, "application/json"),
        ({**headers(), "Content-Encoding": "gzip, br"}, 415, "Content-Encoding"),
        ({**headers(), "Authorization": "Basic dTpw"}, 401, "Bearer"),
        ({**headers(), "Authorization": "Bearer " + "k" * 4000}, 401, "unknown write key"),
    ]
    for hdrs, want_status, want_text in cases:
        status, result = await _post(server, good, hdrs)
        assert status == want_status, (hdrs, result)
        if want_text:
            assert want_text in result["error"], result


async def test_the_sql_endpoint_refuses_malformed_bodies_with_a_reason(server: Running) -> None:
    admin = headers(ADMIN_TOKEN)
    # Past the interpreter's recursion limit, within sql_max_query_bytes.
    deep = _nested(5_000)
    for data in (b"", b"null", b'{"sql": 1}', b'{"sql": "SELECT \xff"}',
                 b'{"x": ' + deep + b', "sql": "SELECT 1"}', b'{"sql": NaN}'):
        status, result = await server.post("/v1/sql", data, admin)
        assert status == 400, (data[:40], result)
        assert result["error"].startswith('expected {"sql": "SELECT ..."}'), result
    status, result = await server.post(
        "/v1/sql", b'{"x": ' + _nested(DEEP) + b', "sql": "SELECT 1"}', admin)
    assert status == 413 and "65536-byte limit" in result["error"]
