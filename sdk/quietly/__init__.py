"""Quietly SDK: consent-gated, anonymous product telemetry.

The client (``Telemetry``) arrives with issue #3. Today this package gives
product code the shared event catalog and scrubber, the same ones the
collector enforces, without pulling in any collector dependency.
"""

from __future__ import annotations

from quietly_schemas import Catalog, builtin_catalog, load_catalog, scrub

__version__ = "0.1.0"

__all__ = ["Catalog", "__version__", "builtin_catalog", "load_catalog", "scrub"]
