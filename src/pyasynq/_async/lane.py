"""The script lane: one script call sent on a connection the broker keeps, packed in one C
call, without redis-py's per-command path (the pool checkout and its readiness poll, the
retry wrapper, per-argument encoding, response callbacks). On this machine's slow
syscalls that path costs several times what the round trip itself costs the client.

Only for a plain ``Redis`` client (also one managed by Sentinel): a Cluster, a client
with a single shared connection, or one with another encoding keeps the general path.
The broker falls back to the general path, which reconnects and retries as configured,
when the lane's connection fails or the server turns out to be a replica; see
``AsyncBroker._script``.
"""

from __future__ import annotations

import os
from typing import Any

from redis.exceptions import ReadOnlyError, RedisError, ResponseError

from pyasynq._wire import AsyncWire

_hiredis_pack: Any
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is a default dependency on CPython
    _hiredis_pack = None

KEEP = 4
"""Idle connections a lane keeps between calls; more concurrent calls borrow from the
pool and give the extra connections back."""

_BLOCKING = frozenset({"WAIT", "WAITAOF"})
"""Commands the broker sends that hold the connection (a durable enqueue's WAIT): on a
connection of their own, not on the wire other calls share."""

_forks = [0]  # bumped in a forked child: the connections kept belong to the parent


