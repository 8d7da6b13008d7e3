"""Hypothesis strategies for personal data, one per scrubber class (as in pii_corpus.py).

Each strategy draws ``(value, template)``, as the corpus holds them: ``value`` is the
personal datum that must be gone after scrubbing, ``template`` is how it appears in
text, with ``{}`` where the value goes (``DB_PASSWORD={}``, ``/home/{}/.config``).
Values stay inside what docs/privacy.md promises to detect; its "Known limits" are
left out on purpose.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import string

import phonenumbers
from hypothesis import strategies as st
from stdnum import numdb
from stdnum.br import cpf
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.iso7064 import mod_11_10
from stdnum.it import codicefiscale

from quietly_schemas.identifiers import iban_length
from quietly_schemas.phones import DEFAULT_REGIONS

Drawn = tuple[str, str]

_COUNTRY_CODES = [a + b for a in string.ascii_uppercase for b in string.ascii_uppercase]

ALNUM = string.ascii_letters + string.digits


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text(string.digits, min_size=n, max_size=n)


def _luhn_complete(partial: str) -> str:
    """``partial`` plus the check digit that makes it Luhn-valid."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:  # doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return partial + str(-total % 10)


# Issuer prefixes and lengths of the networks the scrubber knows.
_CARD_NETWORKS = [
    ("4", (13, 16, 19)), ("51", (16,)), ("55", (16,)), ("2221", (16,)), ("2720", (16,)),
    ("34", (15,)), ("37", (15,)), ("6011", (16, 19)), ("65", (16,)), ("3528", (16,)),
    ("36", (14,)), ("62", (16, 19)),
]


@st.composite
def credit_card(draw: st.DrawFn) -> Drawn:
    prefix, lengths = draw(st.sampled_from(_CARD_NETWORKS))
    length = draw(st.sampled_from(lengths))
    number = _luhn_complete(prefix + draw(_digits(length - len(prefix) - 1)))
    sep = draw(st.sampled_from(["", " ", "-"]))
    value = sep.join(number[i : i + 4] for i in range(0, len(number), 4)) if sep else number
    return value, "{}"


_BBAN_CHARS = {"n": string.digits, "a": string.ascii_uppercase,
               "c": string.ascii_uppercase + string.digits}


def _bban_structure(country: str) -> list[tuple[int, str]]:
    info = numdb.get("iban").info(country + "00")[0][1]
    return [(int(n), kind) for n, kind in re.findall(r"(\d+)!?([nac])", info["bban"])]


# Every country of the SWIFT registry (stdnum's copy), with its BBAN structure.
_IBAN_COUNTRIES = sorted(c for c in _COUNTRY_CODES if iban_length(c) is not None)


@st.composite
def iban(draw: st.DrawFn) -> Drawn:
    country = draw(st.sampled_from(_IBAN_COUNTRIES))
    bban = "".join(
        draw(st.text(_BBAN_CHARS[kind], min_size=n, max_size=n))
        for n, kind in _bban_structure(country)
    )
    as_number = "".join(str(int(c, 36)) for c in bban + country + "00")
    compact = f"{country}{98 - int(as_number) % 97:02d}{bban}"
    grouped = draw(st.booleans())
    value = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4)) if grouped else compact
    return value, "{}"


def _ipv6_ok(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # Known limit: "::" and "::n" other than ::1 are read as Python slices.
    text = str(a)
    return not (text.startswith("::") and text.count(":") == 2 and text != "::1")


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,8}[a-z0-9])?", fullmatch=True)

email = st.builds(
    lambda local, labels, tld: (f"{local}@{'.'.join(labels)}.{tld}", "{}"),
    st.lists(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_%+\-]{0,5}", fullmatch=True), min_size=1,
             max_size=3).map(".".join),
    st.lists(_LABEL, min_size=1, max_size=3),
    st.from_regex(r"[a-z]{2,6}", fullmatch=True),
)

ipv4 = st.ip_addresses(v=4).map(lambda a: (str(a), "{}"))
ipv6 = st.ip_addresses(v=6).filter(_ipv6_ok).map(lambda a: (str(a), "{}"))

ssn = st.builds(
    lambda a, g, s: (f"{a:03d}-{g:02d}-{s:04d}", "{}"),
    st.integers(1, 899).filter(lambda a: a != 666),
    st.integers(1, 99),
    st.integers(1, 9999),
)

