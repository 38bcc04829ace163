# Generated from pyasynq/_async by scripts/unasync.py: do not edit.
"""Broker: runs the operations built by ``pyasynq._rdb.ops`` on a Redis connection.

It knows how to send a script or a command, one at a time or pipelined, and how to turn
Redis failures into :class:`~pyasynq.errors.BrokerError`; what to send lives in ``_rdb``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from redis.exceptions import NoScriptError, RedisError, ResponseError

from pyasynq._rdb import scripts
from pyasynq._rdb.ops import Call, Command, Op
from pyasynq.errors import BrokerError

from .connection import Target, clone, connect, describe, pubsub_client


class Broker:
    """One Redis connection pool and the scripts run on it.

    ``redis`` is a URL or an existing ``redis.Redis``; a client passed in is
    never closed by pyasynq.
    """

    def __init__(self, redis: Target, *, owned: bool | None = None) -> None:
        client, self._owned = connect(redis)
        # Redis or RedisCluster, asyncio or not: redis-py's type hints differ between them.
        self.redis: Any = client
        if owned is not None:
            self._owned = owned
        self._where = describe(self.redis)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._where}>"

    def close(self) -> None:
        if self._owned:
            self.redis.close()

    def ping(self) -> None:
        try:
            self.redis.ping()
        except RedisError as exc:
            raise BrokerError(f"cannot reach Redis at {self._where}: {exc}") from exc

    def run(self, op: Op) -> Any:
        """Run one script or command and return its reply."""
        try:
            if isinstance(op, Command):
                return self.redis.execute_command(*op.args)
            try:
                return self.redis.evalsha(scripts.sha(op.script), len(op.keys), *op.keys, *op.args)
            except NoScriptError:
                self.redis.script_load(scripts.source(op.script))
                return self.redis.evalsha(scripts.sha(op.script), len(op.keys), *op.keys, *op.args)
        except ResponseError as exc:
            raise BrokerError(f"{_name(op)} failed: {exc}") from exc
        except RedisError as exc:
            raise BrokerError(f"{_name(op)} failed on Redis at {self._where}: {exc}") from exc

    def run_many(self, ops: Sequence[Op]) -> list[Any]:
        """Run many operations in one pipelined round trip (not a transaction). Each
        element of the result is the reply or the BrokerError of that operation."""
        if not ops:
            return []
        try:
            replies = self._pipeline(ops)
            missing = {
                op.script
                for op, r in zip(ops, replies, strict=True)
                if isinstance(op, Call) and isinstance(r, NoScriptError)
            }
            if missing:
                # Load what this server lacks, then resend only those calls.
                for name in missing:
                    self.redis.script_load(scripts.source(name))
                again = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
                for i, r in zip(again, self._pipeline([ops[i] for i in again]), strict=True):
                    replies[i] = r
        except RedisError as exc:
            raise BrokerError(f"pipeline failed on Redis at {self._where}: {exc}") from exc
        return [
            BrokerError(f"{_name(op)} failed: {r}") if isinstance(r, Exception) else r
            for op, r in zip(ops, replies, strict=True)
        ]

    def messages(
        self, channel: str, on_subscribed: Callable[[], None] | None = None
    ) -> Iterator[bytes]:
        """Subscribe to ``channel`` and yield each message's data until the caller stops
        iterating. Connection failures raise BrokerError; the caller resubscribes."""
        conn, own = pubsub_client(self.redis)
        pubsub = conn.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(channel)
            if on_subscribed is not None:
                on_subscribed()
            while True:
                msg = pubsub.get_message(timeout=1.0)
                if msg is not None and msg.get("type") == "message":
                    yield bytes(msg["data"])
        except RedisError as exc:
            raise BrokerError(f"subscription to {channel} failed: {exc}") from exc
        finally:
            with contextlib.suppress(RedisError):
                pubsub.close()
                if own:
                    conn.close()

    def clone(self) -> Broker:
        """A broker with its own connections to the same Redis (for another thread)."""
        return type(self)(clone(self.redis), owned=True)

    def _pipeline(self, ops: Sequence[Op]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for op in ops:
            if isinstance(op, Command):
                pipe.execute_command(*op.args)
            else:
                # EVALSHA by name: redis-py blocks pipe.evalsha() on a cluster pipeline,
                # but routes the raw command by its first key.
                pipe.execute_command(
                    "EVALSHA", scripts.sha(op.script), len(op.keys), *op.keys, *op.args
                )
        return list(pipe.execute(raise_on_error=False))


def _name(op: Op) -> str:
    return op.script if isinstance(op, Call) else str(op.args[0])
