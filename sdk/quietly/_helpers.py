"""Shortcuts for the built-in events, so product code stays short and correct."""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

from quietly._safe import safe
from quietly._state import StateFile

F = TypeVar("F", bound=Callable[..., Any])
_STACK_MAX = 16_000


class Timed:
    """``with t.timed("file_open"):`` or ``@t.timed("search")``: one ``performance`` event."""

    def __init__(self, client: HelpersMixin, operation: str, props: dict[str, Any]) -> None:
        self._client = client
        self._operation = operation
        self._props = props
        self._start = 0.0

    def __enter__(self) -> Timed:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        ms = (time.perf_counter() - self._start) * 1000.0
        # Measured values win over same-named extra props; never raise into the block's exit.
        props = {**self._props, "operation": self._operation, "duration_ms": ms}
        self._client.track("performance", **props)

    def __call__(self, fn: F) -> F:
        op, props, client = self._operation, self._props, self._client
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with Timed(client, op, props):
                    return await fn(*args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with Timed(client, op, props):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class HelpersMixin:
    _level: str
    _install: str | None
    _state_lock: threading.Lock
    _state_file: StateFile
    _exposed: set[tuple[str, str]]

    def track(self, event: str, /, **props: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _enqueue_control(self, op: str, arg: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def timed(self, operation: str, **props: Any) -> Timed:
        """Time a block or a function as a ``performance`` event (``duration_ms``)."""
        return Timed(self, operation, props)

    @contextmanager
    def session(self) -> Iterator[None]:
        """An explicit session: ``session_start`` now, ``session_end`` (with duration) at exit."""
        self._enqueue_control("session_start", self._level)
        try:
            yield
        finally:
            self._enqueue_control("session_end", self._level)

    @safe(None)
    def crash(self, exc: BaseException | None = None, *, kind: str | None = None) -> None:
        """Report an exception as a ``crash``: message scrubbed, stack only at ``detailed``."""
        if self._level == "off":
            return
        if exc is None:
            exc = sys.exc_info()[1]
        if exc is None:
            return
        props: dict[str, Any] = {"kind": kind or type(exc).__qualname__, "message": str(exc)}
        if self._level == "detailed":
            # The innermost frames matter most: keep the end of a long stack.
            props["stack"] = "".join(traceback.format_exception(exc))[-_STACK_MAX:]
        self.track("crash", **props)

    @safe(None)
    def capture_crashes(self) -> None:
        """Report unhandled exceptions (any thread) as crashes, then let them go on as usual."""
        prev_sys = sys.excepthook
        prev_thread = threading.excepthook

        def sys_hook(et: type[BaseException], ev: BaseException, tb: TracebackType | None) -> None:
            if not issubclass(et, KeyboardInterrupt):
                self.crash(ev)
            prev_sys(et, ev, tb)

        def thread_hook(args: threading.ExceptHookArgs) -> None:
            if args.exc_value is not None and not isinstance(args.exc_value, SystemExit):
                self.crash(args.exc_value)
            prev_thread(args)

        sys.excepthook = sys_hook
        threading.excepthook = thread_hook

    @safe(None)
    def error(self, kind: str, code: str | None = None, message: str | None = None) -> None:
        """A handled error (``message`` is sent only at ``detailed``, scrubbed)."""
        self.track("error", kind=kind, code=code, message=message)

    @safe(None)
    def survey(
        self,
        survey: str,
        score: int | None = None,
        *,
        job: str | None = None,
        comment: str | None = None,
    ) -> None:
        """A survey answer, e.g. ``survey("nps", 9)``; ``comment`` at ``detailed`` only."""
        self.track("survey_response", survey=survey, score=score, job=job, comment=comment)

    @safe(None)
    def job_started(self, job: str) -> None:
        self.track("job_started", job=job)

    @safe(None)
    def job_step(self, job: str, step: str) -> None:
        self.track("job_step", job=job, step=step)

    @safe(None)
    def job_completed(self, job: str, success: bool | None = None) -> None:
        self.track("job_completed", job=job, success=success)

    @safe(None)
    def deployment(
        self, environment: str, success: bool | None = None, duration_ms: int | None = None
    ) -> None:
        self.track("deployment", environment=environment, success=success, duration_ms=duration_ms)

    @safe(None)
    def screen(self, screen: str) -> None:
        self.track("screen_viewed", screen=screen)

    @safe(None)
    def set_segments(self, **values: str) -> None:
        """Record the install's segments, e.g. ``set_segments(channel="beta", plan="paid")``.

        Only segments and values declared in the catalog's ``segments.toml`` are sent;
        anything else is refused like a bad property (counted; raised with its
        ``$.path`` when ``debug=True``). Each value goes out only at the consent level
        its segment declares, and an opt-out erases them with every other event.
        """
        self.track("segments", **values)

    @safe(None)
    def build_finished(
        self, success: bool, duration_ms: int | None = None, kind: str | None = None
    ) -> None:
        """A build of the user's project finished (the engineering dashboard's builds)."""
        self.track("build_finished", success=success, duration_ms=duration_ms, kind=kind)

    @safe(None)
    def experiment(self, name: str, variant: str) -> None:
        """The install sees ``variant`` of experiment ``name``: one ``experiment_exposure``
        per install and experiment, however often it is called (remembered in the state
        file, so a restart sends no second one). ``variant="control"`` is the baseline."""
        if self._level == "off" or self._install is None:
            return
        key = (self._install, name)
        if key in self._exposed:  # the common case: no lock, no file
            return
        with self._state_lock:
            state = self._state_file.load()
            # Another process of the app may have reported it already.
            first = state.install_id == self._install and name not in state.experiments
            if first:
                state.experiments[name] = variant
                self._state_file.save(state)
            self._exposed.add(key)
        if first:
            self.track("experiment_exposure", experiment=name, variant=variant)
