"""Write keys and admin tokens from ``keys_file``, re-read while the collector runs.

The file is TOML::

    admin_token = "..."            # optional; a list keeps two valid during a rotation
    [write_keys]
    my_ide = "key"                 # or ["new key", "old key"] during a rotation
    [read_keys]                    # optional: read one project's metrics and dashboard
    my_ide = "another key"

The collector checks it once a second (modification time, size, inode) and on
SIGHUP. A change applies at once and without a grace period: a key removed from
the file gets ``401`` on its next request. To rotate without refusing clients,
list the new key next to the old one, move the clients over, then remove the
old one. A file that cannot be read or parsed leaves the keys as they were.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quietly_collector.access.keyring import KeyRing
from quietly_collector.access.logcontext import register_values

MIN_KEY_LENGTH = 16


class KeysFileError(ValueError):
    """The keys file is missing or malformed; the message says where."""


@dataclass
class KeysFile:
    write: list[tuple[str, str]]  # (project, key)
    admin: list[str]
    read: list[tuple[str, str]] = field(default_factory=list)


def _keys(where: str, value: Any) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise KeysFileError(f"{where}: expected a string or a list of strings")
    for v in values:
        if len(v) < MIN_KEY_LENGTH:
            raise KeysFileError(f"{where}: keys must be at least {MIN_KEY_LENGTH} characters")
    return list(values)


def read_keys_file(path: Path) -> KeysFile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeysFileError(f"keys_file {path}: cannot read it ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"keys_file {path}: not valid TOML ({exc})") from exc
    unknown = set(data) - {"write_keys", "read_keys", "admin_token"}
    if unknown:
        raise KeysFileError(f"keys_file {path}: unknown keys {sorted(unknown)}")
    write, read = (_table(path, data, name) for name in ("write_keys", "read_keys"))
    admin = _keys("keys_file admin_token", data["admin_token"]) if "admin_token" in data else []
    if {k for _, k in read} & ({k for _, k in write} | set(admin)):
        raise KeysFileError(f"keys_file {path}: a read key must differ from every write key"
                            " and admin token")
    return KeysFile(write, admin, read)


def _table(path: Path, data: dict[str, Any], name: str) -> list[tuple[str, str]]:
    projects = data.get(name, {})
    if not isinstance(projects, dict):
        raise KeysFileError(f"keys_file {path}: {name} must be a table")
    return [(str(project), key) for project, value in projects.items()
            for key in _keys(f"keys_file {name}.{project}", value)]


class KeysWatcher:
    """Re-reads one keys file into a KeyRing when the file changes."""

    def __init__(self, path: Path, ring: KeyRing) -> None:
        self.path = path
        self.ring = ring
        self._seen: tuple[int, int, int] | None = None

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def changed(self) -> bool:
        return self._signature() != self._seen

    def reload(self) -> dict[str, Any]:
        """Apply the file; returns what changed (project names and counts, never keys).
        On error the ring is untouched and the file is not looked at again until it
        changes."""
        # Taken before reading: a write during the read is seen as a change next time.
        self._seen = self._signature()
        keys = read_keys_file(self.path)
        # Redacted in logs.
        register_values([*(k for _, k in keys.write), *(k for _, k in keys.read), *keys.admin])
        before, admin_before = self.ring.snapshot()
        read_before = self.ring.read_snapshot()
        self.ring.apply_file(keys.write, keys.admin, keys.read)
        after, admin_after = self.ring.snapshot()
        return {
            "projects": len(after),
            "added": sorted(set(after) - set(before)),
            "removed": sorted(set(before) - set(after)),
            "changed": sorted(p for p in set(after) & set(before) if after[p] != before[p]),
            "admin_token_changed": admin_before != admin_after,
            "read_keys_changed": read_before != self.ring.read_snapshot(),
        }
