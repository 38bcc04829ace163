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

from .limits import Limit
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
        self._async: dict[str, bool] = {}  # pattern -> is_async(handler), asked once
        self._prefixes: list[str] = []  # longest first
        self._middlewares: list[Middleware] = []
        self._limits: dict[str, Limit] = {}  # pattern -> its fleet-wide limit

    def handle(self, pattern: str, handler: Handler, *, limit: Limit | None = None) -> None:
        """Register ``handler`` for tasks whose type is ``pattern`` or starts with it.

        Args:
            pattern: the task type, or a prefix of the types to route here.
            handler: ``async def`` or plain ``def`` taking the Task.
            limit: a fleet-wide :class:`~pyasynq.Limit` shared by every task routed to
                this pattern, in each queue (see docs/limits.md).

        Raises:
            ValueError: a blank pattern, or one already registered.
            TypeError: a handler that is not callable, or a limit that is not a Limit.
        """
        if not isinstance(pattern, str) or not pattern.strip():
            raise ValueError("pattern must be a non-blank task type or prefix")
        if not callable(handler):
            raise TypeError(f"handler for {pattern!r} must be callable, got {handler!r}")
        if pattern in self._exact:
            raise ValueError(f"a handler is already registered for {pattern!r}")
        if limit is not None:
            if not isinstance(limit, Limit):
                raise TypeError(f"limit for {pattern!r} must be a pyasynq.Limit, got {limit!r}")
            self._limits[pattern] = limit
        self._exact[pattern] = handler
        self._async[pattern] = is_async(handler)
        self._prefixes.append(pattern)
        self._prefixes.sort(key=len, reverse=True)

    @overload
    def handler(
        self, pattern: str, *, limit: Limit | None = None
    ) -> Callable[[Handler], Handler]: ...
    @overload
    def handler(self, pattern: str, fn: Handler, *, limit: Limit | None = None) -> Handler: ...

    def handler(
        self, pattern: str, fn: Handler | None = None, *, limit: Limit | None = None
    ) -> Any:
        """Decorator form of :meth:`handle`; returns the function unchanged."""
        if fn is not None:
            self.handle(pattern, fn, limit=limit)
            return fn

        def register(f: Handler) -> Handler:
            self.handle(pattern, f, limit=limit)
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
        pattern = self._pattern(task_type)
        return None if pattern is None else self._exact[pattern]

    def patterns(self) -> list[str]:
        """The registered types and prefixes, in the order they were registered."""
        return list(self._exact)

    def limits(self) -> dict[str, Limit]:
        """The patterns registered with a limit, and their limits."""
        return dict(self._limits)

    def limit_for(self, task_type: str) -> tuple[str, Limit] | None:
        """The pattern ``task_type`` routes to and its limit, when that pattern has one."""
        pattern = self._pattern(task_type)
        if pattern is None or pattern not in self._limits:
            return None
        return pattern, self._limits[pattern]

    def _pattern(self, task_type: str) -> str | None:
        if task_type in self._exact:
            return task_type
        for p in self._prefixes:
            if task_type.startswith(p):
                return p
        return None

    def resolve(
        self, task_type: str, run_sync: Callable[[Callable[[Task], Any], Task], Awaitable[Any]]
    ) -> AsyncHandler:
        """The async callable that processes ``task_type``: the matched handler (sync ones
        through ``run_sync``) or the not-found handler, wrapped in the middlewares."""
        pattern = self._pattern(task_type)
        inner: AsyncHandler
        if pattern is None:
            inner = handler_not_found
        elif self._async[pattern]:  # inspect's answer per task was a tenth of a no-op's cost
            inner = self._exact[pattern]  # type: ignore[assignment]
        else:
            fn = self._exact[pattern]

            async def inner(task: Task) -> None:
                res = await run_sync(fn, task)
                if inspect.isawaitable(res):  # e.g. a lambda or partial around async code
                    await res

        for mw in reversed(self._middlewares):
            inner = mw(inner)
        return inner


def catch_all(handler: Handler) -> ServeMux:
    """A mux that sends every task type to ``handler`` (Server.run(handler)); the blank
    pattern, which ``handle`` refuses, prefixes every type."""
    mux = ServeMux()
    mux._exact[""] = handler
    mux._async[""] = is_async(handler)
    mux._prefixes = [""]
    return mux


def is_async(fn: object) -> bool:
    """True for ``async def`` functions and objects whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - we need the bound method itself
    return call is not None and inspect.iscoroutinefunction(call)
