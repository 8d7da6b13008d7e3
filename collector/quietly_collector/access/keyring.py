"""Keys as a process holds them: SHA-256 digests, compared in constant time.

A memory dump or a timing probe does not reveal which key matched, or any key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field


def _digest(value: str) -> bytes:
    # surrogateescape: a header's bytes that are not UTF-8 reach here as lone
    # surrogates; they hash (and match nothing) instead of raising.
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


@dataclass
class KeyRing:
    """Maps a presented bearer token to a project, in time independent of the match."""

    _write: list[tuple[bytes, str]] = field(default_factory=list)
    _read: list[tuple[bytes, str]] = field(default_factory=list)
    _admin: list[bytes] = field(default_factory=list)
    # From the settings; a keys file (keyfile.py) is laid over these.
    _base_write: list[tuple[bytes, str]] = field(default_factory=list)
    _base_read: list[tuple[bytes, str]] = field(default_factory=list)
    _base_admin: list[bytes] = field(default_factory=list)

    def set_write_keys(self, keys: dict[str, str]) -> None:
        self._base_write = [(_digest(k), project) for project, k in keys.items()]
        self._write = list(self._base_write)

    def set_read_keys(self, keys: dict[str, str]) -> None:
        self._base_read = [(_digest(k), project) for project, k in keys.items()]
        self._read = list(self._base_read)

    def set_admin_tokens(self, tokens: list[str]) -> None:
        self._base_admin = [_digest(t) for t in tokens if t]
        self._admin = list(self._base_admin)

    def apply_file(self, write: list[tuple[str, str]], admin: list[str],
                   read: list[tuple[str, str]] | None = None) -> None:
        """Keys of a keys file: its projects replace the settings' keys of the same name
        (write and read keys each), its admin tokens (when it has any) replace the
        settings' token."""
        # Each list is replaced in one assignment: requests see the old or the new keys.
        self._write = _overlay(self._base_write, write)
        self._read = _overlay(self._base_read, read or [])
        self._admin = [_digest(t) for t in admin] if admin else list(self._base_admin)

    def snapshot(self) -> tuple[dict[str, frozenset[bytes]], frozenset[bytes]]:
        """Digests by project, and admin digests: to tell what a reload changed."""
        by_project: dict[str, set[bytes]] = {}
        for digest, project in self._write:
            by_project.setdefault(project, set()).add(digest)
        return {p: frozenset(d) for p, d in by_project.items()}, frozenset(self._admin)

    def project_for(self, token: str) -> str | None:
        """The project whose write key this is."""
        return _match(self._write, token)

    def project_for_read(self, token: str) -> str | None:
        """The project whose read key this is."""
        return _match(self._read, token)

    def read_snapshot(self) -> dict[str, frozenset[bytes]]:
        by_project: dict[str, set[bytes]] = {}
        for digest, project in self._read:
            by_project.setdefault(project, set()).add(digest)
        return {p: frozenset(d) for p, d in by_project.items()}

    def is_admin(self, token: str) -> bool:
        digest = _digest(token)
        ok = False
        for stored in self._admin:
            if hmac.compare_digest(stored, digest):
                ok = True
        return ok


def _overlay(base: list[tuple[bytes, str]], keys: list[tuple[str, str]]
             ) -> list[tuple[bytes, str]]:
    projects = {p for p, _ in keys}
    return [(d, p) for d, p in base if p not in projects] + [(_digest(k), p) for p, k in keys]


def _match(keys: list[tuple[bytes, str]], token: str) -> str | None:
    digest = _digest(token)
    found: str | None = None
    for stored, project in keys:
        # No early exit: every key is compared, whichever matches.
        if hmac.compare_digest(stored, digest):
            found = project
    return found


