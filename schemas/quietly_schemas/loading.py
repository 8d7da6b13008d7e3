"""Build catalogs: the shipped event files and segments, plus operators' directories."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from quietly_schemas.catalog import Catalog, CatalogError, EventSchema, parse_schema
from quietly_schemas.segments import (
    SEGMENTS_EVENT,
    SEGMENTS_FILE,
    SegmentSpec,
    merge_segments,
    parse_segments,
    segments_event,
)


def _builtin_files() -> list[tuple[str, str]]:
    root = resources.files("quietly_schemas") / "events"
    out = []
    for entry in root.iterdir():
        if entry.name.endswith(".toml"):
            out.append((f"events/{entry.name}", entry.read_text(encoding="utf-8")))
    return sorted(out)


def _build(events: list[EventSchema], segments: list[tuple[str, list[SegmentSpec]]]) -> Catalog:
    merged = merge_segments(segments)
    # The segments event is generated from every declared segment, never written.
    events = [e for e in events if e.name != SEGMENTS_EVENT]
    if merged:
        events.append(segments_event(merged))
    return Catalog(events, merged)


_BUILTIN: Catalog | None = None
_BUILTIN_PARTS: tuple[list[EventSchema], list[tuple[str, list[SegmentSpec]]]] | None = None


def _builtin_parts() -> tuple[list[EventSchema], list[tuple[str, list[SegmentSpec]]]]:
    global _BUILTIN_PARTS
    if _BUILTIN_PARTS is None:
        events, segments = [], []
        for src, text in _builtin_files():
            if Path(src).name == SEGMENTS_FILE:
                segments.append((src, parse_segments(text, src)))
            else:
                events.append(parse_schema(text, src))
        _BUILTIN_PARTS = (events, segments)
    return _BUILTIN_PARTS


def builtin_catalog() -> Catalog:
    """The event types and segments Quietly ships (built once per process)."""
    global _BUILTIN
    if _BUILTIN is None:
        events, segments = _builtin_parts()
        _BUILTIN = _build(list(events), list(segments))
    return _BUILTIN


def load_catalog(dirs: Iterable[str | Path] = (), *, include_builtin: bool = True) -> Catalog:
    """Built-in events plus every ``*.toml`` schema file in ``dirs`` (operators' own types);
    a ``segments.toml`` in a directory adds segments to the shipped ones."""
    events, segments = _builtin_parts() if include_builtin else ([], [])
    events, segments = list(events), list(segments)
    for d in dirs:
        path = Path(d)
        if not path.is_dir():
            raise CatalogError(f"{path}: schema directory does not exist")
        for file in sorted(path.glob("*.toml")):
            text = file.read_text(encoding="utf-8")
            if file.name == SEGMENTS_FILE:
                segments.append((str(file), parse_segments(text, str(file))))
            else:
                events.append(parse_schema(text, str(file)))
    return _build(events, segments)
