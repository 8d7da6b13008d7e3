"""Copy the metric settings from configuration into the tables the views read.

Views are SQL; thresholds belong in configuration. Rewriting two small tables at
every start (and ``quietly migrate``) keeps one source of truth, and engineers who
query the views directly get the same grades as ``quietly query``.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

from quietly_collector.settings import Settings, thresholds
from quietly_schemas import load_catalog

if TYPE_CHECKING:
    from quietly_collector.storage.store import Store


def write_metric_settings(store: Store, settings: Settings) -> None:
    values = [
        ("activation_event", settings.activation_event),
        ("production_environments", ",".join(settings.production_environments)),
        ("new_install_days", str(settings.new_install_days)),
        ("fixed_segments", ",".join(sorted(fixed_segments(settings)))),
    ]
    _replace(store, "metric_settings", ["key", "value"], [list(v) for v in values])
    _replace(
        store,
        "metric_thresholds",
        ["operation", "measure", "target", "good", "acceptable", "unacceptable"],
        [list(t) for t in thresholds(settings)],
    )


def _replace(store: Store, table: str, columns: list[str], rows: list[list[object]]) -> None:
    store.command(f"TRUNCATE TABLE {table}")
    payload = b"\n".join(json.dumps(r).encode() for r in rows)
    store.insert(table, columns, payload, uuid.uuid4().hex)


def fixed_segments(settings: Settings) -> list[str]:
    """Declared segments that keep an install's first value (``keep = "first"``)."""
    catalog = load_catalog(settings.schema_dirs)
    return [s.name for s in catalog.segments.values() if s.keep == "first"]
