"""Remove personal data from free text, replacing each finding by a typed placeholder.

The collector runs it on every free-text field before anything is stored; the
SDK ships the same module (``quietly.scrub``), so client-side scrubbing applies
the same rules (with the light phone check unless ``quietly-schemas[phone]`` is
installed: ``FULL_PHONE_DETECTOR``).

Design: detectors (rules.py, identifiers.py, phones.py) run in a fixed order, most
specific first, on two readings of the text: as it is, and normalized (normalize.py:
percent-encoding, entities and escapes decoded, invisible characters removed, NFKC).
A finding of either reading replaces the original characters it came from, so the
stored text is the original with the findings replaced, never the normalized form.
Placeholders are ``[name]``, which no detector matches, so scrubbing is idempotent.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from importlib.util import find_spec

from quietly_schemas import identifiers, rules
from quietly_schemas.normalize import normalize
from quietly_schemas.phones_light import find_light
from quietly_schemas.textmap import Mapped, render

# The collector's extra (quietly-schemas[phone]); the SDK runs without it. Imported
# on first use, so that importing the SDK costs no more than before.
FULL_PHONE_DETECTOR = find_spec("phonenumbers") is not None

SCRUB_TYPES: tuple[str, ...] = (
    "private_key",
    "credentials",
    "jwt",
    "token",
    "api_key",
    "secret",
    "email",
    "user",
    "iban",
    "credit_card",
    "national_id",
    "ssn",
    "mac",
    "ip",
    "phone",
)

Span = tuple[int, int]
Finder = Callable[[str, str | None], list[Span]]


def _iban(text: str, region: str | None) -> list[Span]:
    return [s for m in identifiers.IBAN.finditer(text) for s in identifiers.iban(m)]


def _cards(text: str, region: str | None) -> list[Span]:
    return [s for m in identifiers.CARD_RUN.finditer(text) for s in identifiers.cards(m)]


def _ssn(text: str, region: str | None) -> list[Span]:
    return [m.span() for m in identifiers.SSN.finditer(text)]


def _phones(text: str, region: str | None) -> list[Span]:
    if not FULL_PHONE_DETECTOR:
        return find_light(text, region)
    from quietly_schemas.phones import find

    return find(text, region)


# (class, finder), in the order they run: each sees the placeholders of those before.
RULES: tuple[tuple[str, Finder], ...] = (
    ("private_key", rules.private_key),
    ("credentials", rules.credentials),
    ("jwt", rules.jwt),
    ("api_key", rules.api_key),
    ("token", rules.token),
    ("secret", rules.secret),
    ("email", rules.email),
    ("user", rules.user),
    ("iban", _iban),
    ("credit_card", _cards),
    ("national_id", identifiers.national_ids),
    ("ssn", _ssn),
    ("mac", rules.mac),
    ("ip", rules.ip),
    ("phone", _phones),
)

# Cheap pre-check: most strings hold none of these characters, and skipping
# the whole rule set for them keeps scrubbing off the profile. "%", "&" and "\" may
# hide an "@" or digits that normalization reveals; text beyond ASCII is checked in
# its NFKC form (fullwidth digits and at signs are digits and at signs).
_NEEDS_SCAN = re.compile(
    r"[0-9@:/\\=\-%&]|eyJ|(?i:bearer|token|basic|key|secret|passw|pwd)"
)


def needs_scan(text: str) -> bool:
    if _NEEDS_SCAN.search(text):
        return True
    if text.isascii():
        return False
    return _NEEDS_SCAN.search(unicodedata.normalize("NFKC", text)) is not None


_REGION = re.compile(r"[-_]([A-Za-z]{2})(?![A-Za-z])")


def region_of(locale: str | None) -> str | None:
    """The country of a locale (``en_GB``, ``pt-BR``, ``de_DE.UTF-8``), or None."""
    if not locale:
        return None
    m = _REGION.search(locale)
    return m.group(1).upper() if m else None


def _detect(view: Mapped, region: str | None) -> list[tuple[int, int, str]]:
    for kind, finder in RULES:
        spans = finder(view.text, region)
        if spans:
            placeholder = f"[{kind}]"
            view = view.rewrite(((s, e, placeholder) for s, e in spans), label=kind)
    return view.findings()


def scrub_counted(text: str, locale: str | None = None) -> tuple[str, Counter[str]]:
    """Scrub ``text``; also return how many findings of each type were replaced.

    ``locale`` is the event's (``context.locale``): its country is the first
    numbering plan tried for phone numbers, and makes a digit-only national id of
    that country enough on its own.
    """
    counts: Counter[str] = Counter()
    if not needs_scan(text):
        return text, counts
    region = region_of(locale)
    findings = _detect(Mapped(text), region)
    view = normalize(text)
    if view.text != text:
        findings += _detect(view, region)
    if not findings:
        return text, counts
    out, kinds = render(text, findings)
    counts.update(kinds)
    return out, counts


def scrub(text: str, locale: str | None = None) -> str:
    """Scrub ``text`` of personal data (see ``SCRUB_TYPES``)."""
    return scrub_counted(text, locale)[0]
