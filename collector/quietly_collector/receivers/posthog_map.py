"""PostHog events as native events: the mapping of docs/protocol.md ("PostHog capture").

A custom event named like a catalog event becomes that event; ``$pageview`` and
``$screen`` become ``screen_viewed``, ``$exception`` becomes ``error``; every other
``$`` event (identify, person and group properties, autocapture, feature flag calls)
has no catalog meaning and is counted and ignored. ``distinct_id`` becomes an install
id keyed with the collector's secret and the project (ForeignIds); PostHog's own ``$``
properties never become props, and person properties (``$set``...) are never stored.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import msgspec

from quietly_collector.pipeline.foreign import ForeignIds
from quietly_collector.receivers.intake import Translated, keyword
from quietly_collector.receivers.segment import event_name

SCREEN_EVENTS = frozenset({"$pageview", "$screen"})
EXCEPTION_EVENT = "$exception"
# Ignored $ events counted by name; any other one as "other" (label values stay bounded).
IGNORED_NAMED = {"$identify": "identify", "$set": "set", "$groupidentify": "groupidentify",
                 "$create_alias": "alias", "$autocapture": "autocapture",
                 "$feature_flag_called": "feature_flag_called", "$pageleave": "pageleave"}
PERSON_PROPERTIES = ("$set", "$set_once", "$unset")
# Properties posthog-js uses for the envelope (the key and the id), not the event's.
ENVELOPE_PROPERTIES = frozenset({"token", "distinct_id"})
# PostHog property -> context field.
CONTEXT = {"$app_name": "app", "$app_version": "app_version", "$os": "os",
           "$os_version": "os_version", "$locale": "locale", "$lib": "sdk",
           "$lib_version": "sdk_version"}
_TEXT = ("app", "os", "sdk", "locale")
_SCREEN_MAX = 128


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _screen(name: str, props: dict[str, Any]) -> Any:
    """``$screen_name`` (mobile), else the page's path as dotted words: never the URL,
    whose query and fragment often carry personal data."""
    screen = props.get("$screen_name")
    if screen is None and name == "$pageview":
        path = props.get("$pathname")
        if isinstance(path, str):
            screen = ".".join(p for p in path.split("/") if p)[:_SCREEN_MAX] or "root"
    return screen


def _exception(props: dict[str, Any]) -> dict[str, Any]:
    first = props.get("$exception_list")
    first = _dict(first[0]) if isinstance(first, list) and first else {}
    kind = first.get("type", props.get("$exception_type"))
    message = first.get("value", props.get("$exception_message"))
    out: dict[str, Any] = {"kind": kind}
    if message is not None:
        out["message"] = message  # detailed consent only, and scrubbed, as native errors
    return out


def _context(props: dict[str, Any]) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    for prop, name in CONTEXT.items():
        value = props.get(prop)
        if value is not None:
            ctx[name] = keyword(value) if name in _TEXT else str(value)
    consent = props.get("$quietly_consent")
    if consent is not None:
        ctx["consent"] = consent
    return ctx


def _event(call: dict[str, Any], raw: bytes, sent_at: str, ids: ForeignIds,
           counters: Counter[str]) -> dict[str, Any]:
    name = call.get("event")
    props = _dict(call.get("properties"))
    if any(p in props for p in PERSON_PROPERTIES) or "$set" in call:
        counters["posthog_person_properties_dropped"] += 1
    if name in SCREEN_EVENTS:
        mapped: Any = "screen_viewed"
        out_props: dict[str, Any] = {"screen": _screen(str(name), props)}
    elif name == EXCEPTION_EVENT:
        mapped, out_props = "error", _exception(props)
    else:
        mapped = event_name(name) if isinstance(name, str) else name
        # PostHog's own properties ($lib, $geoip_disable, $set...) are its metadata, not
        # the event's: the catalog's properties are the ones without a $.
        out_props = {k: v for k, v in props.items()
                     if not k.startswith("$") and k not in ENVELOPE_PROPERTIES}
    ev: dict[str, Any] = {"event": mapped, "props": out_props, "context": _context(props)}
    uid = call.get("uuid")
    # Without a uuid the event's own bytes name it: a resend is still a duplicate.
    ev["event_id"] = ids.event(uid if uid else hashlib.sha256(raw).hexdigest())
    ev["ts"] = call.get("timestamp") or sent_at
    distinct = call.get("distinct_id", props.get("distinct_id"))
    if distinct is not None and distinct != "":
        ev["install_id"] = ids.install(distinct)
    session = props.get("$session_id")
    if session:
        ev["session_id"] = ids.session(session)
    version = props.get("$quietly_event_version")
    if version is not None:
        ev["version"] = version
    return ev


def ignored_kind(name: Any) -> str | None:
    """The counter name of a ``$`` event without catalog meaning, else None."""
    if not isinstance(name, str) or not name.startswith("$"):
        return None
    if name in SCREEN_EVENTS or name == EXCEPTION_EVENT:
        return None
    return IGNORED_NAMED.get(name, "other")


def translate(events: list[tuple[msgspec.Raw, Any]], sent_at: Any, sent_text: str,
              ids: ForeignIds, counters: Counter[str]) -> Translated:
    """``events``: each as sent and decoded (posthog.frame); ``sent_at``: the batch's time
    with offset when it had a valid one (skew correction), else None; ``sent_text``:
    the time an event without one gets."""
    natives: list[Any] = []
    out = Translated(b"")
    for i, (raw, call) in enumerate(events):
        if isinstance(call, dict):
            kind = ignored_kind(call.get("event"))
            if kind is not None:
                out.ignored += 1
                counters[f"posthog_events_ignored_{kind}"] += 1
                continue
            natives.append(_event(call, bytes(raw), sent_text, ids, counters))
        else:
            natives.append(raw)  # the native check rejects it, with its reason, on its own
        out.origin.append(i)
    native: dict[str, Any] = {"events": natives}
    if sent_at is not None:
        native["sent_at"] = sent_at
    out.body = msgspec.json.encode(native)
    return out
