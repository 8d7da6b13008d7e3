"""Read a request body within limits, decompressing gzip without trusting its size.

aiohttp's own decompression is switched off (``auto_decompress=False``) so the
limits apply to what is actually inflated: a gzip bomb stops at
``max_decompressed`` bytes of output, never further.
"""

from __future__ import annotations

import codecs
import zlib

from aiohttp import web

# Output per inflate call. Inflating into one growing buffer in steps keeps the peak
# near the output's size; one big call would hold its output twice while joining it.
_STEP = 1 << 20


class BodyError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_body(
    request: web.Request, max_bytes: int, max_decompressed: int
) -> bytes | bytearray:
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise BodyError(413, f"body is {declared} bytes, over the {max_bytes}-byte limit")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    inflater: Inflater | None = None
    if encoding not in ("", "identity"):
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise BodyError(415, f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
        inflater = Inflater(max_decompressed, gzip=encoding != "deflate")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > max_bytes:
            raise BodyError(413, f"body is over the {max_bytes}-byte limit")
        # Inflated as it arrives: a bomb is refused before the rest of it is read.
        if inflater is not None:
            inflater.feed(chunk)
        else:
            chunks.append(chunk)
    if inflater is not None:
        return inflater.finish()
    raw = b"".join(chunks)
    if len(raw) > max_decompressed:
        raise BodyError(413, f"body is over the {max_decompressed}-byte limit")
    return raw


class Inflater:
    """Decompress at most ``limit`` bytes; refuse (413) rather than inflate further."""

    def __init__(self, limit: int, gzip: bool = True) -> None:
        self.limit = limit
        self.kind = "gzip" if gzip else "deflate"
        self.d = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)
        self.out = bytearray()

    def feed(self, data: bytes) -> None:
        d, out = self.d, self.out
        while True:
            # Never more than one byte past the limit: that byte is the proof of "over".
            step = min(_STEP, self.limit - len(out) + 1)
            try:
                piece = d.decompress(data, step)
            except zlib.error as exc:
                raise BodyError(400, f"body is not valid {self.kind}: {exc}") from None
            out += piece
            if len(out) > self.limit:
                raise BodyError(413, f"decompressed body is over the {self.limit}-byte limit")
            data = d.unconsumed_tail
            # A full step may leave output inside zlib even with no input left: ask again.
            if not data and len(piece) < step:
                break
        if d.unused_data:
            raise BodyError(400, "unexpected bytes after the compressed body")

    def finish(self) -> bytearray:
        if not self.d.eof:
            raise BodyError(400, "compressed body is truncated")
        return self.out


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
