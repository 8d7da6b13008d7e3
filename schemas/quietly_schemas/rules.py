"""The scrubber's pattern detectors, each giving the spans to replace.

Rules run in ``scrub.RULES`` order, most specific first (a private key before the
e-mail inside it, a URL's credentials before its host). Each finder takes the text
(the original, or its normalized view: normalize.py) and the event's region, and
returns ``(start, end)`` spans; only the span is replaced, so ``DB_PASSWORD=`` and
``Authorization: Bearer`` stay.
"""

from __future__ import annotations

import ipaddress
import re

Span = tuple[int, int]

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
# RFC 6531: the local part and the domain may hold any letter (\w is Unicode:
# jürgen@müller.de), and a domain may be in punycode (xn--mller-kva.de). The local
# part may hold "=", but "email=jane@example.com" keeps its "email=". The lookahead
# for an "@" within 64 characters (the RFC 5321 limit for the local part) keeps the
# scan linear: without it every position of a long run of local-part characters
# would be rescanned to the run's end.
# "?" and "&" are left out of the local part (RFC 5322 allows them; addresses do not
# use them): in a URL they start the query, "/a b?email=bob@x.io".
_LOCAL = r"[\w!#$%'*+/=^`{|}~\-]"
_LABEL = r"[^\W_](?:[\w\-]*[^\W_])?"
_EMAIL = re.compile(
    r"(?<![\w.+\-])(?=\w)(?=[^\s@]{1,64}@)(?![^\W\d_][\w\-]*=)"
    rf"{_LOCAL}+(?:\.{_LOCAL}+)*@(?:{_LABEL}\.)+(?:[^\W\d_]{{2,}}|xn--[a-z0-9\-]+)(?![\w\-])"
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
# Exactly six groups: longer colon-hex runs are certificate fingerprints.
_MAC = re.compile(
    r"(?i)(?<![0-9a-f][:\-])\b[0-9a-f]{2}(?:([:\-])[0-9a-f]{2})(?:\1[0-9a-f]{2}){4}\b"
    r"(?!\1[0-9a-f])"
)
# Not after "v" or "rv:" (Firefox's user agent): versions.
_IPV4 = re.compile(_B + r"(?<!v)(?<!rv:)(?:\d{1,3}\.){3}\d{1,3}" + r"(?![\w\-]|\.\d)")
# Includes IPv4-mapped/embedded forms (::ffff:192.0.2.1); must not stop inside one.
_IPV6 = re.compile(
    r"(?i)(?<![\w:.])(?:[0-9a-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]{0,4})"
    r"(?:%\w+)?(?![\w:]|\.\w)"
)


def private_key(text: str, region: str | None) -> list[Span]:
    return [m.span() for m in _PRIVATE_KEY.finditer(text)]


def credentials(text: str, region: str | None) -> list[Span]:
    return [(m.end(1), m.end() - 1) for m in _URL_CREDENTIALS.finditer(text)]


def jwt(text: str, region: str | None) -> list[Span]:
    return [m.span() for m in _JWT.finditer(text)]


def api_key(text: str, region: str | None) -> list[Span]:
    return [m.span() for m in _API_KEY.finditer(text)]


def token(text: str, region: str | None) -> list[Span]:
    # "token validation failed", "basic authentication": a word, not a credential.
    # Tokens have a digit or an upper-case letter after the first character.
    out = []
    for m in _BEARER.finditer(text):
        value = m.group(3)
        if any(c.isdigit() for c in value) or any(c.isupper() for c in value[1:]):
            out.append(m.span(3))
    return out


def secret(text: str, region: str | None) -> list[Span]:
    return [(max(m.end(1), m.end(2), m.end(3)), m.end()) for m in _SECRET_ASSIGNMENT.finditer(text)]


def email(text: str, region: str | None) -> list[Span]:
    return [m.span() for m in _EMAIL.finditer(text)]


def user(text: str, region: str | None) -> list[Span]:
    out = []
    for m in _HOME_POSIX.finditer(text):
        before = text[max(0, m.start() - 512) : m.start()]
        if "://" in before and _WEB_URL.search(_TOKEN_SEP.split(before)[-1]):
            continue
        out.append((m.end(1), m.end()))
    out += [(m.end(1), m.end()) for m in _HOME_WINDOWS.finditer(text)]
    return sorted(out)


def mac(text: str, region: str | None) -> list[Span]:
    return [m.span() for m in _MAC.finditer(text)]


def _ipv6_ok(text: str) -> bool:
    text = text.split("%", 1)[0]
    full = 6 if "." in text else 7
    if text.count(":") < 2 or ("::" not in text and text.count(":") != full):
        return False
    # "::" alone and "::n" other than ::1 are Python slices (items[::-1], v[::2]).
    if text.startswith("::") and text.count(":") == 2 and text != "::1":
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _ipv4_ok(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def ip(text: str, region: str | None) -> list[Span]:
    out = [m.span() for m in _IPV6.finditer(text) if _ipv6_ok(m.group())]
    out += [
        m.span()
        for m in _IPV4.finditer(text)
        if _ipv4_ok(m.group()) and not any(s < m.end() and m.start() < e for s, e in out)
    ]
    return sorted(out)
