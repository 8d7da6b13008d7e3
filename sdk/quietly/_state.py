"""What the SDK remembers between runs: consent, install id, pending deletions, and the
experiments this install was exposed to.

One small JSON file (``state.json``) in the state directory, replaced atomically
so a crash mid-write leaves the old state, readable only by the user. Several
processes of one app may share it: every change re-reads the file first.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

CONSENT_LEVELS = ("off", "basic", "detailed")
STATE_FILE = "state.json"


def default_state_dir(app: str) -> Path:
    """``<user state dir>/quietly/<app>``, e.g. ``~/.local/state/quietly/my-ide``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", app).strip("._") or "app"
    return platformdirs.user_state_path("quietly", appauthor=False) / safe


@dataclass
class State:
    consent: str = "off"
    # Created at the first opt-in (UUID4), forgotten at opt-out: never derived
    # from the machine, the user or the network.
    install_id: str | None = None
    # Deletion requests not yet acknowledged by the collector: {"event_id", "install_id", "ts"}.
    pending_deletions: list[dict[str, str]] = field(default_factory=list)
    # Experiment -> variant already reported for this install_id (one exposure each);
    # a new install id starts with none.
    experiments: dict[str, str] = field(default_factory=dict)


class StateFile:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / STATE_FILE

    def load(self) -> State:
        try:
            raw: Any = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return State()
        except (OSError, ValueError):
            # An unreadable state must never turn telemetry on: start from "off".
            return State()
        if not isinstance(raw, dict):
            return State()
        consent = raw.get("consent")
        install = raw.get("install_id")
        pending = raw.get("pending_deletions")
        seen = raw.get("experiments")
        return State(
            consent=consent if consent in CONSENT_LEVELS else "off",
            install_id=str(uuid.UUID(install)) if _is_uuid(install) else None,
            pending_deletions=[
                p for p in pending if isinstance(p, dict) and _is_uuid(p.get("install_id"))
            ] if isinstance(pending, list) else [],
            experiments={str(k): str(v) for k, v in seen.items()}
            if isinstance(seen, dict) and _is_uuid(install) else {},
        )

    def save(self, state: State) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps(
            {
                "consent": state.consent,
                "install_id": state.install_id,
                "pending_deletions": state.pending_deletions,
                "experiments": state.experiments if state.install_id else {},
            },
            indent=1,
        )
        fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
