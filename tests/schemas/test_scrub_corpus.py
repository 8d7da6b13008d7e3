"""The scrubber end to end on a generated corpus (tests/pii_faker.py): Faker's personal
data in ten locales, plain and disguised, sent over HTTP as free text of ``error``,
``crash`` and ``survey_response`` events with the value's locale; then nothing of any
value may be found in any ClickHouse table. Look-alikes must come back unchanged.

Run ``pytest tests/schemas/test_scrub_corpus.py -s`` for recall per class and per form.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any

import pytest

from quietly_schemas import SCRUB_TYPES
from quietly_schemas.normalize import normalize
from quietly_schemas.scrub import needs_scan
from tests.conftest import Running
from tests.helpers import body, event, headers
from tests.pii_corpus import BENIGN
from tests.pii_faker import LOCALES, Case, benign, cases

_PLACEHOLDER = re.compile(r"\[(?:" + "|".join(SCRUB_TYPES) + r")\]")
# (event, text field) that carry free text; keywords complete the event.
_CARRIERS: list[tuple[str, str, dict[str, Any]]] = [
    ("error", "message", {"kind": "ValueError"}),
    ("crash", "message", {"kind": "SIGSEGV"}),
    ("crash", "stack", {"kind": "SIGABRT"}),
    ("survey_response", "comment", {"survey": "nps", "score": 7}),
]


def _tokens(text: str) -> set[str]:
    """Words and numbers of ``text`` as a reader would see them (normalized)."""
    return {t for t in re.split(r"[\W_]+", normalize(text).text) if t}


def leaked(case: Case, stored: str) -> list[str]:
    """Pieces of the value left in ``stored``: words of two or more characters that the
    sentence around the value does not have and that are part of the value."""
    left = _tokens(_PLACEHOLDER.sub(" ", stored)) - _tokens(case.sentence.replace("{}", " "))
    pieces = _tokens(case.plain)
    return sorted(t for t in left if len(t) >= 2 and any(t in p for p in pieces))


def test_leak_check_can_fail() -> None:
    case = Case("email", "de_DE", "jür\u200bgen@müller.de", "jürgen@müller.de",
                "an {} schreiben", "zero_width")
    assert leaked(case, "an [email] schreiben") == []
    assert leaked(case, "an jür\u200b[email] schreiben") == ["jür"]
    assert leaked(case, "an jürgen\uff20müller.de schreiben") == ["de", "jürgen", "müller"]


def test_prefilter_lets_every_disguise_through() -> None:
    # The cheap pre-check must never skip a text that holds personal data.
    assert all(needs_scan(c.text) for c in cases())
    assert not needs_scan("Die Vorschläge sind gut, aber langsam")


def test_corpus_is_broad() -> None:
    corpus = cases()
    assert len(LOCALES) >= 8
    assert {c.locale for c in corpus} == set(LOCALES)
    per_class: dict[str, set[str]] = defaultdict(set)
    for c in corpus:
        per_class[c.kind].add(c.form)
    assert set(per_class) >= {"email", "phone", "credit_card", "iban", "national_id", "ip"}
    assert {"percent", "fullwidth_at", "zero_width", "entity", "escape"} <= per_class["email"]
    assert {"space_0", "space_1", "space_2"} <= per_class["credit_card"] & per_class["iban"]
    assert len(benign()) + len(BENIGN) >= 300


def _events(corpus: list[Case]) -> list[dict[str, Any]]:
    out = []
    for i, case in enumerate(corpus):
        name, field, props = _CARRIERS[i % len(_CARRIERS)]
        ev = event(name, {**props, field: case.text}, consent="detailed")
        ev["context"]["locale"] = case.locale
        out.append(ev)
    return out


async def _send(server: Running, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), 500):
        chunk = events[i : i + 500]
        status, result = await server.post("/v1/batch", body(chunk), headers())
        assert status == 200, result
        assert result["accepted"] == len(chunk), result["rejected"][:3]
    await server.settle()


def _every_table(server: Running) -> dict[str, str]:
    """Each table's rows as JSON text (views hold nothing of their own)."""
    tables = [t for (t,) in server.rows(
        "SELECT name FROM system.tables WHERE database = currentDatabase()"
        " AND engine NOT LIKE '%View'"
    )]
    out = {}
    for t in tables:
        # An aggregate state is read as its value (argMin's: the string it keeps).
        cols = [f"finalizeAggregation(`{c}`)" if ty.startswith("AggregateFunction") else f"`{c}`"
                for c, ty in server.rows(
                    "SELECT name, type FROM system.columns WHERE database = currentDatabase()"
                    f" AND table = '{t}' ORDER BY position")]
        out[t] = json.dumps(server.rows(f"SELECT {', '.join(cols)} FROM `{t}`"), default=str,
                            ensure_ascii=False)
    return out


def _report(table: dict[str, list[int]], title: str) -> list[str]:
    lines = [title]
    for key, (hit, n) in sorted(table.items()):
        lines.append(f"  {key:<20}{f'{hit}/{n}':>10}{hit / n:>9.4f}")
    return lines


async def test_faker_corpus_leaves_nothing_in_any_table(
    server: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = cases()
    events = _events(corpus)
    benign_texts = benign() + BENIGN
    benign_events = []
    for i, text in enumerate(benign_texts):
        name, field, props = _CARRIERS[i % len(_CARRIERS)]
        ev = event(name, {**props, field: text}, consent="detailed")
        ev["context"]["locale"] = list(LOCALES)[i % len(LOCALES)]
        benign_events.append(ev)
    await _send(server, events + benign_events)

    stored: dict[str, str] = {}
    for eid, props in server.rows("SELECT toString(event_id), props FROM events"):
        stored[eid] = props
    per_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_form: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses = []
    for case, ev in zip(corpus, events, strict=True):
        name, field, _ = next(c for c in _CARRIERS if c[0] == ev["event"]
                              and c[1] in ev["props"])
        text = json.loads(stored[ev["event_id"]])[field]
        bad = leaked(case, text)
        for table in (per_class[case.kind], per_form[case.form]):
            table[1] += 1
            table[0] += not bad
        if bad:
            misses.append((case.kind, case.locale, case.form, case.text, text))

    # Beyond events: no table holds a piece of any value that events do not (the
    # rejected_events reasons, aggregates, the audit log).
    # (schema_migrations holds the collector's own file names, 0017_scale_out.sql: no event data)
    others = "\n".join(v for t, v in _every_table(server).items()
                       if t not in ("events", "schema_migrations"))
    other_tokens = _tokens(others)
    for case in corpus:
        pieces = {p for p in _tokens(case.plain) if len(p) >= 4}
        assert not pieces & other_tokens, (case, pieces & other_tokens)

    changed = []
    for text, ev in zip(benign_texts, benign_events, strict=True):
        field = next(c[1] for c in _CARRIERS if c[0] == ev["event"] and c[1] in ev["props"])
        if json.loads(stored[ev["event_id"]])[field] != text:
            changed.append(text)

    lines = ["", f"Faker corpus over HTTP: {len(corpus)} values in {len(LOCALES)} locales"]
    lines += _report(per_class, "recall per class")
    lines += _report(per_form, "recall per form")
    lines.append(f"false positives: {len(changed)}/{len(benign_texts)} benign strings changed")
    with capsys.disabled():
        print("\n".join(lines))
    for kind, (hit, n) in per_class.items():
        assert hit / n >= 0.995, (kind, misses[:5])
    assert len(changed) / len(benign_texts) <= 0.01, changed
