"""Properties of the PII scrubber over generated text (hypothesis).

test_scrub.py measures the scrubber on a fixed corpus; here the same guarantees are
checked on text nobody wrote by hand:

- idempotent: ``scrub(scrub(t)) == scrub(t)``, and the second pass finds nothing;
- it only replaces: the output is the input with some non-empty spans replaced by
  placeholders. Precisely, splitting the output at its placeholders gives pieces that
  occur in the input in that order, without overlapping; and the output is at most
  ``len(p) - 1`` characters longer than the input for each placeholder ``p`` in it;
- for personal data of every class, drawn at random and put between random text,
  no piece of the value (3 or more letters or digits that the surrounding text does
  not itself contain) is left.

Examples are bounded and derandomized, so CI runs the same cases every time.
"""

from __future__ import annotations

import re
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quietly_schemas import SCRUB_TYPES, scrub, scrub_counted
from tests.pii_strategies import PII_STRATEGIES, Drawn

PLACEHOLDER = re.compile(r"\[(?:" + "|".join(SCRUB_TYPES) + r")\]")

def fixed(examples: int) -> settings:
    return settings(
        max_examples=examples, derandomize=True, database=None, deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )

# Random text leans towards what detectors look at: digits, separators, "@", ":".
_ALPHABET = string.ascii_letters + string.digits * 3 + " .,:;-_/\\@#=+()[]'\"\n\téß€中"
# Words and short numbers: "paid <card> 2 times" is where digit runs meet.
noise = st.lists(
    st.one_of(st.text(_ALPHABET, max_size=10), st.integers(0, 9999).map(str)), max_size=5
).map(" ".join)
# Anything at all, including surrogates-free unicode and control characters.
anything = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)


def pieces_in_order(out: str, text: str) -> bool:
    """Whether ``out`` is ``text`` with spans replaced by placeholders (see module doc)."""
    at = 0
    for piece in PLACEHOLDER.split(out):
        found = text.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def leaked(value: str, context: str, out: str) -> list[str]:
    """Pieces of ``value`` still in ``out`` that the surrounding text does not hold."""
    rest = PLACEHOLDER.sub(" ", out)
    pieces = {p for p in re.split(r"[^A-Za-z0-9]+", value) if len(p) >= 3}
    return sorted(p for p in pieces if p in rest and p not in context)


def test_pieces_in_order_can_fail() -> None:
    assert pieces_in_order("mail [email] now", "mail bob@example.com now")
    assert not pieces_in_order("now [email] mail", "mail bob@example.com now")
    assert not pieces_in_order("mail [email] nowx", "mail bob@example.com now")


@fixed(300)
@given(anything)
def test_scrub_is_idempotent_and_only_replaces_on_any_text(text: str) -> None:
    out, _ = scrub_counted(text)
    assert scrub_counted(out) == (out, {})
    assert pieces_in_order(out, text)
    assert len(out) - len(text) <= sum(len(p) - 1 for p in PLACEHOLDER.findall(out))


@st.composite
def embedded(draw: st.DrawFn, kind: str) -> tuple[str, str, str]:
    """(value, context, text): the value in its template between random text, each side
    separated by whitespace (a finding glued to letters is another word: see privacy.md).
    ``context`` is the text without the value."""
    value, template = draw(PII_STRATEGIES[kind])
    before, after = draw(noise), draw(noise)
    left, right = draw(st.sampled_from([" ", "\n", "\t"])), draw(st.sampled_from([" ", "\n"]))
    around = f"{before}{left}{template}{right}{after}"
    return value, around.replace("{}", " "), around.replace("{}", value)


def _check_removed(drawn: tuple[str, str, str]) -> None:
    value, context, text = drawn
    out = scrub(text)
    assert not leaked(value, context, out), (text, out)
    assert value not in PLACEHOLDER.sub(" ", out) or value in context, (text, out)
    assert scrub(out) == out
    assert pieces_in_order(out, text)
    assert len(out) - len(text) <= sum(len(p) - 1 for p in PLACEHOLDER.findall(out))


@fixed(80)
@given(st.data())
def test_every_class_of_personal_data_is_removed_from_random_text(data: st.DataObject) -> None:
    for kind in SCRUB_TYPES:
        _check_removed(data.draw(embedded(kind), label=kind))


@fixed(150)
@given(st.lists(st.sampled_from(SCRUB_TYPES), min_size=2, max_size=5), st.data())
def test_several_findings_in_one_text_are_all_removed(
    kinds: list[str], data: st.DataObject
) -> None:
    drawn: list[Drawn] = [data.draw(PII_STRATEGIES[k], label=k) for k in kinds]
    filler = [data.draw(noise) for _ in range(len(drawn) + 1)]
    parts = [filler[0]]
    for (value, template), after in zip(drawn, filler[1:], strict=True):
        parts += [" ", template.replace("{}", value), " ", after]
    text = "".join(parts)
    out = scrub(text)
    for n, (value, template) in enumerate(drawn):
        context = "".join([*parts[: 2 + 4 * n], template.replace("{}", " "), *parts[3 + 4 * n :]])
        assert not leaked(value, context, out), (value, text, out)
    assert scrub(out) == out
    assert pieces_in_order(out, text)