mac = st.builds(
    lambda octets, sep, upper: (
        sep.join(f"{o:02X}" if upper else f"{o:02x}" for o in octets), "{}"
    ),
    st.lists(st.integers(0, 255), min_size=6, max_size=6),
    st.sampled_from([":", "-"]),
    st.booleans(),
)

_PHONE_FORMATS = [
    phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    phonenumbers.PhoneNumberFormat.E164,
    phonenumbers.PhoneNumberFormat.NATIONAL,
]
_PHONE_TYPES = [phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE]


@st.composite
def phone(draw: st.DrawFn) -> Drawn:
    """A number of one of the default regions' plans, printed as libphonenumber prints
    it (international, E.164 or national), its last digits drawn at random."""
    region = draw(st.sampled_from(DEFAULT_REGIONS))
    example = phonenumbers.example_number_for_type(region, draw(st.sampled_from(_PHONE_TYPES)))
    assert example is not None
    nsn = str(example.national_number)
    nsn = nsn[:-3] + draw(_digits(3))
    number = phonenumbers.parse(f"+{example.country_code}{nsn}")
    value = phonenumbers.format_number(number, draw(st.sampled_from(_PHONE_FORMATS)))
    if value.isdigit():
        # Compact national digits are a number only as valid or with a context word.
        return value, "phone {}"
    return value, "{}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_CLAIMS = st.dictionaries(
    st.text(string.ascii_lowercase, min_size=1, max_size=8),
    st.one_of(st.integers(), st.text(ALNUM, max_size=12), st.booleans()),
    max_size=4,
)

jwt = st.builds(
    lambda alg, claims, sig: (
        ".".join([_b64url(json.dumps({"alg": alg}).encode()),
                       _b64url(json.dumps({"sub": "x", **claims}).encode()), _b64url(sig)]),
        "{}",
    ),
    st.sampled_from(["HS256", "RS256", "ES256", "EdDSA"]),
    _CLAIMS,
    st.binary(min_size=16, max_size=64),
)

_API_KEY_SHAPES = [
    ("sk_live_", ALNUM, 24), ("pk_test_", ALNUM, 24), ("ghp_", ALNUM, 36),
    ("github_pat_", ALNUM + "_", 60), ("AKIA", string.ascii_uppercase + string.digits, 16),
    ("xoxb-", ALNUM + "-", 40), ("AIza", ALNUM + "_-", 35), ("glpat-", ALNUM + "_-", 20),
    ("sk-", ALNUM, 40), ("npm_", ALNUM, 36),
]


@st.composite
def api_key(draw: st.DrawFn) -> Drawn:
    prefix, alphabet, n = draw(st.sampled_from(_API_KEY_SHAPES))
    # Ends on a letter or digit: a trailing "-" or "_" is outside the key's \b.
    last = draw(st.sampled_from(alphabet.strip("_-")))
    body = draw(st.text(alphabet, min_size=n - 1, max_size=n - 1)) + last
    value = prefix + body
    return value, "{}"


@st.composite
def token(draw: st.DrawFn) -> Drawn:
    body = draw(st.text(ALNUM + "._~+/=-", min_size=7, max_size=40))
    value = draw(st.sampled_from(string.digits)) + body  # a digit: not a word
    scheme = draw(st.sampled_from(["Bearer", "bearer", "Basic", "token"]))
    return value, f"Authorization: {scheme} {{}}"


_SECRET_NAMES = ["password", "DB_PASSWORD", "passwd", "pwd", "api_key", "X-Api-Key",
                 "client_secret", "aws_secret_access_key", "refresh_token", "private_key"]


@st.composite
def secret(draw: st.DrawFn) -> Drawn:
    name = draw(st.sampled_from(_SECRET_NAMES))
    value = draw(st.text(ALNUM + "!#$%()*+-./<>?@^_~", min_size=1, max_size=30))
    form = draw(st.sampled_from(["{n}={v}", "{n}: {v}", '"{n}": "{v}"', "{n}='{v}'"]))
    return value, form.format(n=name, v="{}")


@st.composite
def credentials(draw: st.DrawFn) -> Drawn:
    user = draw(st.text(ALNUM + "._~-", min_size=1, max_size=12))
    password = draw(st.text(ALNUM + "._~!$*+=%-", max_size=16))
    value = f"{user}:{password}" if password else user
    scheme = draw(st.sampled_from(["https", "postgres", "redis", "amqp", "ftp"]))
    return value, f"{scheme}://{{}}@db.internal:5432/app"


