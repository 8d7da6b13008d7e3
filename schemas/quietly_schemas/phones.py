"""Phone numbers in free text, found with libphonenumber (the ``phonenumbers`` package).

Why the library: which digit strings are telephone numbers is a matter of every
country's numbering plan (lengths, trunk prefixes, how numbers are grouped), which
Google's libphonenumber keeps up to date for every region; hand-written patterns
knew a handful of shapes and missed most national ones.

The collector installs it (``quietly-schemas[phone]``, ``phonenumberslite``: the
matcher without the geocoding and carrier data, 5 MB instead of 48); without it,
``find`` falls back to the light patterns of ``phones_light.py`` (what the SDK runs
unless the application installs the extra).

How a number is accepted, for each region in order (the event's locale first, then
``DEFAULT_REGIONS``), on windows of text around runs of seven or more digits:

- *strong*, alone (eight or more significant digits): written internationally
  (``+44 …``, ``0044 …``); valid and written as the region writes it compactly
  (``0471938265`` in Belgium, ``6152094473`` in the US); in the digit groups the region
  prints (``(0141) 597 0362``, ``05 61 72 38 94``, ``1-800-555-0199``); or, in the
  event's own region, in any grouping of two-digit or longer groups (not ``00…``, not
  an SSN's 3-2-4).
- *weak*: any possible number of seven or more digits, when a context word ("call",
  "phone", "tel", "Handy", "téléphone", …) stands within a few words before or after.

Never: dates, runs of four-digit groups (cards, accounts), barcodes, parts of
versions, paths and hashes. The matcher does not split a run of digit groups longer
than a number ("+44 121 234 5651 12 days"); its sub-runs are parsed too, and only
valid or international ones are taken there. The search repeats on what is left
(as a second scrub would see it), so scrubbing stays idempotent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers
from phonenumbers import Leniency, PhoneNumberFormat, PhoneNumberMatcher

from quietly_schemas.identifiers import NOT_PERSONAL
from quietly_schemas.phones_light import CONTEXT, dateish

# The locales we see most, and the numbering plans a national number is most likely
# to come from when the event's locale does not name one.
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "BR")

_RUN = re.compile(r"(?:\+|\(|\b)\d(?:[ \-./()]{0,3}\d){6,}")
_LONGEST_RUN = 64
# Three or more groups of four digits: a card's or an account's printing (found, or
# rejected by their checksums, before phone numbers), not a phone number's.
_FOURS = re.compile(r"\d{4}(?:[ \-]\d{4}){2,}(?:[ \-]\d{1,3})?$")
_WINDOW = 40  # characters around a run that the matcher reads: context and prefixes
_GROUPS = re.compile(r"\d+")
_EXT = re.compile(r"(?i)\s*(?:e?xt\.?n?|x|#|доб|anexo|int)[\s:.]*\d{1,9}#?$")
_INTERNATIONAL = (
    phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_PLUS_SIGN,
    phonenumbers.CountryCodeSource.FROM_NUMBER_WITH_IDD,
)
# "+", or an international call prefix written as one (0044, 01144), not "0 0 3755".
_IDD = re.compile(r"\+|00[1-9]|011[1-9]")
_SUPPORTED = frozenset(phonenumbers.SUPPORTED_REGIONS)


def regions(hint: str | None) -> tuple[str, ...]:
    """The event's region first (``en_GB`` -> GB), then the defaults."""
    if hint and hint in _SUPPORTED and hint not in DEFAULT_REGIONS:
        return (hint, *DEFAULT_REGIONS)
    if hint and hint in DEFAULT_REGIONS:
        return (hint, *(r for r in DEFAULT_REGIONS if r != hint))
    return DEFAULT_REGIONS


def _glued(text: str, start: int, end: int) -> bool:
    # Part of a longer token: a version, a path, a hash, a file name.
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    if before.isalnum() or before in "_./\\:#-" or after.isalnum() or after in "_/\\":
        return True
    return after in ".:-" and end + 1 < len(text) and text[end + 1].isalnum()


def _national_digits(number: phonenumbers.PhoneNumber) -> str:
    # How the region writes the number compactly: trunk prefix and national number.
    formatted = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    return "".join(_GROUPS.findall(_EXT.sub("", formatted)))


def _international(raw: str, region: str) -> bool:
    # The matcher does not keep how the country code was given: parse again.
    if not _IDD.match(raw):
        return False
    try:
        number = phonenumbers.parse(raw, region, keep_raw_input=True)
    except phonenumbers.NumberParseException:
        return False
    return number.country_code_source in _INTERNATIONAL


def _strong(raw: str, number: phonenumbers.PhoneNumber, region: str, hinted: bool) -> bool:
    if _international(raw, region):
        return True
    body = _EXT.sub("", raw)
    digits = "".join(_GROUPS.findall(body))
    national = _national_digits(number)
    groups = _GROUPS.findall(body)
    if len(groups) > 2 and groups[0] == phonenumbers.ndd_prefix_for_region(region, True):
        groups = groups[1:]  # the trunk prefix on its own: 1-800-555-0199
    if len(groups) < 2:
        # Compact: valid, and as the region writes it (with its trunk prefix, if any).
        return digits == national and phonenumbers.is_valid_number(number)
    # Grouped: as the region groups it (a number of another plan in an SSN's or a
    # date's shape is not), or, in the event's own region, in groups of two or more
    # digits (three groups, or a last one of three): a fictional or unassigned number
    # of the plan is still one.
    printed = _GROUPS.findall(
        _EXT.sub("", phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL))
    )
    if groups == printed:
        return True
    if not hinted or min(map(len, groups)) < 2 or (len(groups) < 3 and len(groups[-1]) < 3):
        return False
    # Not "00" (an international prefix, or nothing) nor an SSN's 3-2-4 shape.
    return not body.lstrip("(").startswith("00") and list(map(len, groups)) != [3, 2, 4]


