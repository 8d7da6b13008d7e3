"""The light phone check: patterns for the common written forms, no numbering plans.

The SDK runs this unless the application installs ``quietly-schemas[phone]``; the
collector always has the full detector (``phones.py``). It finds international
numbers with ``+``, the usual US forms, national numbers with a trunk ``0`` and
separators, and compact numbers after a context word. Also here: what both share,
the context words and the date shapes that are never numbers.
"""

from __future__ import annotations

import re

# Words that announce a phone number, in the languages of the locales we see most.
# Not "number" and its translations: an order or serial number is not a phone.
# After NFKC; matched case-insensitively, as words, never inside a placeholder
# ("[phone]" itself).
CONTEXT = re.compile(
    r"(?i)(?<![\w\[])(?:"
    r"call(?:ed|ing)?|phone|tel|telephone|mobile|cell|cellphone|fax|sms|whatsapp"
    r"|contact|dial|hotline"
    r"|telefon|telefonnummer|handy|mobil|mobilnummer|rückruf|anrufen|ruf"
    r"|téléphone|tél|portable|appeler|appelez|joindre"
    r"|teléfono|telefono|llamar|llame|móvil|movil|celular|cellulare|chiamare"
    r"|chiama|telefoon|bellen|bel|mobiel|telefone|ligar|ligue|contato|zadzwoń|komórka"
    r"|tlf|puhelin|電話|携帯|тел|телефон"
    r")(?![\w\]])"
)

# Dates and times, which the matcher could read as numbers: 2026-11-23, 23.11.2026,
# 11/23/2026, 2026-11-23 12 (the hour of a timestamp).
_DATE = re.compile(
    r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}(?:[ T]\d{1,2})?|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})$"
)


def dateish(text: str) -> bool:
    return _DATE.match(text.strip()) is not None


_B = r"(?<![\w.+\-])"
_E = r"(?![\w+\-]|\.\w)"
LIGHT_PHONE = re.compile(
    _B
    + r"(?:"
    + r"\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){1,4}"
    + r"|\(\d{3}\)[ .\-]?\d{3}[ .\-]\d{4}"
    + r"|(?:1[ .\-])?\d{3}[.\-]\d{3}[.\-]\d{4}"
    + r"|\(0\d{1,4}\)[ .\-]?\d{3,8}(?:[ .\-]\d{2,4})?"
    + r"|0\d{1,4}(?:[ .\-]\d{2,4}){2,4}"
    + r"|0\d{2,4}[ \-]\d{3,8}"
    + r")"
    + r"(?:\s?(?:x|ext\.?)\s?\d{1,6})?"
    + _E
)
_COMPACT = re.compile(_B + r"\+?\d{8,13}" + _E)


def find_light(text: str, region: str | None = None) -> list[tuple[int, int]]:
    """Spans of phone numbers by pattern alone (``region`` is not used)."""
    spans = [m.span() for m in LIGHT_PHONE.finditer(text) if not dateish(m.group())]
    for m in _COMPACT.finditer(text):
        if any(s < m.end() and m.start() < e for s, e in spans):
            continue
        near = text[max(0, m.start() - 40) : m.end() + 20]
        if CONTEXT.search(near):
            spans.append(m.span())
    return sorted(spans)
