"""Quietly SDK: consent-gated, anonymous product telemetry.

    from quietly import Telemetry
    t = Telemetry(endpoint="http://127.0.0.1:8080", write_key="...", app="my-ide")
    t.set_consent("basic")      # only after the user opted in
    t.track("feature_used", feature="debugging", duration_ms=1234, success=True)

Nothing is stored or sent while consent is ``off`` (the default). See docs/sdk.md.
"""

from __future__ import annotations

__version__ = "0.1.0"

from quietly._aio import AsyncTelemetry
from quietly._client import Telemetry
from quietly_schemas import Catalog, EventInvalid, builtin_catalog, load_catalog, scrub

__all__ = [
    "AsyncTelemetry",
    "Catalog",
    "EventInvalid",
    "Telemetry",
    "__version__",
    "builtin_catalog",
    "load_catalog",
    "scrub",
]
