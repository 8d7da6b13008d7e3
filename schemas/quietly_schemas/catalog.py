"""Load event schema files (TOML) into a catalog and compile them to msgspec types.

One file describes one version of one event type (``<name>.v<version>.toml``).
Every field declares a type, a bound and a consent level, so nothing reaches
storage that the catalog did not name (fail-closed).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from quietly_schemas.scrub import scrub

if TYPE_CHECKING:
    from quietly_schemas.segments import SegmentSpec

CONSENT_LEVELS: tuple[str, ...] = ("basic", "detailed")
FIELD_TYPES = ("keyword", "text", "int", "float", "bool")
# Keywords are identifiers (feature names, versions, enums). The character set
# rules out e-mail addresses, paths and prose, so they need no scrubbing.
KEYWORD_PATTERN = r"^[A-Za-z0-9_.:+\-]*$"
_KEYWORD_RE = re.compile(KEYWORD_PATTERN)
# Keywords repeat (feature names, app versions): remember the good ones so the
# regex runs once per distinct value, not once per event.
_KEYWORD_OK: set[str] = set()
_KEYWORD_CACHE_MAX = 100_000


_VERSION_OK: set[str] = set()


def keyword_ok(value: str) -> bool:
    """True if ``value`` uses only the keyword character set and holds nothing the
    scrubber would remove (an IP address or a phone number fits the character set)."""
    if value in _KEYWORD_OK:
        return True
    if _KEYWORD_RE.match(value) is None or scrub(value) != value:
        return False
    if len(_KEYWORD_OK) >= _KEYWORD_CACHE_MAX:
        _KEYWORD_OK.clear()
    _KEYWORD_OK.add(value)
    return True


def version_ok(value: str) -> bool:
    """Like ``keyword_ok`` for version strings: ``10.0.0.1`` is a version here, not an IP."""
    if value in _VERSION_OK:
        return True
    if _KEYWORD_RE.match(value) is None:
        return False
    if len(_VERSION_OK) >= _KEYWORD_CACHE_MAX:
        _VERSION_OK.clear()
    _VERSION_OK.add(value)
    return True
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
FILE_PATTERN = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)\.v(?P<version>[0-9]+)\.toml$")


class CatalogError(ValueError):
    """A schema file is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    consent: str = "basic"
    required: bool = False
    description: str = ""
    max_length: int | None = None
    values: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None

    def fingerprint(self) -> dict[str, Any]:
        """What must never change once published (see docs/schemas.md)."""
        return {"type": self.type}


@dataclass(frozen=True)
class EventSchema:
    name: str
    version: int
    description: str
    consent: str
    fields: Mapping[str, FieldSpec]
    source: str = "<builtin>"
    props_type: type[msgspec.Struct] = field(init=False, repr=False, compare=False)
    lenient_type: type[msgspec.Struct] = field(init=False, repr=False, compare=False)
    text_fields: tuple[str, ...] = field(init=False, repr=False, compare=False)
    keyword_fields: tuple[str, ...] = field(init=False, repr=False, compare=False)
    detailed_fields: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        strict, lenient = _compile(self)
        object.__setattr__(self, "props_type", strict)
        object.__setattr__(self, "lenient_type", lenient)
        object.__setattr__(
            self, "text_fields", tuple(f.name for f in self.fields.values() if f.type == "text")
        )
        object.__setattr__(
            self,
            "keyword_fields",
            tuple(
                f.name for f in self.fields.values() if f.type == "keyword" and f.values is None
            ),
        )
        object.__setattr__(
            self,
            "detailed_fields",
            tuple(f.name for f in self.fields.values() if f.consent == "detailed"),
        )

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.version)

    def bad_keyword(self, props: Any) -> str | None:
        """The first keyword field of decoded ``props`` outside the keyword character set."""
        for name in self.keyword_fields:
            value = getattr(props, name)
            if value is not None and not keyword_ok(value):
                return name
        return None

    def allowed_fields(self, consent: str) -> frozenset[str]:
        """Fields that may be sent at a consent level."""
        if consent == "detailed":
            return frozenset(self.fields)
        if consent == "basic":
            return frozenset(n for n, f in self.fields.items() if f.consent == "basic")
        return frozenset()


def _field_type(spec: FieldSpec) -> Any:
    if spec.type == "bool":
        return bool
    if spec.type == "int":
        return Annotated[int, msgspec.Meta(ge=int(spec.min or 0), le=int(spec.max or 0))]
    if spec.type == "float":
        return Annotated[float, msgspec.Meta(ge=spec.min, le=spec.max)]
    if spec.values is not None:
        return Literal[spec.values]
    # Keywords' character set is checked after decoding (EventSchema.bad_keyword):
    # a msgspec pattern would run the regex on every value, about 1 µs each.
    return Annotated[str, msgspec.Meta(max_length=spec.max_length)]


def _compile(schema: EventSchema) -> tuple[type[msgspec.Struct], type[msgspec.Struct]]:
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for spec in schema.fields.values():
        tp = _field_type(spec)
        if spec.required:
            fields.append((spec.name, tp))
        else:
            fields.append((spec.name, tp | None, None))
    cls_name = "".join(p.title() for p in schema.name.split("_")) + f"V{schema.version}"
    # strict: fast path that proves no undeclared property was sent;
    # lenient: same checks, but undeclared properties are ignored (dropped).
    common: dict[str, Any] = {"kw_only": True, "omit_defaults": True, "gc": False}
    strict = msgspec.defstruct(cls_name, fields, forbid_unknown_fields=True, **common)
    lenient = msgspec.defstruct(cls_name, fields, **common)
    return strict, lenient


