"""Checksummed and structured identifiers: payment cards, IBANs, national ids.

The checks are python-stdnum's: it implements the official algorithm of each number
(Luhn, ISO 7064 mod 97-10 with the SWIFT registry's BBAN structure per country, the
check digits and letters of each national id) and is maintained against the
registries, which a hand-kept table (our old checksums.py) was not. Patterns here only
find candidates; a number is removed when stdnum says it is valid, so look-alike ids
survive.

Digit-only national ids have weak checks (a BSN's 11-test passes one number in 11):
alone they are taken only in their canonical grouping, or when the event's locale is
the id's country, or with a word naming the id nearby (``BSN``, ``Steuer-ID``, ``CPF``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

Span = tuple[int, int]

# Card numbers by issuer prefix (IIN) and length, of the major networks; a Luhn-valid
# number outside them is more likely an id than a card. stdnum has no issuer table.
_CARD_NETWORKS = re.compile(
    r"^(?:4(?:\d{12}|\d{15}|\d{18})"  # Visa
    r"|(?:5[1-5]|2[2-7])\d{14}"  # Mastercard
    r"|3[47]\d{13}"  # Amex
    r"|(?:6011|65\d\d|64[4-9]\d|622\d)\d{12,15}"  # Discover
    r"|35\d{14,17}|(?:2131|1800)\d{11}"  # JCB
    r"|3(?:0[0-5]|[689]\d)\d{11,16}"  # Diners
    r"|62\d{14,17}"  # UnionPay
    r"|(?:5018|5020|5038|5893|6304|6759|676[1-3]|0604|6390)\d{8,15}"  # Maestro
    r")$"
)
# Numbers that say what they are: a barcode is not a card or a phone.
NOT_PERSONAL = re.compile(r"(?i)\b(?:ean|gtin|upc|isbn|issn|barcode)\W{0,3}$")


def is_card(digits: str) -> bool:
    # stdnum's modules are imported where used: most texts need none of them, and an
    # application importing the SDK does not pay for them at start.
    from stdnum import luhn

    return bool(_CARD_NETWORKS.match(digits)) and luhn.is_valid(digits)


@cache
def iban_length(country: str) -> int | None:
    """The IBAN's length in the SWIFT registry (stdnum's copy), or None."""
    from stdnum import numdb

    info = numdb.get("iban").info(country + "00")[0][1]
    structure = info.get("bban") if info else None
    if not structure:
        return None
    return 4 + sum(int(n) for n in re.findall(r"(\d+)!?[nac]", structure))


def iban_ok(compact: str) -> bool:
    # Mod 97-10 and the registry's BBAN structure. Not the country modules' bank
    # lists: an account at a bank missing from stdnum's copy (BE68 5390 0754 7034,
    # the registry's own Belgian example) is still an account.
    from stdnum import iban as _iban_mod

    return _iban_mod.is_valid(compact, check_country=False)


# A whole run of digit groups with at least 12 digits (Maestro): a card may sit among other
# numbers ("paid 4111 1111 1111 1111 2 times"), so cards() looks inside the run. Not
# after a country code: "+44 20 7946 0958 12" is a phone number.
_B = r"(?<![\w.+\-])"
_E = r"(?![\w+\-]|\.\w)"
CARD_RUN = re.compile(
    _B + r"(?<!\+\d[ .\-])(?<!\+\d\d[ .\-])(?<!\+\d\d\d[ .\-])"
    r"(?=(?:\d[ \-]?){11}\d)\d+(?:[ \-]\d+)*" + _E
)
_DIGIT_GROUP = re.compile(r"\d+")


def cards(m: re.Match[str]) -> list[Span]:
    # A card is whole groups of the run, printed as cards are: every group but the
    # last of 4 or more digits (4-4-4-4, 4-6-5, 4-4-4-1, or one compact group). The
    # same rule for the whole run and for a part of it keeps scrubbing idempotent.
    run, base = m.group(0), m.start()
    if NOT_PERSONAL.search(m.string, max(0, base - 12), base):
        return []
    groups = [(g.start(), g.end()) for g in _DIGIT_GROUP.finditer(run)]
    out: list[Span] = []
    i = 0
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
        out.append((base + groups[i][0], base + groups[found][1]))
        i = found + 1
    return out


IBAN = re.compile(r"(?i)\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")


def iban(m: re.Match[str]) -> list[Span]:
    raw = m.group(0).upper()
    length = iban_length(raw[:2])
    if length is None:
        return []
    # The pattern may have taken a following upper-case word for a last group
    # ("BE68 5390 0754 7034 BIC ..."): the IBAN is the country's length in
    # characters, and must end where a group ends.
    end = seen = 0
    while seen < length and end < len(raw):
        if raw[end] != " ":
            seen += 1
        end += 1
    if seen < length or (end < len(raw) and raw[end] != " "):
        return []
    return [(m.start(), m.start() + end)] if iban_ok(raw[:end].replace(" ", "")) else []


# US social security numbers: the structure only (never-issued areas and groups
# excluded). stdnum's ssn also rejects the published examples (078-05-1120), which
# are still personal-looking data in a log, so it is not used here.
SSN = re.compile(_B + r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}" + _E)

# Words naming a national id, in its own language; a weak (digit-only) id is taken
# when one stands before it.
_ID_CONTEXT = re.compile(
    r"(?i)(?<![\w\[])(?:bsn|burgerservicenummer|sofi(?:nummer)?|steuer[\w\-]*|idnr|tin"
    r"|identifikationsnummer|tax|cpf|nir|insee|sécu\w*|sécurité sociale|ssn|social security"
    r"|national id|id number|personal id)(?![\w\]])"
)


def _context(text: str, start: int) -> bool:
    return _ID_CONTEXT.search(text, max(0, start - 40), start) is not None


_CF_DIGIT = "[0-9LMNPQRSTUV]"
# One pass over the text for every shape (eight patterns cost eight scans): the
# group that matched names the shape, and _checks() the stdnum checks it may pass.
_NATIONAL_ID = re.compile(
    r"(?i)(?<![\w\-.+])(?:"
    # NINO: prefix rules (no D F I Q U V first, no D F I O Q U V second, not BG GB ...)
    r"(?P<nino>(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D])"
    rf"|(?P<cf>[A-Z]{{6}}{_CF_DIGIT}{{2}}[A-EHLMPRST]{_CF_DIGIT}{{2}}[A-Z]{_CF_DIGIT}{{3}}[A-Z])"
    r"|(?P<nie>[XYZ][ \-]?\d{7}[ \-]?[A-Z])"
    r"|(?P<dni>\d{8}[ \-]?[A-Z])"
    r"|(?P<nir>[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2})"
    r"|(?P<cpf>\d{3}\.\d{3}\.\d{3}-\d{2})"
    r"|(?P<idnr>\d{2} \d{3} \d{3} \d{3})"
    r"|(?P<bsn>\d{4}\.\d{2}\.\d{3})"
    r"|(?P<d11>\d{11})"
    r"|(?P<d9>\d{9})"
    r")(?![\w\-]|\.\w)"
)


def _compact(s: str) -> str:
    return re.sub(r"[ .\-]", "", s).upper()


Check = Callable[[str], bool]


@cache
def _checks() -> dict[str, tuple[tuple[Check, str | None], ...]]:
    """Shape: ((stdnum check, country whose locale makes a digit-only form enough), ...)."""
    from stdnum.br import cpf
    from stdnum.de import idnr
    from stdnum.es import dni, nie
    from stdnum.fr import nir
    from stdnum.it import codicefiscale
    from stdnum.nl import bsn

    return {
        "nino": ((lambda s: True, None),),  # no check digit: the prefix rules are the check
        "cf": ((codicefiscale.is_valid, None),),
        "nie": ((nie.is_valid, None),),
        "dni": ((dni.is_valid, None),),
        "nir": ((nir.is_valid, None),),  # 15 digits, a structure and a mod-97 key
        "cpf": ((cpf.is_valid, None),),
        "idnr": ((idnr.is_valid, None),),
        "bsn": ((bsn.is_valid, None),),
        "d11": ((cpf.is_valid, "BR"), (idnr.is_valid, "DE")),
        "d9": ((bsn.is_valid, "NL"),),
    }


def national_ids(text: str, region: str | None) -> list[Span]:
    """Spans of national identifiers in ``text``; ``region`` is the event's country."""
    out: list[Span] = []
    checks = None
    for m in _NATIONAL_ID.finditer(text):
        shape = m.lastgroup
        assert shape is not None
        checks = checks or _checks()
        value = _compact(m.group())
        for valid, weak_country in checks[shape]:
            if not valid(value):
                continue
            if weak_country and region != weak_country and not _context(text, m.start()):
                continue
            out.append(m.span())
            break
    return out
