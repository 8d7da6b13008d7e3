"""Quietly's event catalog, PII scrubber and ClickHouse migrations.

Shared by the SDK (client-side checks and consent gating) and the collector
(validation at ingest), so both sides apply exactly the same rules.
"""

from __future__ import annotations

from quietly_schemas.catalog import (
    CONSENT_LEVELS,
    Catalog,
    CatalogError,
    EventSchema,
    FieldSpec,
)
from quietly_schemas.check import ConsentBlocked, EventInvalid, check_props
from quietly_schemas.evolution import check_evolution
from quietly_schemas.loading import builtin_catalog, load_catalog
from quietly_schemas.scrub import SCRUB_TYPES, scrub, scrub_counted
from quietly_schemas.segments import SegmentSpec

__all__ = [
    "CONSENT_LEVELS",
    "SCRUB_TYPES",
    "Catalog",
    "CatalogError",
    "ConsentBlocked",
    "EventInvalid",
    "EventSchema",
    "FieldSpec",
    "SegmentSpec",
    "builtin_catalog",
    "check_evolution",
    "check_props",
    "load_catalog",
    "scrub",
    "scrub_counted",
]
