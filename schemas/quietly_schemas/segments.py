"""Segment definitions (``segments.toml`` beside the event files) and the ``segments``
event they compile to.

A segment is declared: a name, its enumerated values, the consent it needs, and
whether an install keeps its first value (``keep = "first"``, an acquisition source)
or its latest (``keep = "latest"``, a plan). Declared values are the only ones a
breakdown can show, so a breakdown is never free text. Derived segments come from
what every event already carries and need no declaration.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from quietly_schemas.catalog import (
    CONSENT_LEVELS,
    KEYWORD_PATTERN,
    NAME_PATTERN,
    CatalogError,
    EventSchema,
    FieldSpec,
)

SEGMENTS_FILE = "segments.toml"
SEGMENTS_EVENT = "segments"
# Derived by the collector from each event (platform: the context's OS) or from the
# install's first day (tenure); their names cannot be declared.
DERIVED_SEGMENTS: dict[str, str] = {
    "platform": "the context's operating system (latest)",
    "app_version": "the context's app version (latest)",
    "tenure": "new while the install's first event is under new_install_days old, else"
              " experienced",
}
TENURE_VALUES = ("new", "experienced")
KEEP_MODES = ("first", "latest")
MAX_VALUES = 64
# The value a breakdown shows for an install that never reported the segment.
UNKNOWN = "unknown"


@dataclass(frozen=True)
class SegmentSpec:
    name: str
    values: tuple[str, ...]
    consent: str = "basic"
    keep: str = "latest"
    description: str = ""


def parse_segments(text: str, source: str) -> list[SegmentSpec]:
    """Parse one ``segments.toml``; errors name the file and the key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: not valid TOML: {exc}") from exc
    return [_parse_one(name, body, source) for name, body in raw.items()]


def _parse_one(name: str, body: Any, source: str) -> SegmentSpec:
    where = f"{source}: segment {name!r}"
    if not NAME_PATTERN.match(name):
        raise CatalogError(f"{where}: names are lower_snake_case, at most 64 characters")
    if name in DERIVED_SEGMENTS:
        raise CatalogError(f"{where}: {name} is derived by the collector; choose another name")
    if not isinstance(body, dict):
        raise CatalogError(f"{where}: expected a table")
    unknown = set(body) - {"values", "consent", "keep", "description"}
    if unknown:
        raise CatalogError(f"{where}: unknown keys {sorted(unknown)}")
    values = body.get("values")
    if (not isinstance(values, list) or not values or len(values) > MAX_VALUES
            or not all(isinstance(v, str) and v and len(v) <= 64 for v in values)):
        raise CatalogError(f"{where}: values is a list of 1 to {MAX_VALUES} names")
    bad = [v for v in values if not re.fullmatch(KEYWORD_PATTERN, v) or v == UNKNOWN]
    if bad:
        raise CatalogError(f"{where}: value {bad[0]!r} is not a keyword (or is reserved)")
    if len(set(values)) != len(values):
        raise CatalogError(f"{where}: values repeat")
    consent = body.get("consent", "basic")
    if consent not in CONSENT_LEVELS:
        raise CatalogError(f"{where}: consent must be 'basic' or 'detailed'")
    keep = body.get("keep", "latest")
    if keep not in KEEP_MODES:
        raise CatalogError(f"{where}: keep must be 'first' or 'latest'")
    return SegmentSpec(name, tuple(values), consent, keep, str(body.get("description", "")))


def merge_segments(groups: Iterable[tuple[str, list[SegmentSpec]]]) -> dict[str, SegmentSpec]:
    out: dict[str, SegmentSpec] = {}
    origin: dict[str, str] = {}
    for source, specs in groups:
        for spec in specs:
            if spec.name in out:
                raise CatalogError(f"{source}: segment {spec.name!r} is already defined in"
                                   f" {origin[spec.name]}")
            out[spec.name] = spec
            origin[spec.name] = source
    return out


def segments_event(segments: Mapping[str, SegmentSpec]) -> EventSchema:
    """The ``segments`` event: one optional enumerated keyword per declared segment, each
    with its segment's consent, so validation and consent gating are the events' own."""
    fields = {
        s.name: FieldSpec(name=s.name, type="keyword", consent=s.consent,
                          description=s.description, values=s.values)
        for s in segments.values()
    }
    return EventSchema(
        name=SEGMENTS_EVENT, version=1,
        description="The install's declared segments (Telemetry.set_segments).",
        consent="basic", fields=fields, source=SEGMENTS_FILE,
    )


def all_segment_names(segments: Mapping[str, SegmentSpec]) -> tuple[str, ...]:
    return (*segments, *DERIVED_SEGMENTS)


__all__ = [
    "DERIVED_SEGMENTS", "SEGMENTS_EVENT", "SEGMENTS_FILE", "TENURE_VALUES", "UNKNOWN",
    "SegmentSpec", "all_segment_names", "merge_segments", "parse_segments", "segments_event",
]
