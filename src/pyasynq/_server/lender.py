"""The Redis client a worker lends to its handlers (``current_task().redis``).

A handler that makes one Redis call of its own on its own client pays one socket write
and one read per call; with many handlers running at once on one event loop those writes
are most of what the loop does. :class:`CoalescingRedis` is a ``redis.asyncio.Redis``
whose commands, when issued by concurrent callers in the same event-loop iteration,
leave together in one pipeline (``transaction=False``): one write and one read for the
round, and each caller gets its own reply or its own exception, as if it had sent its
command alone (a WRONGTYPE for one does not fail the others). The enqueue path's
coalescing (``pyasynq._coalesce``) has the same aim; this one is for arbitrary commands.

Commands that hold or change their connection (blocking pops, WAIT, SELECT, WATCH/MULTI,
CLIENT ..., DEBUG, SUBSCRIBE) go straight through, un-coalesced; pipelines, transactions
and pubsub are redis-py's own. A failed round (a connection lost after redis-py's retry
policy gave up) fails each of its callers with a copy of the error.

:class:`Lender` makes the client on first use (no connections for workers whose handlers
never ask) with its own pool, so handler traffic never waits behind the worker's dequeues,
and closes it at shutdown, after the handlers finished.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from pyasynq._async.connection import clone, connect
from pyasynq._coalesce import _own

if TYPE_CHECKING:
    from pyasynq._async.connection import AnyRedis, Target
    from pyasynq.log import Logger

MAX_COMMANDS = 1000
"""Commands per pipeline: the rest of a burst goes in the next one."""

# Commands (first word) that block, or hold or change the state of their connection.
_STRAIGHT = frozenset(
    {
        "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX",
        "BZMPOP", "WAIT", "WAITAOF", "WATCH", "UNWATCH", "MULTI", "EXEC", "DISCARD",
        "SELECT", "AUTH", "HELLO", "RESET", "QUIT", "CLIENT", "DEBUG", "MONITOR",
        "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE",
        "SUNSUBSCRIBE", "READONLY", "READWRITE", "SHUTDOWN", "SYNC", "PSYNC", "FAILOVER",
    }
)  # fmt: skip
_BLOCK_IF_ASKED = frozenset({"XREAD", "XREADGROUP"})  # block only with a BLOCK argument


_PIPE, _STRAIGHT_ROUTE, _ASK = 0, 1, 2  # routes of a command name


def _route(name: object) -> int:
    text = name.decode() if isinstance(name, bytes) else str(name)
    word = text.split(" ", 1)[0].upper()
    if word in _STRAIGHT:
        return _STRAIGHT_ROUTE
    return _ASK if word in _BLOCK_IF_ASKED else _PIPE


class CoalescingRedis(Redis):
    """A ``redis.asyncio.Redis`` that sends the commands of concurrent callers issued in
    the same event-loop iteration in one pipeline (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self._rounds: set[asyncio.Task[None]] = set()  # strong references while running
        self._route: dict[object, int] = {}  # command name -> _PIPE, _STRAIGHT_ROUTE or _ASK

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Queue the command for this iteration's round, or send it straight through when
        it blocks or holds its connection; its reply, or raise its error."""
        route = self._route.get(args[0])
        if route is None:
            route = self._route[args[0]] = _route(args[0])
        direct = route == _STRAIGHT_ROUTE or (
            route == _ASK and any(a in (b"BLOCK", "BLOCK") for a in args)
        )
        if direct or self.connection is not None:  # (a single-connection client)
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((args, options, fut))
        if len(self._pending) == 1:
            # Its first step runs after the callbacks already ready in this iteration:
            # the commands they issue join this round.
            self._start_round()
        return await fut

    def _start_round(self) -> None:
        task = asyncio.get_running_loop().create_task(self._round())
        self._rounds.add(task)
        task.add_done_callback(self._rounds.discard)

    async def _round(self) -> None:
        batch = self._pending[:MAX_COMMANDS]
        del self._pending[:MAX_COMMANDS]
        if self._pending:
            self._start_round()
        batch = [b for b in batch if not b[2].done()]  # a cancelled caller has left
        if not batch:
            return
        try:
            if len(batch) == 1:  # alone: no pipeline to build
                args, options, _ = batch[0]
                replies = [await super().execute_command(*args, **options)]  # type: ignore[no-untyped-call]
            else:
                pipe = self.pipeline(transaction=False)
                for args, options, _ in batch:
                    pipe.pipeline_execute_command(*args, **options)  # type: ignore[no-untyped-call]
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            # The whole round failed (a lost connection after redis-py's retries, or
            # this task cancelled): each caller gets its own copy of the error.
            for _, _, fut in batch:
                if fut.done():
                    continue
                if isinstance(exc, Exception):
                    fut.set_exception(exc if len(batch) == 1 else _own(exc))
                else:
                    fut.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, fut), reply in zip(batch, replies, strict=True):
            if fut.done():
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Wait for the rounds in flight, then close (and the pool, when owned)."""
        while self._rounds:
            await asyncio.wait(set(self._rounds))
        await super().aclose(close_connection_pool)


def lend(target: AnyRedis | Target, *, own: bool) -> AnyRedis:
    """A client for handlers with its own connections to ``target``: a coalescing one,
    or for a Cluster a plain ``RedisCluster`` (its commands are routed per slot, so they
    are not coalesced). ``own``: ``target`` is the caller's (a URL or options made it),
    so the returned client may take it over; else it is copied."""
    base: Any = target if own else clone(target)  # type: ignore[arg-type]
    if isinstance(base, RedisCluster):
        return base
    client: Any = CoalescingRedis.from_pool(base.connection_pool)
    return client  # type: ignore[no-any-return]


class Lender:
    """Makes the handlers' client on first use and closes it at shutdown."""

    def __init__(self, worker_redis: AnyRedis, other: Target | None, log: Logger) -> None:
        self._worker_redis = worker_redis
        self._log = log
        self._other = other  # ServerConfig.handler_redis
        self._client: AnyRedis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False  # after shutdown: no new client

    def client(self) -> AnyRedis:
        """The lent client; RuntimeError off the worker's event loop (a ``def`` handler's
        thread)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or (self._loop is not None and loop is not self._loop):
            raise RuntimeError(
                "current_task().redis is an asyncio client for async def handlers, on the "
                "worker's event loop; a def handler runs on a worker thread: give it a "
                "redis.Redis client of its own (one per process; redis-py's sync client "
                "is thread-safe)"
            )
        if self._closed:
            raise RuntimeError(
                "current_task().redis is closed: the worker has shut down (a handler still "
                "running after the shutdown cannot use it)"
            )
        if self._client is None:
            self._loop = loop
            if self._other is None:
                self._client = lend(self._worker_redis, own=False)
            else:
                made, owned = connect(self._other)
                self._client = lend(made, own=owned)
        return self._client

    async def aclose(self) -> None:
        """Close the client, if one was made (a failure is logged, not raised: the
        shutdown goes on)."""
        self._closed = True
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.aclose()
        except Exception as exc:
            self._log.warn("processor: closing the handlers' Redis client failed: %s", exc)