def _forked() -> None:
    _forks[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class NotSent(Exception):
    """Connecting failed and nothing was sent: ``error`` is redis-py's error, to raise
    as is (the general path would only connect again, after the same retries)."""

    def __init__(self, error: RedisError) -> None:
        super().__init__(str(error))
        self.error = error


class Lane:
    """Connections kept for script calls, taken and put back by whoever sends one (so
    threads sharing a sync client each use their own)."""

    __slots__ = ("_fork", "_idle", "_plain", "_pool", "_wire", "pack")

    def __init__(self, pool: Any, utf8: bool) -> None:
        self._pool = pool
        self._idle: list[Any] = []
        self._wire: Any = None  # the connection all async calls share (pyasynq._wire)
        self._plain = AsyncWire is None  # no wire: calls take a kept connection each
        self._fork = _forks[0]
        if utf8 and _hiredis_pack is not None:
            self.pack: Any = _hiredis_pack
        else:
            # redis-py's own packer, with the connection's encoding (any connection of
            # the pool will do: they share the settings).
            self.pack = None

    @classmethod
    def of(cls, client: Any) -> Lane | None:
        """The lane for ``client``, or None where the general path must stay."""
        pool = getattr(client, "connection_pool", None)
        if (
            pool is None
            or hasattr(client, "get_node_from_key")  # a Cluster
            or getattr(client, "connection", None) is not None  # single_connection_client
            or not hasattr(pool, "get_connection")
            or not hasattr(pool, "connection_kwargs")
        ):
            return None
        kw = pool.connection_kwargs
        utf8 = (
            str(kw.get("encoding", "utf-8")).lower().replace("-", "") == "utf8"
            and kw.get("encoding_errors", "strict") == "strict"
        )
        return cls(pool, utf8)

    async def call(self, args: tuple[Any, ...]) -> Any:
        """Send one command and return its reply; a Redis error reply raises as in
        redis-py (NoScriptError, OutOfMemoryError, ReadOnlyError, ...)."""
        wire = None if self._plain else await self._wired()
        if wire is not None:
            (reply,) = await wire.send([self._pack(wire.conn, args)], 1)
            if isinstance(reply, ResponseError):
                if isinstance(reply, ReadOnlyError):
                    wire.retire()  # a replica now: the next call connects afresh
                raise reply
            return reply
        conn = await self._take()
        try:
            await self._send(conn, [self._pack(conn, args)])
            reply = await conn.read_response()
        except ReadOnlyError:
            # A replica now (a failover): the general path reconnects; so does a
            # Sentinel-managed connection, which turns this into a ConnectionError.
            await conn.disconnect()
            await self._pool.release(conn)
            raise
        except ResponseError:
            await self._put_back(conn)  # an error reply: the connection is fine
            raise
        except BaseException:
            # Send and read disconnect on failure (also when cancelled mid-read).
            await self._pool.release(conn)
            raise
        await self._put_back(conn)
        return reply

    async def call_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send the commands in one write (a pipeline, not a transaction) and return a
        reply per command: the reply, or the ResponseError Redis answered, as redis-py's
        ``pipeline.execute(raise_on_error=False)``."""
        blocking = any(str(args[0]).upper() in _BLOCKING for args in commands)
        wire = None if self._plain or blocking else await self._wired()
        if wire is not None:
            packed = [self._pack(wire.conn, args) for args in commands]
            got: list[Any] = await wire.send(packed, len(commands))
            if any(isinstance(r, ReadOnlyError) for r in got):
                wire.retire()
            return got
        conn = await self._take()
        replies: list[Any] = []
        try:
            await self._send(conn, [self._pack(conn, args) for args in commands])
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)  # as redis-py's pipeline: the others still count
        except BaseException:
            await self._pool.release(conn)  # disconnected by the failed send or read
            raise
        if any(isinstance(r, ReadOnlyError) for r in replies):
            await conn.disconnect()  # a replica now: the next call connects afresh
            await self._pool.release(conn)
        else:
            await self._put_back(conn)
        return replies

    async def _wired(self) -> Any:
        """The wire all calls share, taken over from a pool connection when there is
        none (NotSent when connecting fails); None where it cannot be: calls then take
        a connection each and read through redis-py."""
        wire = self._wire
        if wire is not None and not wire.closed and self._fork == _forks[0]:
            return wire
        self._wire = None  # closed (given back to the pool), or the parent's
        conn = await self._take()
        if self._wire is not None:  # another caller wired up meanwhile
            await self._put_back(conn)
            return self._wire
        self._wire = AsyncWire.attach(self._pool, conn)
        if self._wire is None:
            self._plain = True  # the client's settings rule it out (see attach)
            await self._put_back(conn)
        return self._wire

    async def _take(self) -> Any:
        """A connected connection; NotSent when connecting fails (as the general path
        would, after the same connect retries: the caller must not try again)."""
        if self._fork != _forks[0]:
            self._idle = []  # the parent's sockets: never touch them here
            self._fork = _forks[0]
        conn = self._idle.pop() if self._idle else None
        try:
            if conn is None:
                return await self._pool.get_connection()
            writer = getattr(conn, "_writer", None)  # an asyncio connection's stream
            if writer is not None and writer.transport.is_closing():
                await conn.disconnect()  # the server closed it meanwhile
            if not conn.is_connected:
                await conn.connect()
            return conn
        except RedisError as exc:
            if conn is not None:
                await self._pool.release(conn)
            raise NotSent(exc) from exc

    def _pack(self, conn: Any, args: tuple[Any, ...]) -> bytes:
        if self.pack is not None:
            packed: bytes = self.pack(args)
            return packed
        return b"".join(conn.pack_command(*args))

    async def _send(self, conn: Any, packed: list[bytes]) -> None:
        writer = getattr(conn, "_writer", None)  # an asyncio connection's stream
        if writer is not None and not conn.health_check_interval:
            # What send_packed_command does, without a task per call for its timeout:
            # a write the socket takes whole needs no drain; else drain under the
            # connection's timeout (an empty send only drains).
            writer.writelines(packed)
            if writer.transport.get_write_buffer_size():
                await conn.send_packed_command([], check_health=False)
        else:
            await conn.send_packed_command(packed)

    async def _put_back(self, conn: Any) -> None:
        if len(self._idle) < KEEP:
            self._idle.append(conn)
        else:
            await self._pool.release(conn)

    async def aclose(self) -> None:
        """Give the kept connections back to the pool (which the client then closes)."""
        wire, self._wire = self._wire, None
        if wire is not None and self._fork == _forks[0]:
            await wire.aclose()
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._pool.release(conn)