_NOT_USERS = {"shared", "public", "default", "default user", "all users"}


@st.composite
def user(draw: st.DrawFn) -> Drawn:
    name = draw(st.text(ALNUM + "._-", min_size=3, max_size=16)
                .filter(lambda n: n.lower() not in _NOT_USERS))
    form = draw(st.sampled_from(["/home/{}/.config/app.toml", "/Users/{}/Library/x.db",
                                 "C:\\Users\\{}\\AppData\\app.log", "C:/Users/{}/Desktop"]))
    return name, form


@st.composite
def private_key(draw: st.DrawFn) -> Drawn:
    label = draw(st.sampled_from(["RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", ""])) + "PRIVATE KEY"
    body = base64.b64encode(draw(st.binary(min_size=48, max_size=300))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    dashes = "-" * 5
    value = f"{dashes}BEGIN {label}{dashes}\n{lines}\n{dashes}END {label}{dashes}"
    return value, "{}"


_NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
_NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"
_CF_MONTHS = "ABCDEHLMPRST"


def _nino(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(
        [a + b for a in _NINO_FIRST for b in _NINO_SECOND
         if a + b not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}]
    ))
    digits = draw(_digits(6))
    suffix = draw(st.sampled_from("ABCD"))
    if draw(st.booleans()):
        return f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return prefix + digits + suffix


def _idnr(draw: st.DrawFn) -> str:
    ten = draw(st.permutations("0123456789"))[:9]
    ten = [*ten, draw(st.sampled_from(ten))]
    ten = draw(st.permutations(ten))
    if ten[0] == "0":
        ten = [ten[1], ten[0], *ten[2:]]
    number = "".join(ten)
    return number + mod_11_10.calc_check_digit(number)


def _bsn(draw: st.DrawFn) -> str:
    while True:
        head = draw(_digits(8).filter(lambda d: d.strip("0")))
        total = sum((9 - i) * int(d) for i, d in enumerate(head)) % 11
        if total < 10:
            return head + str(total)


@st.composite
def national_id(draw: st.DrawFn) -> Drawn:
    kind = draw(st.sampled_from(["nino", "cf", "dni", "nie", "nir", "cpf", "idnr", "bsn"]))
    if kind == "nino":
        return _nino(draw), "National Insurance number {}"
    if kind == "cf":
        letters = draw(st.text(string.ascii_uppercase, min_size=6, max_size=6))
        day = draw(st.integers(1, 31)) + draw(st.sampled_from([0, 40]))  # +40: female
        body = (letters + draw(_digits(2)) + draw(st.sampled_from(_CF_MONTHS)) + f"{day:02d}"
                + draw(st.sampled_from("ABCDEFGHILMZ")) + draw(_digits(3)))
        return body + codicefiscale.calc_check_digit(body), "codice fiscale {}"
    if kind == "dni":
        number = draw(_digits(8))
        return number + dni.calc_check_digit(number), "DNI {}"
    if kind == "nie":
        number = draw(st.sampled_from("XYZ")) + draw(_digits(7))
        return number + nie.calc_check_digit(number), "NIE {}"
    if kind == "nir":
        number = (draw(st.sampled_from("12")) + draw(_digits(2))
                  + f"{draw(st.integers(1, 12)):02d}" + draw(_digits(8)))
        return number + nir.calc_check_digits(number), "NIR {}"
    if kind == "cpf":
        number = draw(_digits(9)).replace("000000000", "000000001")
        full = number + cpf._calc_check_digits(number)
        if draw(st.booleans()):
            return f"{full[:3]}.{full[3:6]}.{full[6:9]}-{full[9:]}", "{}"
        return full, "CPF {}"
    if kind == "idnr":
        number = _idnr(draw)
        if draw(st.booleans()):
            return f"{number[:2]} {number[2:5]} {number[5:8]} {number[8:]}", "{}"
        return number, "Steuer-ID {}"
    return _bsn(draw), "BSN {}"


PII_STRATEGIES: dict[str, st.SearchStrategy[Drawn]] = {
    "private_key": private_key(),
    "credentials": credentials(),
    "jwt": jwt,
    "token": token(),
    "api_key": api_key(),
    "secret": secret(),
    "email": email,
    "user": user(),
    "iban": iban(),
    "credit_card": credit_card(),
    "national_id": national_id(),
    "ssn": ssn,
    "mac": mac,
    "ip": st.one_of(ipv4, ipv6),
    "phone": phone(),
}
