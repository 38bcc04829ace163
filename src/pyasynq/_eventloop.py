"""Which event loop the server's threads run: asyncio's own, or uvloop when asked for (or,
with ``auto``, when it is installed). uvloop does the loop's per-task bookkeeping in C;
on a no-op drain it moved about a tenth more tasks per second (docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

T = TypeVar("T")

EventLoopName = Literal["auto", "asyncio", "uvloop"]
NAMES: tuple[str, ...] = ("auto", "asyncio", "uvloop")


def check(name: object) -> None:
    """Refuse an unknown name, or ``uvloop`` where it is not installed."""
    if name not in NAMES:
        raise ValueError(f"event_loop must be one of {', '.join(NAMES)}; got {name!r}")
    if name == "uvloop" and not available():
        raise ValueError(
            "event_loop='uvloop' needs uvloop: pip install 'pyasynq[uvloop]' "
            "(or use event_loop='auto', which falls back to asyncio)"
        )


def available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for ``name``; None means asyncio's default."""
    if name == "asyncio" or (name == "auto" and not available()):
        return None
    try:
        import uvloop
    except ImportError:  # found but unusable (a broken build): auto falls back
        if name == "auto":
            return None
        raise

    new: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return new


LINGER = 1.0  # seconds the loop's close waits for tasks that ignore their cancellation
_abandoned: set[asyncio.Task[Any]] = set()  # kept, so none is reported as destroyed pending


def abandon(task: asyncio.Task[Any]) -> None:
    """Give up on ``task`` (it ignored its cancellation): the loop's close will not wait
    for it again."""
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    _abandoned.add(task)


def run(coro: Coroutine[Any, Any, T], name: str, linger: float = LINGER) -> T:
    """asyncio.run(coro) on the loop ``name`` selects, with a bounded close.

    asyncio.run cancels the tasks left over and then waits for all of them: a handler that
    catches CancelledError and runs on would keep the process alive for ever. Here the
    close waits at most ``linger`` seconds for each stage and abandons what is left (the
    server has requeued the tasks and said which handlers ran on)."""
    make = factory(name)
    loop = make() if make is not None else asyncio.new_event_loop()
    if make is None:
        asyncio.set_event_loop(loop)
    # Our own default executor (asyncio.to_thread), so that its close can be bounded:
    # loop.shutdown_default_executor() joins its threads for ever.
    executor = ThreadPoolExecutor(thread_name_prefix="asyncio")
    loop.set_default_executor(executor)
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            _cancel_rest(loop, linger)
            _bounded(loop, loop.shutdown_asyncgens(), linger)
            _shutdown(executor, linger)
        finally:
            if make is None:
                asyncio.set_event_loop(None)
            loop.close()


def _cancel_rest(loop: asyncio.AbstractEventLoop, linger: float) -> None:
    rest = asyncio.all_tasks(loop) - _abandoned
    if not rest:
        return
    for t in rest:
        t.cancel()
    loop.run_until_complete(asyncio.wait(rest, timeout=linger))
    for t in rest:
        if not t.done():
            abandon(t)
        elif not t.cancelled() and t.exception() is not None:
            loop.call_exception_handler({
                "message": "unhandled exception during shutdown",
                "exception": t.exception(),
                "task": t,
            })  # fmt: skip


def _bounded(loop: asyncio.AbstractEventLoop, aw: Coroutine[Any, Any, None], linger: float) -> None:
    with contextlib.suppress(TimeoutError):
        loop.run_until_complete(asyncio.wait_for(aw, linger))


def _shutdown(executor: ThreadPoolExecutor, linger: float) -> None:
    """Wait up to ``linger`` seconds for the executor's threads. One that never returns
    (asyncio.to_thread in a handler) is left behind: the process owner decides about it
    (Server.run names it, ``pyasynq worker`` exits without it)."""
    waiter = threading.Thread(target=executor.shutdown, name="pyasynq-executor-close", daemon=True)
    waiter.start()
    waiter.join(linger)
