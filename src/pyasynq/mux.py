"""ServeMux: routes a task to the handler registered for its type.

An exact type match wins; otherwise the longest registered pattern that is a plain string
prefix of the type (asynq's rule: no ``:`` boundary). Handlers may be ``async def`` or plain
``def``; plain ones run in the server's thread pool. Middlewares wrap the async form of the
handler, the first added outermost, and also wrap the not-found handler.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, overload

from .task import Task

__all__ = ["AsyncHandler", "Handler", "Middleware", "ServeMux", "handler_not_found"]

Handler: TypeAlias = Callable[[Task], Awaitable[None] | None]
AsyncHandler: TypeAlias = Callable[[Task], Awaitable[None]]
Middleware: TypeAlias = Callable[[AsyncHandler], AsyncHandler]


class HandlerNotFoundError(Exception):
    """No handler is registered for the task's type (asynq's ErrHandlerNotFound)."""


async def handler_not_found(task: Task) -> None:
    raise HandlerNotFoundError(f'handler not found for task "{task.type}"')


class ServeMux:
    """A task-type router: ``mux.handle(pattern, fn)`` or ``@mux.handler(pattern)``."""

    def __init__(self) -> None:
        self._exact: dict[str, Handler] = {}
        self._prefixes: list[str] = []  # longest first
        self._middlewares: list[Middleware] = []

    def handle(self, pattern: str, handler: Handler) -> None:
        """Register ``handler`` for tasks whose type is ``pattern`` or starts with it."""
        if not isinstance(pattern, str) or not pattern.strip():
            raise ValueError("pattern must be a non-blank task type or prefix")
        if not callable(handler):
            raise TypeError(f"handler for {pattern!r} must be callable, got {handler!r}")
        if pattern in self._exact:
            raise ValueError(f"a handler is already registered for {pattern!r}")
        self._exact[pattern] = handler
        self._prefixes.append(pattern)
        self._prefixes.sort(key=len, reverse=True)

    @overload
    def handler(self, pattern: str) -> Callable[[Handler], Handler]: ...
    @overload
    def handler(self, pattern: str, fn: Handler) -> Handler: ...

    def handler(self, pattern: str, fn: Handler | None = None) -> Any:
        """Decorator form of :meth:`handle`; returns the function unchanged."""
        if fn is not None:
            self.handle(pattern, fn)
            return fn

        def register(f: Handler) -> Handler:
            self.handle(pattern, f)
            return f

        return register

    def use(self, *middlewares: Middleware) -> None:
        """Wrap every handler; middlewares receive and return ``async (task) -> None``."""
        for mw in middlewares:
            if not callable(mw):
                raise TypeError(f"middleware must be callable, got {mw!r}")
            self._middlewares.append(mw)

    def match(self, task_type: str) -> Handler | None:
        """The handler registered for ``task_type``, or None."""
        found = self._exact.get(task_type)
        if found is not None:
            return found
        for p in self._prefixes:
            if task_type.startswith(p):
                return self._exact[p]
        return None

    def resolve(
        self, task_type: str, run_sync: Callable[[Callable[[Task], Any], Task], Awaitable[Any]]
    ) -> AsyncHandler:
        """The async callable that processes ``task_type``: the matched handler (sync ones
        through ``run_sync``) or the not-found handler, wrapped in the middlewares."""
        h = self.match(task_type)
        inner: AsyncHandler
        if h is None:
            inner = handler_not_found
        elif is_async(h):
            inner = h  # type: ignore[assignment]
        else:
            fn = h

            async def inner(task: Task) -> None:
                res = await run_sync(fn, task)
                if inspect.isawaitable(res):  # e.g. a lambda or partial around async code
                    await res

        for mw in reversed(self._middlewares):
            inner = mw(inner)
        return inner


def is_async(fn: object) -> bool:
    """True for ``async def`` functions and objects whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - we need the bound method itself
    return call is not None and inspect.iscoroutinefunction(call)
