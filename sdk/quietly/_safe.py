"""Public SDK calls never raise into the host application."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

log = logging.getLogger("quietly")
P = ParamSpec("P")
R = TypeVar("R")


def safe(default: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Log and count an internal error instead of raising it into the host."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except Exception:
                self = args[0]
                if getattr(self, "_debug", False):
                    raise
                log.exception("quietly: internal error in %s (not raised to the app)", fn.__name__)
                stats = getattr(self, "_stats", None)
                if stats is not None:
                    stats.add("internal_errors")
                return default  # type: ignore[no-any-return]

        return functools.wraps(fn)(inner)

    return wrap
