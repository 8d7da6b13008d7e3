"""Quietly collector: validates telemetry, strips PII and stores it in ClickHouse."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
