"""The view of a text that the detectors read: disguises taken off.

Real text carries personal data in forms that plain patterns miss: ``bob%40example.com``
in a URL, ``&#64;`` in HTML, ``\\u0040`` in JSON, a fullwidth at sign (U+FF20), a zero-width
space inside an address, card digits grouped with no-break spaces. ``normalize``
decodes percent-encoding (and ``+`` in query strings), HTML entities and ``\\u``/``\\x``
escapes, removes invisible format characters, turns every kind of space into a space
and applies Unicode NFKC, repeating while a round changes something (``%2540``,
a fullwidth ``%``), at most three rounds.

The result is a ``Mapped`` text: the scrubber finds spans in the view and replaces
the original characters they came from, so stored text keeps its own form
(docs/privacy.md, "Normalization").
"""

from __future__ import annotations

import html
import re
import unicodedata
from urllib.parse import unquote

from quietly_schemas.textmap import Mapped

# Cf (format) characters, variation selectors and the combining grapheme joiner:
# invisible, and nothing a reader sees between two letters. tests/schemas/test_normalize.py
# checks the class against unicodedata's Cf category.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufe00-\ufe0f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f\U000e0100-\U000e01ef]+"
)
# Zs (space separators) and the line/paragraph separators, other than U+0020.
_SPACES = re.compile("[\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")
_PERCENT = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
# key=value pairs of a query string or form body: a "+" in them is a space.
_QUERY_PAIR = re.compile(r"(?<=[?&;])[\w.\-\[\]%]+=[^\s&#;\"'<>]*\+[^\s&#;\"'<>]*")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?")
_ESCAPE = re.compile(
    r"\\+(?:u\{([0-9a-fA-F]{1,6})\}|u([dD][89abAB][0-9a-fA-F]{2})\\+u([dD][c-fC-F][0-9a-fA-F]{2})"
    r"|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|x([0-9a-fA-F]{2}))"
)
# What a round can act on: without any of these (and only ASCII) the text is its
# own view.
_ROUNDS = 3

Edit = tuple[int, int, str]


def _plus(text: str) -> list[Edit]:
    return [(m.start(), m.end(), m.group().replace("+", " ")) for m in _QUERY_PAIR.finditer(text)]


# The user-info of a URL (scheme://user:p%40ss@host): decoding it would make a new
# "@" there, and the host an e-mail domain. The credentials rule removes it whole.
_USERINFO = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]{0,31}://[^\s/?#@]*@")


def _percent(text: str) -> list[Edit]:
    out = []
    skip = [m.span() for m in _USERINFO.finditer(text)] if "://" in text else []
    for m in _PERCENT.finditer(text):
        if any(s <= m.start() < e for s, e in skip):
            continue
        decoded = unquote(m.group(), errors="replace")
        if decoded != m.group():
            out.append((m.start(), m.end(), decoded))
    return out


def _entities(text: str) -> list[Edit]:
    out = []
    for m in _ENTITY.finditer(text):
        decoded = html.unescape(m.group())
        if decoded != m.group():
            out.append((m.start(), m.end(), decoded))
    return out


def _escape_char(m: re.Match[str]) -> str | None:
    brace, high, low, u4, u8, x2 = m.groups()
    if high is not None:
        code = 0x10000 + ((int(high, 16) - 0xD800) << 10) + int(low, 16) - 0xDC00
    else:
        code = int(brace or u4 or u8 or x2, 16)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF or code < 0x20:
        return None
    return chr(code)


def _escapes(text: str) -> list[Edit]:
    out = []
    for m in _ESCAPE.finditer(text):
        char = _escape_char(m)
        if char is not None:
            out.append((m.start(), m.end(), char))
    return out


def _invisible(text: str) -> list[Edit]:
    return [(m.start(), m.end(), "") for m in _INVISIBLE.finditer(text)]


def _spaces(text: str) -> list[Edit]:
    return [(m.start(), m.end(), " ") for m in _SPACES.finditer(text)]


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _nfkc(text: str) -> list[Edit]:
    # NFKC per character with its combining marks, so each change maps to the few
    # original characters it came from (a whole-string NFKC could not be mapped back).
    if unicodedata.is_normalized("NFKC", text):
        return []
    out = []
    for m in _NON_ASCII.finditer(text):
        start = m.start()
        run = m.group()
        if start > 0 and unicodedata.combining(run[0]):
            start -= 1  # "e" + U+0301: the base letter is ASCII
        unit = start
        for i in range(m.start() + 1, m.end() + 1):
            if i < m.end() and unicodedata.combining(text[i]):
                continue
            piece = text[unit:i]
            new = unicodedata.normalize("NFKC", piece)
            if new != piece:
                out.append((unit, i, new))
            unit = i
    return out


_ROUND = (_escapes, _entities, _percent, _invisible, _spaces, _nfkc)


_ASCII_TRIGGER = re.compile(r"[%&\\]")


def needs_normalizing(text: str) -> bool:
    return not text.isascii() or _ASCII_TRIGGER.search(text) is not None


def normalize(text: str) -> Mapped:
    """The detectors' view of ``text`` (see the module doc)."""
    view = Mapped(text)
    if not needs_normalizing(text):
        return view
    view = view.rewrite(_plus(text))  # first round only: a decoded %2B is a "+"
    for _ in range(_ROUNDS):
        changed = False
        for step in _ROUND:
            edits = step(view.text)
            if edits:
                view = view.rewrite(edits)
                changed = True
        if not changed or not needs_normalizing(view.text):
            break
    return view
