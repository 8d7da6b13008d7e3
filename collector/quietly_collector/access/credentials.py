"""Write keys, the admin token and the pseudonymization secret.

Keys are held only as SHA-256 digests and compared with ``hmac.compare_digest``,
so a memory dump or a timing probe does not reveal them. Generated development
credentials are written to the data directory (mode 0600) so that a restart,
and the CLI on the same machine, find them again.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from quietly_collector.settings import Settings

if TYPE_CHECKING:
    from quietly_collector.access.keyfile import KeysWatcher

DEV_KEY_FILE = "dev-write-key"
ADMIN_TOKEN_FILE = "admin-token"
SECRET_FILE = "pseudonym.key"
DEV_PROJECT = "default"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


def _read_or_create(path: Path, make: str) -> tuple[str, bool]:
    """Return the file's content, creating it with ``make`` (mode 0600) if absent."""
    try:
        return path.read_text(encoding="utf-8").strip(), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(make + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return make, True


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


@dataclass
class Credentials:
    keys: KeyRing
    pseudonym_secret: bytes
    # Set when the collector made a development credential, to tell the operator.
    generated_write_key: str | None = None
    generated_write_key_new: bool = False
    generated_admin_token: str | None = None
    generated_admin_token_new: bool = False
    keys_watch: KeysWatcher | None = None


def load_credentials(settings: Settings) -> Credentials:
    data = settings.data_path
    ring = KeyRing()
    cred = Credentials(keys=ring, pseudonym_secret=b"")
    write_keys = dict(settings.write_keys)
    if not write_keys and not settings.keys_file:
        key, new = _read_or_create(data / DEV_KEY_FILE, "qk_dev_" + secrets.token_urlsafe(24))
        write_keys = {DEV_PROJECT: key}
        cred.generated_write_key, cred.generated_write_key_new = key, new
    ring.set_write_keys(write_keys)
    ring.set_read_keys(dict(settings.read_keys))
    admin = settings.admin_token
    if not admin:
        admin, new = _read_or_create(data / ADMIN_TOKEN_FILE, "qa_" + secrets.token_urlsafe(32))
        cred.generated_admin_token, cred.generated_admin_token_new = admin, new
    ring.set_admin_tokens([admin])
    if settings.keys_file:
        from quietly_collector.access.keyfile import KeysWatcher

        cred.keys_watch = KeysWatcher(Path(settings.keys_file), ring)
        cred.keys_watch.reload()  # a bad file stops the start (KeysFileError)
    if settings.pseudonym_secret:
        cred.pseudonym_secret = settings.pseudonym_secret.encode("utf-8")
    else:
        secret, _ = _read_or_create(data / SECRET_FILE, secrets.token_hex(32))
        cred.pseudonym_secret = bytes.fromhex(secret)
    if len(cred.pseudonym_secret) < 16:
        raise ValueError("pseudonym_secret: must be at least 16 bytes")
    return cred


def read_admin_token(settings: Settings) -> str | None:
    """The admin token the CLI should present: configured, or the generated one."""
    if settings.admin_token:
        return settings.admin_token
    if settings.keys_file:
        from quietly_collector.access.keyfile import KeysFileError, read_keys_file

        try:
            admin = read_keys_file(Path(settings.keys_file)).admin
        except KeysFileError:
            admin = []
        if admin:
            return admin[0]
    try:
        return (settings.data_path / ADMIN_TOKEN_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


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
