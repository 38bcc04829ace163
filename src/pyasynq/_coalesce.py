"""Coalescing of concurrent enqueues: many callers' writes share one round trip.

When many coroutines of one process enqueue at once (a web server under load), sending
each script call on its own costs a round trip, a pooled connection and the client's
per-command path each. :class:`AsyncBatcher` sends a call at once when no round trip of
the client is in flight, so a lone enqueue waits for nothing; calls that arrive while one
is in flight wait for it and then leave together in one pipeline, in which the plain
enqueues of a queue share an ``enqueue_batch`` script call (``merge_enqueues``). Each
caller gets its own replies, or its own copy of the error, as if it had sent its ops
alone: the client's retry, conflict and hook logic sits above and does not change.

The sync ``Client`` gets :class:`Batcher`, which sends every call at once (one thread
sends one call at a time; calls of other threads use their own pooled connections).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pyasynq._rdb.ops.base import Op
from pyasynq._rdb.ops.enqueue import SHARED, WHOLE, merge_enqueues
from pyasynq.errors import BrokerError

if TYPE_CHECKING:
    from pyasynq._async.broker import AsyncBroker
    from pyasynq._sync.broker import Broker

_T = TypeVar("_T")

MAX_OPS = 1000
"""Ops per coalesced pipeline: the rest of a burst goes in the next one."""


class AsyncBatcher:
    """Runs one caller's ops alone when idle, or with the other waiting callers' ops in
    one pipeline while a round trip is in flight (see the module docstring)."""

    __slots__ = ("_broker", "_busy", "_coalesce", "_flushes", "_loop", "_shared", "_waiting")

    def __init__(self, broker: AsyncBroker, *, coalesce: bool = True) -> None:
        self._broker = broker
        self._coalesce = coalesce  # False: every call goes straight to the broker
        self._busy = False  # a round trip (a lone call or a flush) is in flight
        self._waiting: list[tuple[Sequence[Op], asyncio.Future[list[Any]]]] = []
        self._flushes: set[asyncio.Task[None]] = set()  # strong references while running
        self._shared: dict[str, asyncio.Future[Any]] = {}  # see once()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of what is in flight

    async def once(self, key: str, fn: Callable[[], Awaitable[_T]]) -> _T:
        """``fn()``, shared by the callers that ask while it runs: a burst of first
        enqueues reads the topology once, not once per caller (each on a pooled
        connection, which a burst of 1,000 would exhaust)."""
        self._busy_here()  # drops futures of another loop
        fut = self._shared.get(key)
        while fut is not None:
            try:
                result: _T = await asyncio.shield(fut)
                return result
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not fut.cancelled() or (task is not None and task.cancelling()):
                    raise  # we are the ones cancelled
                fut = self._shared.get(key)  # the caller running fn was: ask again
        fut = self._shared[key] = asyncio.get_running_loop().create_future()
        try:
            value = await fn()
        except Exception as exc:
            if not fut.get_loop().is_closed():  # else nobody waits (a dead loop's task)
                fut.set_exception(_own(exc))
                fut.exception()  # retrieved: no "never retrieved" warning if none waited
            raise
        except BaseException:
            if not fut.get_loop().is_closed():
                fut.cancel()  # cancelled: the callers waiting on it run fn themselves
            raise
        else:
            fut.set_result(value)
            return value
        finally:
            if self._shared.get(key) is fut:  # (another loop's state may have replaced it)
                del self._shared[key]

    async def run(self, op: Op) -> Any:
        """Run one op; its reply, or raise its BrokerError (as ``AsyncBroker.run``)."""
        if not self._coalesce:
            return await self._broker.run(op)
        if not self._busy_here():
            self._busy = True
            try:
                return await self._broker.run(op)
            finally:
                self._next()
        reply = (await self._enqueue([op]))[0]
        if isinstance(reply, BrokerError):
            raise reply
        return reply

    async def run_many(self, ops: Sequence[Op]) -> list[Any]:
        """Run ops in one pipeline; a reply or BrokerError per op (as ``run_many``)."""
        if not self._coalesce:
            return await self._broker.run_many(ops)
        if not self._busy_here():
            self._busy = True
            try:
                return await self._broker.run_many(ops)
            finally:
                self._next()
        return await self._enqueue(ops)

    def _busy_here(self) -> bool:
        """Whether a round trip is in flight on the running loop. State left by another
        loop (one closed with calls still in flight) is dropped: those calls are gone, and
        waiting for them would hang this caller."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._busy = False
            self._waiting = []
            self._shared = {}
        return self._busy

    async def _enqueue(self, ops: Sequence[Op]) -> list[Any]:
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((ops, fut))
        return await fut

    def _next(self) -> None:
        """The round trip in flight ended: send what waited meanwhile, else go idle."""
        # A caller cancelled while waiting has left: its ops are not sent.
        waiting = [w for w in self._waiting if not w[1].done()]
        if not waiting:
            self._waiting.clear()
            self._busy = False
            return
        batch: list[tuple[Sequence[Op], asyncio.Future[list[Any]]]] = []
        size = 0
        for i, w in enumerate(waiting):
            if batch and size + len(w[0]) > MAX_OPS:
                self._waiting = waiting[i:]
                break
            batch.append(w)
            size += len(w[0])
        else:
            self._waiting = []
        task = asyncio.get_running_loop().create_task(self._flush(batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[Sequence[Op], asyncio.Future[list[Any]]]]) -> None:
        try:
            ops, where = merge_enqueues([ops for ops, _ in batch])
            replies = await self._broker.run_many(ops)
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(_own(exc))
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, fut), mine in zip(batch, where, strict=True):
                if not fut.done():
                    fut.set_result([_reply(replies[i], pos) for i, pos in mine])
        finally:
            self._next()


class Batcher:
    """The sync Client's: every call is sent at once (see the module docstring)."""

    __slots__ = ("_broker",)

    def __init__(self, broker: Broker, *, coalesce: bool = True) -> None:
        self._broker = broker

    def once(self, key: str, fn: Callable[[], _T]) -> _T:
        """``fn()`` (one thread asks one thing at a time)."""
        return fn()

    def run(self, op: Op) -> Any:
        """Run one op; its reply, or raise its BrokerError (as ``Broker.run``)."""
        return self._broker.run(op)

    def run_many(self, ops: Sequence[Op]) -> list[Any]:
        """Run ops in one pipeline; a reply or BrokerError per op (as ``run_many``)."""
        return self._broker.run_many(ops)


def _reply(reply: Any, pos: int) -> Any:
    """One caller's reply: the op's, or its task's element of an enqueue_batch reply; an
    error of a shared op is copied for each caller."""
    if pos == WHOLE:
        return reply
    if isinstance(reply, BaseException):
        return _own(reply)
    if pos == SHARED:
        return reply
    if not isinstance(reply, list) or len(reply) <= pos:
        return BrokerError(f"unexpected enqueue_batch reply {reply!r}")
    return reply[pos]


def _own(reply: Any) -> Any:
    """A copy of an error shared by a whole pipeline, so each caller raises its own (one
    exception object raised in two coroutines would mix their tracebacks)."""
    if not isinstance(reply, BaseException):
        return reply
    if isinstance(reply, BrokerError):
        err: BaseException = type(reply)(str(reply))
    elif isinstance(reply, asyncio.CancelledError | Exception):
        try:
            err = type(reply)(*reply.args)
        except Exception:
            err = BrokerError(f"the coalesced enqueue failed: {reply!r}")
    else:
        return reply
    err.__cause__ = reply.__cause__ or reply
    return err
