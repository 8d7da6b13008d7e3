"""Write keys, read keys, the admin token and the pseudonymization secret: where they
come from (settings, keys file, generated). Held as digests (keyring.py). Generated development
credentials are written to the data directory (mode 0600) so that a restart,
and the CLI on the same machine, find them again.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from quietly_collector.access.keyring import KeyRing
from quietly_collector.settings import Settings

if TYPE_CHECKING:
    from quietly_collector.access.keyfile import KeysWatcher

DEV_KEY_FILE = "dev-write-key"
ADMIN_TOKEN_FILE = "admin-token"
SECRET_FILE = "pseudonym.key"
DEV_PROJECT = "default"


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
