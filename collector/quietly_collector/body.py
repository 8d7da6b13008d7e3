"""Read a request body within limits, decompressing gzip without trusting its size.

aiohttp's own decompression is switched off (``auto_decompress=False``) so the
limits apply to what is actually inflated: a gzip bomb stops at
``max_decompressed`` bytes of output, never further.
"""

from __future__ import annotations

import zlib

from aiohttp import web


class BodyError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_body(request: web.Request, max_bytes: int, max_decompressed: int) -> bytes:
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise BodyError(413, f"body is {declared} bytes, over the {max_bytes}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > max_bytes:
            raise BodyError(413, f"body is over the {max_bytes}-byte limit")
        chunks.append(chunk)
    raw = b"".join(chunks)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        if len(raw) > max_decompressed:
            raise BodyError(413, f"body is over the {max_decompressed}-byte limit")
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BodyError(415, f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
    return inflate(raw, max_decompressed, gzip=encoding != "deflate")


def inflate(data: bytes, limit: int, gzip: bool = True) -> bytes:
    """Decompress at most ``limit`` bytes; refuse (413) rather than inflate further."""
    d = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BodyError(400, f"body is not valid {'gzip' if gzip else 'deflate'}: {exc}") from None
    if len(out) > limit:
        raise BodyError(413, f"decompressed body is over the {limit}-byte limit")
    if not d.eof:
        raise BodyError(400, "compressed body is truncated")
    if d.unused_data:
        raise BodyError(400, "unexpected bytes after the compressed body")
    return out
