"""Schema evolution rules, checked against a published fingerprint (the lock file).

Within one version: fields may be added only as optional (they get a default of
null), and a field's type never changes nor does a field disappear. Anything
else is a breaking change and must be a new version file.
"""

from __future__ import annotations

from typing import Any

from quietly_schemas.catalog import Catalog

Fingerprint = dict[str, dict[str, dict[str, str]]]


def fingerprint(catalog: Catalog) -> Fingerprint:
    """``{"name.vN": {"field": "type"}}``: what later releases must stay compatible with."""
    return {
        f"{s.name}.v{s.version}": {f.name: f.type for f in s.fields.values()} for s in catalog
    }


def check_evolution(published: dict[str, Any], catalog: Catalog) -> list[str]:
    """Return every violation of the evolution rules (empty when compatible)."""
    problems: list[str] = []
    for key, old_fields in sorted(published.items()):
        name, _, ver = key.rpartition(".v")
        schema = catalog.get(name, int(ver))
        if schema is None:
            problems.append(f"{key}: a published event version was removed")
            continue
        for fname, ftype in old_fields.items():
            spec = schema.fields.get(fname)
            if spec is None:
                problems.append(f"{key}: field {fname!r} was removed (make a new version)")
            elif spec.type != ftype:
                problems.append(
                    f"{key}: field {fname!r} changed type {ftype} -> {spec.type}"
                    " (make a new version)"
                )
        for fname, spec in schema.fields.items():
            if fname not in old_fields and spec.required:
                problems.append(f"{key}: new field {fname!r} must be optional (have a default)")
    return problems
