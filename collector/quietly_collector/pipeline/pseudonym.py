"""The keyed hash that stands for install and session ids in storage."""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymizer:
    """Keyed hash of install and session ids: stable for retention, useless without the key."""

    def __init__(self, secret: bytes, cache_size: int = 200_000) -> None:
        self._key = secret
        self.cache: dict[int, int] = {}
        self.cache_size = cache_size

    def __call__(self, raw_id: int) -> int:
        """Hash a 128-bit id (``uuid.int``); the HMAC input is its 16 big-endian bytes."""
        cached = self.cache.get(raw_id)
        if cached is not None:
            return cached
        mac = hmac.new(self._key, raw_id.to_bytes(16, "big"), hashlib.sha256).digest()
        value = int.from_bytes(mac[:8], "big")
        if len(self.cache) >= self.cache_size:
            self.cache.clear()
        self.cache[raw_id] = value
        return value
