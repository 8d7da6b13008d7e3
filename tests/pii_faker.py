"""A generated corpus for the scrubber: Faker's personal data in ten locales, each value
plain and in the disguises real text carries it in, and look-alikes that must stay.

``cases()`` gives ``Case``s: a class, the locale the event is sent with, the value as
written in the text, the sentence around it (in the locale's language), and the form
(``plain``, ``nbsp``, ``percent``, ...). Everything is seeded: the same corpus every
run. ``benign()`` gives at least 200 look-alike strings (UUIDs, hashes, versions,
dates, EANs, ISBNs, failing-Luhn ids, user agents, file names) beside
``pii_corpus.BENIGN``.

Values Faker has no generator for are made with python-stdnum's check-digit functions
(Steuer-ID) or the official rules (NINO: Faker's en_GB ones all have the reserved
prefix ZZ, which is not a number anyone holds).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import quote

from faker import Faker
from stdnum.iso7064 import mod_11_10

SEED = 21
PER_LOCALE = 6  # values of each class in each locale

# locale: (phone sentence, e-mail sentence, id sentence, a generic one without context)
LOCALES: dict[str, tuple[str, str, str, str]] = {
    "en_US": ("please call me back on {}", "send the invoice to {}", "SSN {} on the form",
              "details: {}"),
    "en_GB": ("ring me on my mobile {} after 5", "reply to {}", "National Insurance {}",
              "see {} above"),
    "de_DE": ("Rückruf bitte unter Tel. {}", "Bitte an {} schreiben", "Steuer-ID {} fehlt",
              "Angaben: {}"),
    "fr_FR": ("appelez-moi au {} demain", "écrire à {} svp", "numéro de sécurité sociale {}",
              "infos : {}"),
    "es_ES": ("llámame al teléfono {}", "mi correo es {}", "NIE {} caducado", "datos: {}"),
    "it_IT": ("chiamare il cellulare {} grazie", "scrivere a {}", "codice fiscale {}",
              "dati: {}"),
    "nl_NL": ("bel me op telefoon {}", "mail naar {}", "BSN {} onbekend", "gegevens: {}"),
    "pt_BR": ("liga no meu celular {}", "meu e-mail é {}", "CPF {} inválido", "dados: {}"),
    "ja_JP": ("電話 {} までご連絡ください", "メール {} まで", "番号 {}", "詳細: {}"),
    "pl_PL": ("zadzwoń pod telefon {}", "napisz na {}", "numer {}", "dane: {}"),
}

ZWSP = "\u200b"
SPACES = ("\u00a0", "\u202f", "\u2009")


@dataclass(frozen=True)
class Case:
    kind: str
    locale: str
    value: str  # as it appears in the text (disguised or not)
    plain: str  # the value itself
    sentence: str  # with {} where the value goes
    form: str

    @property
    def text(self) -> str:
        return self.sentence.replace("{}", self.value)


def _nino(rng: random.Random) -> str:
    first, second = "ABCEGHJKLMNOPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"
    while True:
        prefix = rng.choice(first) + rng.choice(second)
        if prefix not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
            break
    d = f"{rng.randrange(10**6):06d}"
    return f"{prefix} {d[:2]} {d[2:4]} {d[4:]} {rng.choice('ABCD')}"


def _idnr(rng: random.Random) -> str:
    digits = rng.sample("0123456789", 9)
    digits.append(rng.choice(digits))
    rng.shuffle(digits)
    if digits[0] == "0":
        digits[0], digits[1] = digits[1], digits[0]
    number = "".join(digits)
    number += mod_11_10.calc_check_digit(number)
    return f"{number[:2]} {number[2:5]} {number[5:8]} {number[8:]}"


def national_id(fake: Faker, locale: str, rng: random.Random) -> str | None:
    if locale == "en_US":
        return str(fake.ssn())
    if locale == "en_GB":
        return _nino(rng)
    if locale == "de_DE":
        return _idnr(rng)
    if locale in ("fr_FR", "nl_NL", "it_IT"):
        return str(fake.ssn())  # NIR, BSN, codice fiscale
    if locale == "es_ES":
        return str(fake.nie() if rng.random() < 0.5 else fake.nif())
    if locale == "pt_BR":
        return str(fake.cpf())
    return None


def _idn_email(fake: Faker, rng: random.Random) -> str:
    # RFC 6531: letters beyond ASCII in the local part and the domain.
    local = rng.choice(["jürgen", "zoë.lefèvre", "søren", "małgorzata", "josé.núñez", "たろう"])
    domain = rng.choice(["müller.de", "bücher.example", "xn--mller-kva.de", "例え.jp", "café.fr"])
    return f"{local}{rng.randrange(100)}@{domain}"


def _values(fake: Faker, locale: str, rng: random.Random) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for _ in range(PER_LOCALE):
        out += [
            ("email", str(fake.email())),
            ("email", _idn_email(fake, rng)),
            ("phone", str(fake.phone_number())),
            ("credit_card", str(fake.credit_card_number())),
            ("iban", str(fake.iban())),
            ("ip", str(fake.ipv4_public())),
            ("ip", str(fake.ipv6())),
            ("mac", str(fake.mac_address())),
        ]
        nid = national_id(fake, locale, rng)
        if nid is not None:
            out.append(("ssn" if locale == "en_US" else "national_id", nid))
    return out


def _group(value: str) -> str:
    # Cards and IBANs as people print them: groups of four.
    compact = value.replace(" ", "")
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _fullwidth(value: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in value)


def _disguises(kind: str, value: str, rng: random.Random) -> list[tuple[str, str]]:
    """(form, disguised value) for each disguise that fits the class."""
    forms: list[tuple[str, str]] = []
    if kind == "email":
        local, _, domain = value.partition("@")
        forms += [
            ("percent", quote(value, safe="")),
            ("percent_twice", quote(quote(value, safe=""), safe="")),
            ("fullwidth_at", f"{local}\uff20{domain}"),
            ("fullwidth", _fullwidth(value)),
            ("zero_width", f"{local[:3]}{ZWSP}{local[3:]}@{domain}"),
            ("zero_width_domain", f"{local}@{domain[:2]}\u2060{domain[2:]}"),
            ("entity", f"{local}&#64;{domain}"),
            ("entity_named", f"{local}&commat;{domain}"),
            ("escape", f"{local}\\u0040{domain}"),
            ("soft_hyphen", f"{local[:2]}\u00ad{local[2:]}@{domain}"),
            # Adversarial: layered and mixed disguises.
            ("entity_hex", f"{local}&#x40;{domain}"),
            ("entity_twice", f"{local}&amp;#64;{domain}"),
            ("escape_x", f"{local}\\x40{domain}"),
            ("percent_fullwidth", f"{local}%EF%BC%A0{domain}"),
            ("mixed", f"{_fullwidth(local[:2])}{ZWSP}{local[2:]}\uff20{domain}"),
            ("bidi", f"\u202a{local}@{domain}\u202c"),
        ]
    if kind in ("credit_card", "iban", "national_id", "phone", "ssn"):
        grouped = _group(value) if kind in ("credit_card", "iban") else value
        if " " not in grouped and kind in ("credit_card", "iban"):
            grouped = value
        for i, space in enumerate(SPACES):
            if " " in grouped:
                forms.append((f"space_{i}", grouped.replace(" ", space)))
        forms.append(("fullwidth", _fullwidth(grouped)))
        if " " in grouped:
            forms.append(("zero_width", grouped.replace(" ", " " + ZWSP, 1)))
            forms.append(("percent", quote(grouped, safe="")))
    if kind in ("credit_card", "iban"):
        forms.append(("grouped", _group(value)))
    if kind == "phone":
        forms.append(("no_context", value))
    if kind in ("ip", "mac"):
        forms.append(("fullwidth", _fullwidth(value)))
    rng.shuffle(forms)
    return forms


def _sentence(kind: str, locale: str, form: str) -> str:
    phone, mail, ident, generic = LOCALES[locale]
    if form.startswith("percent"):
        key = {"email": "email", "phone": "tel"}.get(kind, "ref")
        return f"GET /account?{key}={{}}&lang={locale[:2]} 404"
    if kind == "phone":
        return generic if form == "no_context" else phone
    if kind == "email":
        return mail
    if kind in ("national_id", "ssn"):
        return ident
    return generic


def cases() -> list[Case]:
    out: list[Case] = []
    for n, locale in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(SEED + n)
        rng = random.Random(SEED * 100 + n)
        for kind, value in _values(fake, locale, rng):
            out.append(Case(kind, locale, value, value, _sentence(kind, locale, "plain"), "plain"))
            for form, disguised in _disguises(kind, value, rng):
                out.append(
                    Case(kind, locale, disguised, value, _sentence(kind, locale, form), form)
                )
    return out


def benign() -> list[str]:
    """Look-alikes that are not personal data, 200 or more, seeded."""
    fake = Faker("en_US")
    fake.seed_instance(SEED)
    rng = random.Random(SEED)
    out: list[str] = []
    for _ in range(20):
        out += [
            f"request {fake.uuid4()} failed",
            f"commit {fake.sha1()}",
            f"sha256 {fake.sha256()[:32]}",
            f"v{rng.randrange(30)}.{rng.randrange(30)}.{rng.randrange(300)}",
            f"built {fake.iso8601()}",
            f"on {fake.date()} at {fake.time()}",
            f"took {rng.randrange(10_000)} ms ({rng.random():.4f} s)",
            f"saved {fake.file_name()}",
            f"EAN {fake.ean13()}",
            f"ISBN {fake.isbn13()}",
            f"order {_failing_luhn(rng)}",
            str(fake.user_agent()),
        ]
    return list(dict.fromkeys(out))


def _failing_luhn(rng: random.Random) -> str:
    from stdnum import luhn

    while True:
        digits = "4" + "".join(str(rng.randrange(10)) for _ in range(15))
        if not luhn.is_valid(digits):
            return digits
