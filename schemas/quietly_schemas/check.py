"""Check one event's properties against its schema, as a client would.

The SDK calls this before anything is stored or sent: it applies the same
catalog, consent levels, keyword rule and scrubber that the collector enforces,
so an event the SDK sends is one the collector accepts. The collector keeps its
own batch-oriented path (``quietly_collector.pipeline.process``) for speed; both are
tested against the same schemas.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import msgspec

from quietly_schemas.catalog import EventSchema, keyword_ok
from quietly_schemas.scrub import scrub_counted

__all__ = ["ConsentBlocked", "EventInvalid", "check_props"]


class EventInvalid(ValueError):
    """The event does not match its schema; the message ends with its ``$.path``."""


class ConsentBlocked(Exception):
    """The whole event needs a higher consent level than the user gave."""


_RANK = {"off": 0, "basic": 1, "detailed": 2}


def _reason(message: str) -> str:
    # msgspec says "... - at `$.field`"; report it relative to the event: $.props.field
    text, sep, path = message.rpartition(" - at `")
    if not sep:
        return f"{message} at $.props"
    return f"{text} at $.props{path.rstrip('`')[1:]}"


def check_props(
    schema: EventSchema,
    props: Mapping[str, Any],
    consent: str,
    *,
    truncate_text: bool = True,
    locale: str | None = None,
) -> tuple[dict[str, Any], Counter[str]]:
    """Return the properties that may be sent at ``consent``, and what was dropped.

    Undeclared properties and properties above the consent level are dropped and
    counted (``undeclared``, ``consent``); text fields are scrubbed (``redacted_<kind>``)
    and, with ``truncate_text``, cut to their declared length instead of failing;
    ``locale`` (the event's ``context.locale``) is the scrubber's region hint.
    Raises ``ConsentBlocked`` when the event itself needs more consent, and
    ``EventInvalid`` when a property has the wrong type, is out of bounds, or a
    keyword looks like free text or personal data.
    """
    rank = _RANK.get(consent, 0)
    if rank == 0 or (schema.consent == "detailed" and rank < 2):
        raise ConsentBlocked(f"event {schema.name!r} needs {schema.consent} consent")
    dropped: Counter[str] = Counter()
    kept: dict[str, Any] = {}
    fields = schema.fields
    for name, value in props.items():
        spec = fields.get(name)
        if spec is None:
            dropped["undeclared"] += 1
        elif spec.consent == "detailed" and rank < 2:
            dropped["consent"] += 1
        elif value is not None:
            kept[name] = value
    for name in schema.text_fields:
        value = kept.get(name)
        if isinstance(value, str):
            clean, found = scrub_counted(value, locale)
            for kind, n in found.items():
                dropped[f"redacted_{kind}"] += n
            limit = fields[name].max_length
            if truncate_text and limit is not None and len(clean) > limit:
                clean = clean[: limit - 1] + "…"
            kept[name] = clean
    try:
        checked = msgspec.convert(kept, schema.lenient_type)
    except msgspec.ValidationError as exc:
        raise EventInvalid(_reason(str(exc))) from None
    for name in schema.keyword_fields:
        value = getattr(checked, name)
        if value is not None and not keyword_ok(value):
            raise EventInvalid(
                "Expected an identifier: only [A-Za-z0-9_.:+-], and nothing that looks"
                f" like personal data at $.props.{name}"
            )
    out: dict[str, Any] = msgspec.to_builtins(checked)
    return out, dropped
