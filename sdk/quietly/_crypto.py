"""Optional encryption of the spool at rest (``pip install "quietly[encryption]"``).

Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) per event. The key
is the application's to keep, e.g. in the OS keychain; the SDK never writes it
to disk. Events that no longer decrypt (key changed or lost) are dropped and
counted as ``spool_undecryptable``.
"""

from __future__ import annotations

from collections.abc import Callable

Codec = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes | None]]


def fernet_codec(key: str | bytes) -> Codec:
    try:
        from cryptography.fernet import Fernet, InvalidToken
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            'spool encryption needs the cryptography package: pip install "quietly[encryption]"'
        ) from exc
    f = Fernet(key)

    def decrypt(token: bytes) -> bytes | None:
        try:
            return f.decrypt(token)
        except InvalidToken:
            return None

    return f.encrypt, decrypt
