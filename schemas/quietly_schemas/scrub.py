"""Remove personal data from free text, replacing each finding by a typed placeholder.

The collector runs it on every free-text field before anything is stored; the
SDK ships the same module (``quietly.scrub``), so client-side scrubbing applies
identical rules.

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

from quietly_schemas.checksums import IBAN_LENGTHS, iban_ok, is_card

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

# PEM private keys and armoured PGP private key blocks; a block cut off before its
# END line is removed up to the end of the text.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r".*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
# user, user:password, or :password (redis://:pw@host) before the host. The scheme
# is bounded so that long dotted runs are not rescanned from every position.
_URL_CREDENTIALS = re.compile(
    r"(?i)\b([a-z][a-z0-9+.\-]{0,31}://)(?!\[credentials\]@)"
    r"(?:[^\s/@:]+(?::[^\s/@]*)?|:[^\s/@]+)@"
)
# Starts only where a base64url run starts, so a long run is scanned once.
_JWT = re.compile(
    r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"
)
_BEARER = re.compile(r"(?i)\b(bearer|token|basic)(\s+)([A-Za-z0-9._~+/=\-]{8,})")
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
# ``name = value`` where the name ends in a secret-ish word (DB_PASSWORD, PGPASSWORD,
# aws_secret_access_key, X-Api-Key, refresh_token, client_secret): the word is not
# anchored at the start of the name, only its end is. A quoted value is taken up to
# its closing quote, so passphrases with spaces go whole. A value that already is a
# placeholder (an API key found above) is left alone.
_PH = r"(?!\[[a-z_]+\])"
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)("
    r"(?:api[_\-]?key|access[_\-]?key|private[_\-]?key|secret(?:[_\-]?(?:access[_\-]?)?key)?"
    r"|token|passwd|password|pwd)"
    r"[\"']?\s*[=:]\s*)"
    r"(?:(\")" + _PH + r"[^\"\r\n]+|(')" + _PH + r"[^'\r\n]+|" + _PH + r"[^\s\"',;&]+)"
)
# The local part may hold "=", but "email=jane@example.com" keeps its "email=".
# The first lookahead (an "@" within 64 characters, the RFC 5321 limit for the
# local part) keeps the scan linear: without it every position of a long run of
# local-part characters would be rescanned to the run's end.
_EMAIL = re.compile(
    r"(?i)\b(?=\w)(?=[^\s@]{1,64}@)(?![a-z][a-z0-9_\-]*=)"
    r"[a-z0-9!#$%&'*+/=?^_`{|}~\-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~\-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?\.)+[a-z]{2,}\b"
)
# Home directories. Shared profile folders (/Users/Shared, C:\Users\Public) are not
# users. Windows profile names may hold spaces (C:\Users\John Smith\): up to three
# words are taken when a path separator follows them.
_HOME_POSIX = re.compile(r"(/(?:home|Users)/)(?!\[user\])(?!Shared(?:/|$))[^/\s\"':]+")
_HOME_WINDOWS = re.compile(
    r"(?i)(\b[a-z]:[\\/]+(?:Users|Documents and Settings)[\\/]+)(?!\[user\])"
    r"(?!(?:Public|Default|Default User|All Users)(?:[\\/]|$))"
    r"(?:[^\\/\s\"':]+(?: [^\\/\s\"':]+){0,2}(?=[\\/])|[^\\/\s\"':]+)"
)
# "https://docs.example.com/home/x" is a web page, not a home directory: a path
# inside a URL with a host is kept (file: URLs are local, so they are scrubbed).
_TOKEN_SEP = re.compile(r"[\s\"'<>()\[\]{},;]")
_WEB_URL = re.compile(r"(?i)\b(?!file:)[a-z][a-z0-9+.\-]*://[^/]")
_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
# A whole run of digit groups with at least 13 digits: a card may sit among other
# numbers ("paid 4111 1111 1111 1111 2 times"), so _card looks inside the run. Not
# after a country code: "+44 20 7946 0958 12" is a phone number (found below).
_CARD = re.compile(
    _B + r"(?<!\+\d[ .\-])(?<!\+\d\d[ .\-])(?<!\+\d\d\d[ .\-])"
    r"(?=(?:\d[ \-]?){12}\d)\d+(?:[ \-]\d+)*" + _E
)
_DIGIT_GROUP = re.compile(r"\d+")
_SSN = re.compile(_B + r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}" + _E)
# Exactly six groups: longer colon-hex runs are certificate fingerprints.
_MAC = re.compile(
    r"(?i)(?<![0-9a-f][:\-])\b[0-9a-f]{2}(?:([:\-])[0-9a-f]{2})(?:\1[0-9a-f]{2}){4}\b"
    r"(?!\1[0-9a-f])"
)
_IPV4 = re.compile(_B + r"(?<!v)(?:\d{1,3}\.){3}\d{1,3}" + r"(?![\w\-]|\.\d)")
# Includes IPv4-mapped/embedded forms (::ffff:192.0.2.1); must not stop inside one.
_IPV6 = re.compile(
    r"(?i)(?<![\w:.])(?:[0-9a-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]{0,4})"
    r"(?:%\w+)?(?![\w:]|\.\w)"
)
_PHONE = re.compile(
    _B
    + r"(?:"
    + r"\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){1,4}"
    + r"|\(\d{3}\)[ .\-]?\d{3}[ .\-]\d{4}"
    + r"|(?:1[ .\-])?\d{3}[.\-]\d{3}[.\-]\d{4}"
    + r"|0\d{2,4}[ \-]\d{3,4}[ \-]?\d{3,4}"
    + r")"
    + _E
)
def _card(m: re.Match[str]) -> str | None:
    # A card is whole groups of the run, printed as cards are: every group but the
    # last of 4 or more digits (4-4-4-4, 4-6-5, 4-4-4-1, or one compact group). The
    # same rule for the whole run and for a part of it keeps scrubbing idempotent:
    # what is left beside a card was already searched.
    run = m.group(0)
    groups = [(g.start(), g.end()) for g in _DIGIT_GROUP.finditer(run)]
    out, kept, i = [], 0, 0
    while i < len(groups):
        found = None
        digits = ""
        for j in range(i, len(groups)):
            digits += run[groups[j][0] : groups[j][1]]
            if len(digits) > 19:
                break
            if is_card(digits):
                found = j  # keep looking: the longest card starting here wins
            if groups[j][1] - groups[j][0] < 4:
                break
        if found is None:
            i += 1
            continue
        out += [run[kept : groups[i][0]], "[credit_card]"]
        kept = groups[found][1]
        i = found + 1
    if not out:
        return None
    return "".join(out) + run[kept:]


def _iban(m: re.Match[str]) -> str | None:
    raw = m.group(0)
    length = IBAN_LENGTHS.get(raw[:2])
    if length is None:
        # A country missing from the table: the checksum alone decides.
        return "[iban]" if iban_ok(raw.replace(" ", "")) else None
    # The pattern may have taken a following upper-case word for a last group
    # ("BE68 5390 0754 7034 BIC ..."): the IBAN is the country's length in
    # characters, and must end where a group ends.
    end = seen = 0
    while seen < length and end < len(raw):
        if raw[end] != " ":
            seen += 1
        end += 1
    if seen < length or (end < len(raw) and raw[end] != " "):
        return None
    return "[iban]" + raw[end:] if iban_ok(raw[:end].replace(" ", "")) else None


def _ipv4(m: re.Match[str]) -> str | None:
    try:
        ipaddress.IPv4Address(m.group(0))
    except ValueError:
        return None
    return "[ip]"


def _token(m: re.Match[str]) -> str | None:
    # "token validation failed", "basic authentication": a word, not a credential.
    # Tokens have a digit or an upper-case letter after the first character.
    value = m.group(3)
    if any(c.isdigit() for c in value) or any(c.isupper() for c in value[1:]):
        return f"{m.group(1)}{m.group(2)}[token]"
    return None


def _secret(m: re.Match[str]) -> str:
    return f"{m.group(1)}{m.group(2) or m.group(3) or ''}[secret]"


def _home_posix(m: re.Match[str]) -> str | None:
    before = m.string[max(0, m.start() - 512) : m.start()]
    if "://" in before and _WEB_URL.search(_TOKEN_SEP.split(before)[-1]):
        return None
    return f"{m.group(1)}[user]"


def _ipv6(m: re.Match[str]) -> str | None:
    text = m.group(0).split("%", 1)[0]
    full = 6 if "." in text else 7
    if text.count(":") < 2 or ("::" not in text and text.count(":") != full):
        return None
    # "::" alone and "::n" other than ::1 are Python slices (items[::-1], v[::2]).
    if text.startswith("::") and text.count(":") == 2 and text != "::1":
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
    ("token", _BEARER, _token),
    ("secret", _SECRET_ASSIGNMENT, _secret),
    ("email", _EMAIL, "[email]"),
    ("user", _HOME_POSIX, _home_posix),
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

            def sub(
                m: re.Match[str],
                fn: Callable[[re.Match[str]], str | None] = fn,
                kind: str = kind,
            ) -> str:
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
