"""Whether a body is UTF-8, checked without decoding it into text."""

from __future__ import annotations

import codecs

_UTF8_CHUNK = 1 << 16


def utf8_error(body: bytes | bytearray) -> str | None:
    """Why ``body`` is not UTF-8, or None. JSON is UTF-8 (RFC 8259); msgspec checks
    strings only as it decodes them, and skips what it does not decode."""
    if body.isascii():
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(body)
    # In chunks, and the text is dropped: no copy of the body is made.
    for start in range(0, len(body), _UTF8_CHUNK):
        held = len(decoder.getstate()[0])  # the start of a character cut by the last chunk
        try:
            decoder.decode(view[start : start + _UTF8_CHUNK], final=False)
        except UnicodeDecodeError as exc:
            return f"body is not valid UTF-8 (byte {start - held + exc.start})"
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "body is not valid UTF-8 (it ends inside a character)"
    return None
