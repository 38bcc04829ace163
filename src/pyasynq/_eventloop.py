"""Which event loop the server's threads run: asyncio's own, or uvloop when asked for (or,
with ``auto``, when it is installed). uvloop does the loop's per-task bookkeeping in C;
on a no-op drain it moved about a tenth more tasks per second (docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
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
    import uvloop

    new: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return new


def run(coro: Coroutine[Any, Any, T], name: str) -> T:
    """asyncio.run(coro) on the loop ``name`` selects."""
    with asyncio.Runner(loop_factory=factory(name)) as runner:
        return runner.run(coro)
