"""The PII scrubber against a corpus of personal data and of look-alike benign values.

Run with ``pytest tests/schemas/test_scrub.py -s`` (or look at the summary printed by
``test_corpus_summary``) for recall per detector class and the false-positive rate.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable

import pytest

from quietly_schemas import SCRUB_TYPES, scrub, scrub_counted
from quietly_schemas.scrub import needs_scan
from tests.pii_corpus import BENIGN, PII

_PLACEHOLDER = re.compile(r"\[(?:" + "|".join(SCRUB_TYPES) + r")\]")


def _fill(template: str, value: str) -> str:
    # str.format would trip over the braces of JSON templates.
    return template.replace("{}", value)


def _leaked(value: str, template: str, out: str) -> list[str]:
    """Pieces of ``value`` (3+ letters or digits) still in ``out`` that the template lacks.

    Catches partial removal: "C:\\Users\\[user] Smith" or "[ip].0.2.128" no longer hold
    the whole value, but a piece of it survived.
    """
    rest = _PLACEHOLDER.sub(" ", out)
    pieces = [p for p in re.split(r"[^A-Za-z0-9]+", value) if len(p) >= 3 and p not in template]
    return [p for p in pieces if p in rest]


def _pii_id(kind: str, index: int, value: str) -> str:
    short = value if len(value) <= 24 and "\n" not in value else value[:20] + "..."
    return f"{kind}-{index}:{short}"


def _pii_params() -> list[object]:
    seen: dict[str, int] = defaultdict(int)
    params: list[object] = []
    for kind, value, template in PII:
        seen[kind] += 1
        params.append(pytest.param(kind, value, template, id=_pii_id(kind, seen[kind], value)))
    return params


def _benign_id(value: str) -> str:
    return value if len(value) <= 40 else value[:37] + "..."


PII_PARAMS = _pii_params()
BENIGN_PARAMS = [pytest.param(v, id=_benign_id(v)) for v in BENIGN]
ALL_TEXTS = [_fill(t, v) for _, v, t in PII] + BENIGN


# ---- the corpus itself ---------------------------------------------------------------


def test_corpus_covers_every_class() -> None:
    per_class: dict[str, int] = defaultdict(int)
    for kind, value, template in PII:
        assert kind in SCRUB_TYPES, kind
        assert template.count("{}") == 1, template
        assert value and value not in template, (value, template)
        per_class[kind] += 1
    assert set(per_class) == set(SCRUB_TYPES)
    assert min(per_class.values()) >= 8, dict(per_class)
    assert len(BENIGN) >= 80
    assert len(set(BENIGN)) == len(BENIGN)


# ---- personal data is removed --------------------------------------------------------


@pytest.mark.parametrize(("kind", "value", "template"), PII_PARAMS)
def test_pii_is_removed(kind: str, value: str, template: str) -> None:
    out, counts = scrub_counted(_fill(template, value))
    assert value not in out
    assert not _leaked(value, template, out)
    assert f"[{kind}]" in out
    assert counts[kind] >= 1


@pytest.mark.parametrize(("kind", "value", "template"), PII_PARAMS)
def test_surrounding_text_is_preserved(kind: str, value: str, template: str) -> None:
    # Exactly the value is replaced: what came before and after is kept verbatim.
    assert scrub(_fill(template, value)) == _fill(template, f"[{kind}]")


def test_surrounding_text_example() -> None:
    assert scrub("contact jane.doe@example.com for access") == "contact [email] for access"
    assert (
        scrub("user jane@example.com from 203.0.113.9 paid with 4111 1111 1111 1111")
        == "user [email] from [ip] paid with [credit_card]"
    )


@pytest.mark.parametrize(("kind", "value", "template"), PII_PARAMS)
def test_prefilter_lets_pii_through(kind: str, value: str, template: str) -> None:
    # The cheap pre-check must never skip a string that holds personal data.
    assert needs_scan(_fill(template, value))


# ---- look-alikes are kept --------------------------------------------------------------


@pytest.mark.parametrize("text", BENIGN_PARAMS)
def test_benign_is_unchanged(text: str) -> None:
    out, counts = scrub_counted(text)
    assert out == text
    assert not counts


# ---- properties over the whole corpus ------------------------------------------------


@pytest.mark.parametrize("text", ALL_TEXTS)
def test_idempotent(text: str) -> None:
    once = scrub(text)
    assert scrub(once) == once
    assert not scrub_counted(once)[1]


@pytest.mark.parametrize("text", ALL_TEXTS)
def test_never_adds_text_except_placeholders(text: str) -> None:
    out = scrub(text)
    assert len(_PLACEHOLDER.sub("", out)) <= len(text)


def test_text_without_findings_is_returned_as_is() -> None:
    for text in ("", "plain words only", "ünïcödé ✓ 🎉", "a" * 10_000):
        assert scrub(text) == text


# Long runs that once made single patterns rescan from every position (quadratic):
# "1-1-1-..." took seconds in the e-mail pattern. Each must stay far below the bound.
ADVERSARIAL = {
    "dash-digits": "1-" * 5000,
    "dotted-run": "a." * 5000 + "@",
    "scheme-like": "a." * 5000 + "://",
    "jwt-like": "eyJ-" * 3000,
    "slashes": "a/" * 5000,
    "home-dirs": "/home/" * 2000,
    "ipv6-like": "1:" * 5000 + ".1.1.1",
    "spaced-digits": "12 34 " * 2000,
}


@pytest.mark.parametrize("text", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
def test_long_adversarial_input_is_fast(text: str) -> None:
    started = time.perf_counter()
    scrub(text)
    assert time.perf_counter() - started < 1.0


# ---- summary: recall per class and false-positive rate -------------------------------


def _summary() -> tuple[dict[str, tuple[int, int]], int, int, list[str]]:
    # Recall: the value is fully removed (no piece of it left). False positive: a
    # benign string that comes out changed in any way.
    per_class: dict[str, list[int]] = {k: [0, 0] for k in SCRUB_TYPES}
    for kind, value, template in PII:
        per_class[kind][1] += 1
        out = scrub(_fill(template, value))
        if value not in out and not _leaked(value, template, out):
            per_class[kind][0] += 1
    changed = [b for b in BENIGN if scrub(b) != b]
    table = {k: (hit, total) for k, (hit, total) in per_class.items()}
    return table, len(changed), len(BENIGN), changed


def test_corpus_summary(
    capsys: pytest.CaptureFixture[str], record_property: Callable[[str, object], None]
) -> None:
    table, changed, benign_total, changed_texts = _summary()
    lines = ["", "PII scrubber corpus results", f"{'class':<14}{'removed':>10}{'recall':>9}"]
    hits = total = 0
    for kind, (hit, n) in table.items():
        hits += hit
        total += n
        lines.append(f"{kind:<14}{f'{hit}/{n}':>10}{hit / n:>9.3f}")
        record_property(f"recall_{kind}", f"{hit / n:.3f}")
    lines.append(f"{'all classes':<14}{f'{hits}/{total}':>10}{hits / total:>9.3f}")
    fp_rate = changed / benign_total
    lines.append(
        f"false positives: {changed}/{benign_total} benign strings changed ({fp_rate:.3f})"
    )
    record_property("recall_all", f"{hits / total:.3f}")
    record_property("false_positive_rate", f"{fp_rate:.3f}")
    # Printed with capturing disabled so the table shows in a plain ``pytest -q`` run too.
    with capsys.disabled():
        print("\n".join(lines))
    for kind, (hit, n) in table.items():
        assert hit == n, f"recall for {kind}: {hit}/{n}"
    assert changed == 0, changed_texts
