"""The async lane's wire: a kept connection driven by an asyncio Protocol of pyasynq's
own instead of redis-py's StreamReader (which costs a future, a wake-up and a timeout
per read). redis-py connects it (TLS, AUTH/HELLO, SELECT, Sentinel, unix sockets);
the wire then takes the transport over, writes packed requests with ``transport.write``
and feeds what arrives to a hiredis Reader, resolving a FIFO of waiters. Concurrent
callers share it: many requests in flight, replies in order.

Async only: the sync twin of ``pyasynq._async.lane`` gets ``NoWire`` in its place
(``scripts/unasync.py`` maps the name) and reads through redis-py as before.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from redis.exceptions import ConnectionError, InvalidResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

_hiredis: Any
try:
    import hiredis as _hiredis
except ImportError:  # pragma: no cover - hiredis is a default dependency on CPython
    _hiredis = None

_Push: Any = getattr(_hiredis, "PushNotification", ())  # isinstance(x, ()) is False

NoWire: Any = None
"""The sync lane's stand-in for ``AsyncWire``: no wire, redis-py reads the replies."""

_HIGH_WATER = 256 * 1024  # bytes the transport buffers before writers wait for a drain


class _Request:
    __slots__ = ("future", "left", "replies")

    def __init__(self, future: asyncio.Future[list[Any]], n: int) -> None:
        self.future = future
        self.left = n
        self.replies: list[Any] = []


class AsyncWire(asyncio.Protocol):
    """One taken-over connection; ``send`` writes requests and awaits their replies."""

    def __init__(self, pool: Any, conn: Any, transport: Any) -> None:
        self.pool = pool
        self.conn = conn
        self.closed = False  # no new requests: failed, lost or retired
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._waiting: collections.deque[_Request] = collections.deque()
        self._timeout: float | None = conn.socket_timeout or None
        self._timer: asyncio.TimerHandle | None = None
        self._progress = 0.0  # loop time of the last request sent to an idle wire or reply
        self._drained: asyncio.Future[None] | None = None  # set while writing is paused
        self._released = False
        self._releasing: asyncio.Task[None] | None = None
        self._stream: Any = None  # redis-py's protocol, given back on a clean close
        parser: Any = conn._parser
        kwargs: dict[str, Any] = {
            "protocolError": InvalidResponse,
            # redis-py's mapping, so NoScriptError, ReadOnlyError, ... come out as there.
            "replyError": parser.parse_error,
            "errors": conn.encoder.encoding_errors,
        }
        if conn.encoder.decode_responses:
            kwargs["encoding"] = conn.encoder.encoding
        self._reader = _hiredis.Reader(**kwargs)

    @classmethod
    def attach(cls, pool: Any, conn: Any) -> AsyncWire | None:
        """Take ``conn`` (connected, checked out of ``pool``) over; None when it cannot
        be (no hiredis, an unknown protocol, a health check to keep, or bytes already read)."""
        writer = getattr(conn, "_writer", None)
        reader = getattr(conn, "_reader", None)
        if (
            _hiredis is None
            or writer is None
            or conn.health_check_interval
            or str(getattr(conn, "protocol", 2) or 2) not in ("2", "3")
            or not hasattr(getattr(conn, "_parser", None), "parse_error")
            or (reader is not None and len(getattr(reader, "_buffer", b"")))
        ):
            return None
        transport = writer.transport
        if transport.is_closing():
            return None
        wire = cls(pool, conn, transport)
        wire._stream = transport.get_protocol()
        transport.set_protocol(wire)
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        return wire

    async def send(self, packed: list[bytes], n: int) -> list[Any]:
        """Write ``packed`` (``n`` commands) and return their ``n`` replies, error replies
        as exception instances. ConnectionError when the wire fails; TimeoutError when no
        reply came within the connection's socket_timeout (the wire is then closed)."""
        if self.closed:
            raise ConnectionError("the lane's connection is closed")
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        if not self._waiting:
            self._progress = self._loop.time()
            if self._timeout is not None and self._timer is None:
                self._timer = self._loop.call_at(self._progress + self._timeout, self._check)
        self._waiting.append(_Request(future, n))
        self._transport.writelines(packed)
        if self._drained is not None:
            await asyncio.shield(self._drained)
        # A cancelled caller leaves its request queued: its replies are read and dropped.
        return await future

    # asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        waiting = self._waiting
        try:
            while waiting:
                reply = self._reader.gets()
                if reply is False:
                    break
                if isinstance(reply, _Push):
                    continue  # RESP3 out-of-band (e.g. a maintenance notice): no reply
                request = waiting[0]
                request.replies.append(reply)
                request.left -= 1
                if request.left == 0:
                    waiting.popleft()
                    if not request.future.done():  # else cancelled: dropped
                        request.future.set_result(request.replies)
            else:
                extra = self._reader.gets()
                while isinstance(extra, _Push):
                    extra = self._reader.gets()
                if extra is not False:
                    raise InvalidResponse("a reply nobody asked for")
        except InvalidResponse as exc:
            self._fail(ConnectionError(f"the lane's connection got a bad reply: {exc}"))
            return
        self._progress = self._loop.time()
        if not waiting and self.closed:
            self._fail(ConnectionError("the lane's connection was retired"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"the lane's connection was closed: {exc or 'by the server'}"))

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost fails the waiters

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    # failure

    def retire(self) -> None:
        """Take no new requests; close once the replies in flight are in (a replica)."""
        self.closed = True
        if not self._waiting:
            self._fail(ConnectionError("the lane's connection was retired"))

    def _check(self) -> None:
        self._timer = None
        if not self._waiting or self._timeout is None:
            return
        deadline = self._progress + self._timeout
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._check)
            return
        self._fail(
            RedisTimeoutError(
                f"Redis sent no reply within socket_timeout ({self._timeout} s) on the"
                " lane's connection: it is closed, the next call connects again"
            )
        )

    def _fail(self, exc: Exception, schedule: bool = True) -> None:
        """Close the connection, fail every waiter with ``exc`` and give the connection
        back to the pool disconnected."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, collections.deque()
        for request in waiting:
            if not request.future.done():
                request.future.set_exception(exc)
        self.resume_writing()  # writers waiting for a drain then find their failed future
        self._transport.close()
        if schedule and not self._released:
            self._released = True
            self._releasing = self._loop.create_task(self._release())

    async def _release(self) -> None:
        # Never back to the pool usable: redis-py's stream no longer reads this socket.
        await self.conn.disconnect(nowait=True)
        await self.pool.release(self.conn)

    async def aclose(self) -> None:
        """Give the connection back to the pool (the lane is closing): as redis-py had it
        when nothing is in flight (a client handed in keeps its connection), else closed."""
        if (
            not self.closed
            and not self._waiting
            and not self._reader.has_data()
            and self._drained is None
            and not self._transport.is_closing()
        ):
            self.closed = True
            self._released = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._transport.set_protocol(self._stream)
            self._transport.set_write_buffer_limits()  # the transport's defaults again
            await self.pool.release(self.conn)
            return
        self._fail(ConnectionError("the lane was closed"), schedule=False)
        if not self._released:
            self._released = True
            await self._release()
