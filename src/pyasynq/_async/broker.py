"""AsyncBroker: runs the operations built by ``pyasynq._rdb.ops`` on a Redis connection.

It knows how to send a script or a command, one at a time or pipelined, and how to turn
Redis failures into :class:`~pyasynq.errors.BrokerError`; what to send lives in ``_rdb``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from redis.exceptions import (
    ClusterDownError,
    ConnectionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

from pyasynq._rdb import scripts
from pyasynq._rdb.ops import Call, Command, Op
from pyasynq._rdb.ops import settings as rsettings
from pyasynq.errors import BrokerError, RedisOutOfMemoryError

from .connection import (
    Target,
    clone,
    connect,
    describe,
    explain,
    node_client,
    pubsub_client,
    refused,
)
from .lane import Lane, NotSent

_E = TypeVar("_E", bound=BrokerError)


class AsyncBroker:
    """One Redis connection pool and the scripts run on it.

    ``redis`` is a URL or an existing ``redis.asyncio.Redis``; a client passed in is
    never closed by pyasynq.
    """

    def __init__(self, redis: Target, *, owned: bool | None = None) -> None:
        client, self._owned = connect(redis)
        # Redis or RedisCluster, asyncio or not: redis-py's type hints differ between them.
        self.redis: Any = client
        if owned is not None:
            self._owned = owned
        self._where = describe(self.redis)
        self._nodes: dict[tuple[str, int], AsyncBroker] = {}  # direct node links (cluster)
        self._loaded: set[str] = set()  # scripts sent with SCRIPT LOAD by this broker
        self._legacy = False  # the server predates script flags (Redis < 7): send none
        # Whether Redis ever answered: until then a connection failure is more likely a
        # wrong address, scheme or password than a failover, and is not ridden out.
        self.reached = False
        self._lane = Lane.of(self.redis)  # script calls without redis-py's per-call path

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._where}>"

    @property
    def where(self) -> str:
        """Where Redis is, without credentials (for messages)."""
        return self._where

    async def aclose(self) -> None:
        for node in self._nodes.values():
            await node.aclose()
        self._nodes.clear()
        if self._lane is not None:
            await self._lane.aclose()
        if self._owned:
            await self.redis.aclose()
            # A Sentinel-managed client we made also holds connections to the sentinels.
            manager = getattr(
                getattr(self.redis, "connection_pool", None), "sentinel_manager", None
            )
            for sentinel in getattr(manager, "sentinels", ()):
                with contextlib.suppress(RedisError):
                    await sentinel.aclose()

    def _error(self, message: str, exc: BaseException) -> BrokerError:
        """``message``, or what to check when the failure is one the user must fix."""
        return BrokerError(explain(exc, self.redis, self._where, self.reached) or message)

    async def ping(self) -> None:
        try:
            await self.redis.ping()
        except (RedisError, RedisClusterException) as exc:
            raise self._error(f"cannot reach Redis at {self._where}: {exc}", exc) from exc
        self.reached = True

    async def run(self, op: Op) -> Any:
        """Run one script or command and return its reply."""
        try:
            if isinstance(op, Command):
                reply = await self.redis.execute_command(*op.args)
            else:
                reply = await self._script(op)
        except OutOfMemoryError as exc:
            self.reached = True
            raise await self._full(_name(op), exc) from exc
        except ResponseError as exc:
            self.reached = True
            raise self._error(f"{_name(op)} failed: {exc}", exc) from exc
        except (RedisError, RedisClusterException) as exc:
            message = f"{_name(op)} failed on Redis at {self._where}: {exc}"
            raise self._error(message, exc) from exc
        self.reached = True
        return reply

    async def clock_samples(self, n: int = 3) -> list[tuple[int, int, int]]:
        """``n`` readings of Redis's clock, each as ``(sent, redis, received)`` ns, local
        times from ``time.monotonic_ns()`` (for :meth:`pyasynq.clock.RedisClock.update`)."""
        op = rsettings.read_time()
        samples = []
        for _ in range(n):
            sent = time.monotonic_ns()
            reply = await self.run(op)
            received = time.monotonic_ns()
            samples.append((sent, rsettings.time_result(reply), received))
        return samples

    async def _script(self, op: Call) -> Any:
        """EVALSHA ``op``, loading the script when Redis lacks it: on the lane where there
        is one; through redis-py elsewhere, and when the lane's connection fails or finds
        a replica (redis-py then reconnects and retries as configured)."""
        lane = self._lane
        if lane is not None:
            try:
                try:
                    return await lane.call(
                        ("EVALSHA", self._sha(op.script), len(op.keys), *op.keys, *op.args)
                    )
                except NoScriptError:
                    await self._load(op.script)
                    return await lane.call(
                        ("EVALSHA", self._sha(op.script), len(op.keys), *op.keys, *op.args)
                    )
            except NotSent as exc:
                raise exc.error from exc.error.__cause__
            except (ConnectionError, ReadOnlyError):
                pass
        try:
            return await self.redis.evalsha(self._sha(op.script), len(op.keys), *op.keys, *op.args)
        except NoScriptError:
            await self._load(op.script)
            return await self.redis.evalsha(self._sha(op.script), len(op.keys), *op.keys, *op.args)

    async def _full(self, what: str, exc: BaseException, info: Any = None) -> RedisOutOfMemoryError:
        """The error for a write refused because Redis is full, with its limit and policy
        (from ``info``, else read now)."""
        if info is None:
            info = await self._info()
        return _wrap(RedisOutOfMemoryError(rsettings.out_of_memory_message(what, info)), exc)

    async def _info(self) -> Any:
        with contextlib.suppress(RedisError, RedisClusterException):
            return await self.redis.execute_command(*rsettings.read_info().args)
        return None

    async def redis_settings(self, *, persistence: bool = True) -> rsettings.RedisSettings:
        """The Redis settings that decide whether tasks survive (eviction policy,
        persistence); what cannot be read (INFO or CONFIG refused) is None. Without
        ``persistence`` only INFO memory is read."""
        info: Any = None
        save: Any = None
        with contextlib.suppress(BrokerError):
            info = await self.run(rsettings.read_info() if persistence else
                                  rsettings.read_info("memory"))  # fmt: skip
        if persistence:
            with contextlib.suppress(BrokerError):
                save = await self.run(rsettings.read_save())
        return rsettings.settings_from(info, save)

    async def run_many(self, ops: Sequence[Op]) -> list[Any]:
        """Run many operations in one pipelined round trip (not a transaction). Each
        element of the result is the reply or the BrokerError of that operation."""
        if not ops:
            return []
        try:
            # Load scripts this broker has not sent yet, so the first pipeline keeps its
            # order (a NOSCRIPT resend would run after the commands that followed it).
            for name in {op.script for op in ops if isinstance(op, Call)} - self._loaded:
                await self._load(name)
                self._loaded.add(name)
            replies = await self._pipeline(ops)
            missing = {
                op.script
                for op, r in zip(ops, replies, strict=True)
                if isinstance(op, Call) and isinstance(r, NoScriptError)
            }
            if missing:
                # Load what this server lacks, then resend only those calls.
                for name in missing:
                    await self._load(name)
                again = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
                for i, r in zip(again, await self._pipeline([ops[i] for i in again]), strict=True):
                    replies[i] = r
        except (RedisError, RedisClusterException) as exc:
            raise self._error(f"pipeline failed on Redis at {self._where}: {exc}", exc) from exc
        self.reached = True
        out: list[Any] = []
        info = None  # read once for every refused op
        for op, r in zip(ops, replies, strict=True):
            if isinstance(r, OutOfMemoryError):
                info = info or await self._info() or {}
                out.append(await self._full(_name(op), r, info))
            elif isinstance(r, Exception):
                out.append(_wrap(self._error(f"{_name(op)} failed: {r}", r), r))
            else:
                out.append(r)
        return out

    async def run_durable(self, ops: Sequence[Op], replicas: int, timeout: float) -> list[Any]:
        """Like :meth:`run_many`, then WAIT until ``replicas`` replicas acknowledged the
        writes (or ``timeout`` seconds passed). WAIT counts only the writes of its own
        connection, so the writes and the WAIT share one; in a cluster that is a connection
        to the node owning the first script's slot (the other ops go through the cluster).
        The last element of the result is the number of replicas that acknowledged."""
        calls = [op for op in ops if isinstance(op, Call)]
        try:
            for name in {c.script for c in calls}:
                await self._load(name)
        except (RedisError, RedisClusterException) as exc:
            raise BrokerError(f"loading scripts failed on Redis at {self._where}: {exc}") from exc
        wait = Command(("WAIT", replicas, max(1, int(timeout * 1000))))
        if not _is_cluster(self.redis):
            return await self.run_many([*ops, wait])
        others = [op for op in ops if not isinstance(op, Call)]
        first = await self.run_many(others) if others else []
        try:
            node = self.redis.get_node_from_key(calls[0].keys[0])
        except (RedisError, RedisClusterException) as exc:
            raise BrokerError(f"no master for the queue's slot: {exc}") from exc
        addr = (node.host, int(node.port))
        direct = await self._node_broker(*addr)
        try:
            rest = await direct.run_many([*calls, wait])
        except BrokerError:
            await self._forget_node(addr)
            raise
        if any(isinstance(r, BrokerError) for r in rest):
            # MOVED or a dead node after a failover: relearn who owns the slot.
            await self._forget_node(addr)
        merged = iter(first)
        tail = iter(rest)
        return [next(merged) if not isinstance(op, Call) else next(tail) for op in ops] + [
            next(tail)
        ]

    async def _forget_node(self, addr: tuple[str, int]) -> None:
        stale = self._nodes.pop(addr, None)
        if stale is not None:
            await stale.aclose()
        with contextlib.suppress(RedisError, RedisClusterException):
            await self.redis.nodes_manager.initialize()

    async def _node_broker(self, host: str, port: int) -> AsyncBroker:
        key = (host, port)
        found = self._nodes.get(key)
        if found is None:
            found = type(self)(node_client(self.redis, host, port), owned=True)
            self._nodes[key] = found
        return found

    async def messages(
        self,
        *channels: str,
        on_subscribed: Callable[[], None] | None = None,
        until: Callable[[], bool] | None = None,
    ) -> AsyncIterator[tuple[str, bytes]]:
        """Subscribe to ``channels`` and yield (channel, data) for each message until the
        caller stops iterating, or ``until()`` is true (asked at least once a second).
        Connection failures raise BrokerError; the caller resubscribes."""
        conn, own = pubsub_client(self.redis, channels[0])
        pubsub = conn.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*channels)
            if on_subscribed is not None:
                on_subscribed()
            while until is None or not until():
                msg = await pubsub.get_message(timeout=1.0)
                if msg is not None and msg.get("type") == "message":
                    name = msg["channel"]
                    name = name.decode() if isinstance(name, bytes) else str(name)
                    yield name, bytes(msg["data"])
        except RedisError as exc:
            raise BrokerError(f"subscription to {', '.join(channels)} failed: {exc}") from exc
        finally:
            with contextlib.suppress(RedisError):
                await pubsub.aclose()
                if own:
                    await conn.aclose()

    def clone(self) -> AsyncBroker:
        """A broker with its own connections to the same Redis (for another thread)."""
        return type(self)(clone(self.redis), owned=True)

    def _sha(self, name: str) -> str:
        return scripts.sha(name, legacy=self._legacy)

    async def _load(self, name: str) -> None:
        """SCRIPT LOAD ``name``. A server older than Redis 7 cannot compile the flags line
        (see scripts.ALLOW_OOM): from then on this broker sends the scripts without it."""
        text = scripts.legacy_source(name) if self._legacy else scripts.source(name)
        try:
            await self.redis.script_load(text)
        except ResponseError as exc:
            if self._legacy or name not in scripts.ALLOW_OOM or "compil" not in str(exc):
                raise
            self._legacy = True
            await self.redis.script_load(scripts.legacy_source(name))

    async def _pipeline(self, ops: Sequence[Op]) -> list[Any]:
        lane = self._lane
        if lane is not None:
            try:
                return await lane.call_many(
                    [
                        op.args
                        if isinstance(op, Command)
                        else ("EVALSHA", self._sha(op.script), len(op.keys), *op.keys, *op.args)
                        for op in ops
                    ]
                )
            except NotSent as exc:
                raise exc.error from exc.error.__cause__
            except (ConnectionError, ReadOnlyError):
                pass  # redis-py's pipeline reconnects and sends again, as configured
        pipe = self.redis.pipeline(transaction=False)
        for op in ops:
            if isinstance(op, Command):
                pipe.execute_command(*op.args)
            else:
                # EVALSHA by name: redis-py blocks pipe.evalsha() on a cluster pipeline,
                # but routes the raw command by its first key.
                pipe.execute_command(
                    "EVALSHA", self._sha(op.script), len(op.keys), *op.keys, *op.args
                )
        return list(await pipe.execute(raise_on_error=False))


def _wrap(err: _E, cause: BaseException) -> _E:
    err.__cause__ = cause
    return err


def _is_cluster(client: Any) -> bool:
    return hasattr(client, "get_node_from_key")


# Errors a failover produces; worth retrying once the topology settles.
_TRANSIENT_TYPES = (
    ConnectionError,
    TimeoutError,
    ReadOnlyError,
    ClusterDownError,
    TryAgainError,
)
_TRANSIENT_PREFIXES = ("READONLY", "LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "MOVED")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is a failover-type error rather than a refusal."""
    if refused(exc):  # a redis-py AuthenticationError is a ConnectionError
        return False
    cur: BaseException | None = exc
    while cur is not None:
        if isinstance(cur, _TRANSIENT_TYPES):
            return True
        text = str(cur).split(": ")[-1].upper()
        if text.startswith(_TRANSIENT_PREFIXES):
            return True
        cur = cur.__cause__
    return False


def _name(op: Op) -> str:
    return op.script if isinstance(op, Call) else str(op.args[0])
