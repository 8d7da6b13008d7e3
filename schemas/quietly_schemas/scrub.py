"""Remove personal data from free text, replacing each finding by a typed placeholder.

The same function runs in the SDK (before anything leaves the machine) and in
the collector (before anything is stored), so both apply identical rules.

Design: detectors run in a fixed order, most specific first (a private key
before the e-mail inside it, a URL's credentials before its host). Checksummed
classes (card numbers, IBANs) are confirmed by their checksum so that look-alike
ids survive. Placeholders are ``[name]``, which no detector matches, so
scrubbing is idempotent.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable

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
    "ssn",
    "mac",
    "ip",
    "phone",
)

# Boundaries: a finding must not be glued to other word characters, so that
# parts of UUIDs, hashes and file names are never taken for numbers.
_B = r"(?<![\w.+\-])"
_E = r"(?![\w+\-]|\.\w)"

_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
_URL_CREDENTIALS = re.compile(
    r"(?i)\b([a-z][a-z0-9+.\-]*://)(?!\[credentials\]@)[^\s/@:]+(?::[^\s/@]*)?@"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*")
_BEARER = re.compile(r"(?i)\b(bearer|token|basic)(\s+)[A-Za-z0-9._~+/=\-]{8,}")
_API_KEY = re.compile(
    r"\b(?:"
    r"(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}"
    r"|github_pat_[A-Za-z0-9_]{30,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|sk-[A-Za-z0-9_\-]{20,}"
    r"|npm_[A-Za-z0-9]{36}"
    r")\b"
)
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b((?:api[_\-]?key|access[_\-]?token|auth[_\-]?token|token|secret|password|passwd|pwd)"
    r"[\"']?\s*[=:]\s*[\"']?)(?!\[)[^\s\"',;&]+"
)
_EMAIL = re.compile(
    r"(?i)\b[a-z0-9!#$%&'*+/=?^_`{|}~\-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~\-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+[a-z]{2,}\b"
)
_HOME_POSIX = re.compile(r"(/(?:home|Users)/)(?!\[user\])[^/\s\"':]+")
_HOME_WINDOWS = re.compile(
    r"(?i)(\b[a-z]:[\\/]+(?:Users|Documents and Settings)[\\/]+)(?!\[user\])[^\\/\s\"':]+"
)
_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(_B + r"(?:\d[ \-]?){12,18}\d" + _E)
_SSN = re.compile(_B + r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}" + _E)
_MAC = re.compile(r"(?i)\b[0-9a-f]{2}(?:([:\-])[0-9a-f]{2})(?:\1[0-9a-f]{2}){4}\b")
_IPV4 = re.compile(_B + r"(?<!v)(?:\d{1,3}\.){3}\d{1,3}" + r"(?![\w\-]|\.\d)")
_IPV6 = re.compile(r"(?i)(?<![\w:.])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?:%\w+)?(?![\w:])")
_PHONE = re.compile(
    _B
    + r"(?:"
    + r"\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){1,4}"
    + r"|\(\d{3}\)[ .\-]?\d{3}[ .\-]\d{4}"
    + r"|\d{3}[.\-]\d{3}[.\-]\d{4}"
    + r"|0\d{2,4}[ \-]\d{3,4}[ \-]?\d{3,4}"
    + r")"
    + _E
)
# Card number prefixes (IIN ranges) of the major networks; a Luhn-valid number
# outside them is more likely an id than a card.
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|6(?:011|5|4[4-9]|22)|35|62)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(m: re.Match[str]) -> str | None:
    digits = re.sub(r"[ \-]", "", m.group(0))
    if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and _luhn_ok(digits):
        return "[credit_card]"
    return None


def _iban(m: re.Match[str]) -> str | None:
    s = m.group(0).replace(" ", "")
    if not 15 <= len(s) <= 34:
        return None
    rearranged = s[4:] + s[:4]
    num = "".join(str(int(c, 36)) for c in rearranged)
    return "[iban]" if int(num) % 97 == 1 else None


def _ipv4(m: re.Match[str]) -> str | None:
    try:
        ipaddress.IPv4Address(m.group(0))
    except ValueError:
        return None
    return "[ip]"


def _ipv6(m: re.Match[str]) -> str | None:
    text = m.group(0).split("%", 1)[0]
    if text.count(":") < 2 or ("::" not in text and text.count(":") != 7):
        return None
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return "[ip]"


Replacement = str | Callable[[re.Match[str]], str | None]

# (type, pattern, replacement). A callable returning None keeps the match.
_RULES: tuple[tuple[str, re.Pattern[str], Replacement], ...] = (
    ("private_key", _PRIVATE_KEY, "[private_key]"),
    ("credentials", _URL_CREDENTIALS, r"\1[credentials]@"),
    ("jwt", _JWT, "[jwt]"),
    ("api_key", _API_KEY, "[api_key]"),
    ("token", _BEARER, r"\1\2[token]"),
    ("secret", _SECRET_ASSIGNMENT, r"\1[secret]"),
    ("email", _EMAIL, "[email]"),
    ("user", _HOME_POSIX, r"\1[user]"),
    ("user", _HOME_WINDOWS, r"\1[user]"),
    ("iban", _IBAN, _iban),
    ("credit_card", _CARD, _card),
    ("ssn", _SSN, "[ssn]"),
    ("mac", _MAC, "[mac]"),
    ("ip", _IPV6, _ipv6),
    ("ip", _IPV4, _ipv4),
    ("phone", _PHONE, "[phone]"),
)

# Cheap pre-checks: most strings hold none of these characters, and skipping
# the whole rule set for them keeps scrubbing off the profile.
_NEEDS_SCAN = re.compile(r"[0-9@:/\\=\-]|eyJ|(?i:bearer|token|basic|key|secret|passw|pwd)")


def scrub_counted(text: str) -> tuple[str, Counter[str]]:
    """Scrub ``text``; also return how many findings of each type were replaced."""
    counts: Counter[str] = Counter()
    if not _NEEDS_SCAN.search(text):
        return text, counts
    for kind, pattern, repl in _RULES:
        if callable(repl):
            fn = repl

            def sub(m: re.Match[str], fn: Callable[[re.Match[str]], str | None] = fn) -> str:
                out = fn(m)
                if out is None:
                    return m.group(0)
                counts[kind] += 1
                return out

            text = pattern.sub(sub, text)
        else:
            text, n = pattern.subn(repl, text)
            if n:
                counts[kind] += n
    return text, counts


def scrub(text: str) -> str:
    """Scrub ``text`` of personal data (see ``SCRUB_TYPES``)."""
    return scrub_counted(text)[0]