def _as_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise CatalogError(f"{where}: expected a string")
    return value


def _parse_field(name: str, raw: Any, where: str) -> FieldSpec:
    where = f"{where}: field {name!r}"
    if not NAME_PATTERN.match(name):
        raise CatalogError(f"{where}: names are lower_snake_case, at most 64 characters")
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: expected a table")
    unknown = set(raw) - {
        "type", "consent", "required", "description", "max_length", "values", "min", "max"
    }
    if unknown:
        raise CatalogError(f"{where}: unknown keys {sorted(unknown)}")
    ftype = raw.get("type")
    if ftype not in FIELD_TYPES:
        raise CatalogError(f"{where}: type must be one of {', '.join(FIELD_TYPES)}")
    consent = raw.get("consent", "basic")
    if consent not in CONSENT_LEVELS:
        raise CatalogError(f"{where}: consent must be 'basic' or 'detailed'")
    values = raw.get("values")
    if values is not None:
        if ftype != "keyword" or not isinstance(values, list) or not values:
            raise CatalogError(f"{where}: values is a non-empty list, for keyword fields only")
        values = tuple(_as_str(v, where) for v in values)
    max_length = raw.get("max_length")
    lo, hi = raw.get("min"), raw.get("max")
    # Every field is bounded: an unbounded field is a schema error, not a default.
    unbounded = not isinstance(max_length, int) or max_length <= 0
    if ftype in ("keyword", "text") and values is None and unbounded:
        raise CatalogError(f"{where}: {ftype} fields need a positive max_length")
    if ftype in ("int", "float"):
        if not isinstance(lo, int | float) or not isinstance(hi, int | float) or lo > hi:
            raise CatalogError(f"{where}: {ftype} fields need numeric min <= max")
        if ftype == "int" and not (isinstance(lo, int) and isinstance(hi, int)):
            raise CatalogError(f"{where}: int bounds must be integers")
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise CatalogError(f"{where}: required is true or false")
    return FieldSpec(
        name=name,
        type=ftype,
        consent=consent,
        required=required,
        description=str(raw.get("description", "")),
        max_length=max_length,
        values=values,
        min=lo,
        max=hi,
    )


def parse_schema(text: str, source: str) -> EventSchema:
    """Parse one schema file's text; errors name the file and the offending key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: not valid TOML: {exc}") from exc
    unknown = set(raw) - {"name", "version", "description", "consent", "fields"}
    if unknown:
        raise CatalogError(f"{source}: unknown keys {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise CatalogError(f"{source}: name must be lower_snake_case")
    version = raw.get("version")
    if not isinstance(version, int) or version < 1:
        raise CatalogError(f"{source}: version must be an integer >= 1")
    m = FILE_PATTERN.match(Path(source).name)
    if source != "<string>" and (not m or m["name"] != name or int(m["version"]) != version):
        raise CatalogError(f"{source}: file must be named {name}.v{version}.toml")
    consent = raw.get("consent", "basic")
    if consent not in CONSENT_LEVELS:
        raise CatalogError(f"{source}: consent must be 'basic' or 'detailed'")
    fields_raw = raw.get("fields", {})
    if not isinstance(fields_raw, dict):
        raise CatalogError(f"{source}: fields must be a table")
    fields = {n: _parse_field(n, f, source) for n, f in fields_raw.items()}
    if consent == "detailed":
        # An event that needs detailed consent cannot carry basic-only fields meaningfully.
        fields = {n: _replace_consent(f, "detailed") for n, f in fields.items()}
    return EventSchema(
        name=name,
        version=version,
        description=str(raw.get("description", "")),
        consent=consent,
        fields=fields,
        source=source,
    )


def _replace_consent(spec: FieldSpec, consent: str) -> FieldSpec:
    return FieldSpec(**{**spec.__dict__, "consent": consent})


class Catalog:
    """All known event schemas, keyed by (name, version), and the declared segments."""

    def __init__(
        self, schemas: Iterable[EventSchema], segments: Mapping[str, SegmentSpec] | None = None
    ) -> None:
        self.segments: dict[str, SegmentSpec] = dict(segments or {})
        self._schemas: dict[tuple[str, int], EventSchema] = {}
        for schema in schemas:
            if schema.key in self._schemas:
                other = self._schemas[schema.key].source
                raise CatalogError(
                    f"{schema.source}: {schema.name} v{schema.version} is already defined"
                    f" in {other}"
                )
            self._schemas[schema.key] = schema

    def get(self, name: str, version: int = 1) -> EventSchema | None:
        return self._schemas.get((name, version))

    def versions(self, name: str) -> list[int]:
        return sorted(v for (n, v) in self._schemas if n == name)

    def __iter__(self) -> Any:
        return iter(sorted(self._schemas.values(), key=lambda s: s.key))

    def __len__(self) -> int:
        return len(self._schemas)

    def __contains__(self, key: object) -> bool:
        return key in self._schemas

    def merged(self, other: Catalog) -> Catalog:
        return Catalog([*self, *other], {**self.segments, **other.segments})
