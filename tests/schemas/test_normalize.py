# ruff: noqa: RUF001  (fullwidth letters are what these tests are about)
"""The detectors' normalized view (normalize.py) and its map back to the original
(textmap.py): what is decoded, and that stored text keeps its own form."""

from __future__ import annotations

import subprocess
import sys
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from quietly_schemas import scrub
from quietly_schemas.normalize import _INVISIBLE, _SPACES, normalize
from quietly_schemas.textmap import IDENTITY, Mapped


def test_every_format_character_is_invisible_and_every_space_a_space() -> None:
    missing_cf = [
        hex(c) for c in range(0x110000)
        if unicodedata.category(chr(c)) == "Cf" and not _INVISIBLE.fullmatch(chr(c))
    ]
    assert missing_cf == []
    missing_zs = [
        hex(c) for c in range(0x110000)
        if unicodedata.category(chr(c)) == "Zs" and c != 0x20 and not _SPACES.match(chr(c))
    ]
    assert missing_zs == []


def test_disguises_are_taken_off() -> None:
    cases = {
        "bob%40example.com": "bob@example.com",
        "bob%2540example.com": "bob@example.com",  # encoded twice
        "jane&#64;x.io &#x40; &commat; &amp;#64;": "jane@x.io @ @ @",
        "a\\u0040b \\x40 \\u{1F600} \\ud83d\\ude00": "a@b @ \U0001f600 \U0001f600",
        "ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ": "jane@example.com",
        "jan\u200be\u2060@ex\u00adample.com": "jane@example.com",
        "4111\u00a01111\u202f1111\u20091111": "4111 1111 1111 1111",
        "e\u0301": "\u00e9",  # combining accent after an ASCII letter
        "%EF%BC%A0": "@",  # a percent-encoded fullwidth at sign
    }
    for text, view in cases.items():
        assert normalize(text).text == view, text


def test_plus_is_a_space_in_query_strings_only() -> None:
    assert normalize("/s?q=call+me+on+0471938265&x=1").text == "/s?q=call me on 0471938265&x=1"
    assert normalize("+44 20 7946 0958").text == "+44 20 7946 0958"
    assert normalize("1.2.3-beta+exp.sha").text == "1.2.3-beta+exp.sha"


def test_url_user_info_is_not_decoded_into_a_second_at() -> None:
    # Its "@" would make the host an e-mail domain: the credentials rule takes it whole.
    text = "ftp://anonymous:guest%40example.com@ftp.example.org/pub"
    assert normalize(text).text == text
    assert scrub(text) == "ftp://[credentials]@ftp.example.org/pub"


def test_stored_text_is_the_original_with_findings_replaced() -> None:
    # Only the finding changes: the encoded space and the fullwidth text around stay.
    assert (scrub("GET /a%20b?email=bob%40example.com&lang=de")
            == "GET /a%20b?email=[email]&lang=de")
    assert scrub("ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ の件") == "[email] の件"
    assert scrub("zw\u200bjane.doe@example.com!") == "[email]!"
    assert scrub("card 4111\u00a01111\u00a01111\u00a01111.") == "card [credit_card]."
    # What a plain reading finds is kept even where decoding would lose it.
    assert scrub(r"C:\Users\xabier\Desktop") == r"C:\Users\[user]\Desktop"


_DISGUISED = st.lists(
    st.sampled_from(["a", "7", " ", "@", "%40", "%2540", "&#64;", "&amp;", "\\u0040",
                     "\u200b", "\u00a0", "＠", "ｊ", "e\u0301", "ﬁ", "½", "?q=a+b", "&x="]),
    max_size=30,
).map("".join)


def _tiles(view: Mapped) -> None:
    # The segments tile both texts in order, and unchanged ones agree.
    at = oat = 0
    for seg in view.segs:
        assert (seg.start, seg.ostart) == (at, oat)
        if seg.kind == IDENTITY:
            assert view.text[seg.start : seg.end] == view.original[seg.ostart : seg.oend]
        at, oat = seg.end, seg.oend
    assert (at, oat) == (len(view.text), len(view.original))


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.one_of(_DISGUISED, st.text(max_size=60)))
def test_the_view_maps_back_to_the_original(text: str) -> None:
    view = normalize(text)
    _tiles(view)
    if view.text:
        # A placeholder over any span of the view covers whole original characters.
        mid = len(view.text) // 2
        marked = view.rewrite([(mid, len(view.text), "[x]")], label="x")
        _tiles(marked)
        (start, end, _), = marked.findings()
        # It reaches the end of the original, but for what the view removed there.
        assert 0 <= start < end and normalize(text[end:]).text == ""


def test_the_sdk_imports_the_scrubber_without_the_phone_library() -> None:
    # The SDK does not install quietly-schemas[phone]: the light check runs instead.
    code = (
        "import sys; sys.modules['phonenumbers'] = None\n"
        "import quietly_schemas  # noqa: F401\n"
        "s = sys.modules['quietly_schemas.scrub']\n"
        "assert not s.FULL_PHONE_DETECTOR\n"
        "assert s.scrub('call +44 20 7946 0958') == 'call [phone]'\n"
        "assert 'phonenumbers' not in {m for m in sys.modules if sys.modules[m]}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