def _accept(
    window: str, start: int, end: int, number: phonenumbers.PhoneNumber, region: str,
    hinted: bool,
) -> bool:
    raw = window[start:end]
    if _glued(window, start, end) or dateish(raw):
        return False
    if NOT_PERSONAL.search(window, max(0, start - 12), start):
        return False
    significant = len(str(number.national_number)) + (number.number_of_leading_zeros or 0)
    if significant < 7:
        return False
    # Seven digits (a US local number, 555-1234) only with a context word.
    if significant > 7 and _strong(raw, number, region, hinted):
        return True
    near = window[max(0, start - _WINDOW) : end + 20]
    return CONTEXT.search(near) is not None


_CUT = re.compile(r"[ \-./]+")


def _sub_runs(run: re.Match[str]) -> list[tuple[int, int]]:
    """Consecutive digit groups of a run, two to six of them with 7 to 15 digits,
    longest first; at most ``_MAX_SUB`` of them (a long table of numbers is not worth
    parsing every way)."""
    groups = [(m.start(), m.end()) for m in _DIGITS_OR_PLUS.finditer(run.group())]
    if len(groups) > 12:
        return []
    base = run.start()
    out = []
    for size in range(min(6, len(groups)), 1, -1):
        for i in range(len(groups) - size + 1):
            start, end = groups[i][0], groups[i + size - 1][1]
            digits = sum(e - s for s, e in groups[i : i + size])
            if 7 <= digits <= 16:
                out.append((base + start, base + end))
    return out[:_MAX_SUB]


_DIGITS_OR_PLUS = re.compile(r"\+?\(?\d+\)?")
_MAX_SUB = 40


def _trimmed(
    window: str, run: re.Match[str], order: tuple[str, ...], hint: str | None
) -> list[tuple[int, int]]:
    """Numbers inside a run of digit groups longer than any number ("paid 2 times
    on +44 121 234 5651 12 days ago"), which the matcher does not split."""
    found: list[tuple[int, int]] = []
    for start, end in _sub_runs(run):
        if _overlaps(found, start, end):
            continue
        for r in order:
            try:
                number = phonenumbers.parse(window[start:end], r)
            except phonenumbers.NumberParseException:
                continue
            # Part of a longer run: only a valid number (per the plan) or one written
            # internationally, not one that merely has the region's grouping.
            if (
                phonenumbers.is_valid_number(number) or _IDD.match(window, start)
            ) and _accept(window, start, end, number, r, r == hint):
                found.append((start, end))
                break
    return found


def _windows(text: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for m in _RUN.finditer(text):
        # A run longer than any written number is a table of numbers: reading it
        # every way would cost much and find nothing one could tell from the rest.
        if dateish(m.group()) or m.end() - m.start() > _LONGEST_RUN or _FOURS.match(m.group()):
            continue
        start, end = max(0, m.start() - _WINDOW), min(len(text), m.end() + _WINDOW)
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _find_in(window: str, order: tuple[str, ...], hint: str | None) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for r in order:
        for match in PhoneNumberMatcher(window, r, Leniency.POSSIBLE):
            if _overlaps(spans, match.start, match.end):
                continue
            if _accept(window, match.start, match.end, match.number, r, r == hint):
                spans.append((match.start, match.end))
        if _covered(window, spans):
            return spans
    for run in _RUN.finditer(window):
        if not dateish(run.group()) and not _overlaps(spans, run.start(), run.end()):
            spans += _trimmed(window, run, order, hint)
    return spans


def find(text: str, region: str | None = None) -> list[tuple[int, int]]:
    """Spans of phone numbers in ``text``; ``region`` is the event's (ISO 3166)."""
    found: list[tuple[int, int]] = []
    order = regions(region)
    for wstart, wend in _windows(text):
        window = text[wstart:wend]
        # Again on what is left, as a second scrub would see it (numbers replaced by
        # a placeholder), until nothing new is found: scrubbing stays idempotent.
        for _ in range(3):
            spans = _find_in(window, order, region)
            if not spans:
                break
            found += [(wstart + s, wstart + e) for s, e in spans]
            for s, e in spans:
                window = window[:s] + "]" * (e - s) + window[e:]
    return sorted(set(found))


def _overlaps(spans: Iterable[tuple[int, int]], start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in spans)


def _covered(window: str, spans: list[tuple[int, int]]) -> bool:
    # Every run of seven digits in the window is inside a number found: other regions
    # have nothing left to find.
    for m in _RUN.finditer(window):
        if not dateish(m.group()) and not _overlaps(spans, m.start(), m.end()):
            return False
    return True
