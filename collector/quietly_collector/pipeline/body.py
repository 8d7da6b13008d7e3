"""Read a request body within limits, decompressing gzip without trusting its size.

aiohttp's own decompression is switched off (``auto_decompress=False``) so the
limits apply to what is actually inflated: a gzip bomb stops at
``max_decompressed`` bytes of output, never further.
"""

from __future__ import annotations

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
