"""Server: the standalone processor. Builds the components and runs them on one asyncio
event loop (the heartbeater on its own thread), with asynq's start/stop/shutdown life
cycle (wire spec 5.5).

``run(handler)`` blocks and handles signals: SIGTERM/SIGINT shut down gracefully, SIGTSTP
stops taking new work. ``start(handler)`` runs the server on a background thread for
embedding; ``stop()`` and ``shutdown()`` control it from any thread.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any

from redis.asyncio import Redis

from ._async.broker import AsyncBroker
from ._rdb.ops import Command
from ._server.aggregator import Aggregator
from ._server.base import Component, Runtime
from ._server.forwarder import Forwarder
from ._server.healthcheck import HealthChecker
from ._server.heartbeater import Heartbeater
from ._server.janitor import Janitor
from ._server.processor import Processor
from ._server.recoverer import Recoverer
from ._server.subscriber import Subscriber
from ._server.syncer import Syncer
from ._server.threads import ThreadRunner
from .clock import Clock, RealClock
from .config import ServerConfig
from .errors import BrokerError, ServerClosedError
from .log import Logger
from .mux import Handler, ServeMux

__all__ = ["Server"]


class Server:
    """Processes tasks from Redis with the handlers of a ServeMux.

    ``Server(redis, **config)`` takes a Redis URL or ``redis.asyncio.Redis`` and the fields
    of :class:`~pyasynq.config.ServerConfig` (``queues={"critical": 6, "default": 3}``,
    ``concurrency=10``, ``error_handler=...``, ...), or ``config=ServerConfig(...)``.
    """

    def __init__(
        self,
        redis: str | Redis,
        *,
        config: ServerConfig | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> None:
        if config is not None and options:
            raise TypeError("give either config=ServerConfig(...) or keyword options, not both")
        self.config = config or ServerConfig(**options)
        self._redis = redis
        self._clock: Clock = clock or RealClock()
        self.log = Logger(self.config.logger, self.config.log_level)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._finished = threading.Event()
        self._start_error: BaseException | None = None
        self._state = "new"
        self._rt: Runtime | None = None
        self._processor: Processor | None = None
        self._shutdown_requested: asyncio.Event | None = None

    @property
    def runtime(self) -> Runtime | None:
        """The running server's shared state (for tests and introspection)."""
        return self._rt

    # -- life cycle ---------------------------------------------------------------------

    def run(self, handler: ServeMux | Handler) -> None:
        """Start, then block until SIGTERM/SIGINT (graceful shutdown). SIGTSTP stops
        taking new tasks."""
        asyncio.run(self.serve(handler, signals=True))

    def start(self, handler: ServeMux | Handler) -> None:
        """Start processing on a background thread and return once it is running."""
        self._claim()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve_claimed(handler, signals=False)),
            name="pyasynq-server",
            daemon=True,
        )
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise self._start_error

    def stop(self) -> None:
        """Stop taking new tasks; running ones finish. Safe from any thread."""
        self._call(self._stop)

    def shutdown(self) -> None:
        """Stop, wait up to shutdown_timeout for running tasks, requeue the rest, clear the
        server state, and return. Safe from any thread except the server's own loop."""
        if self._loop is None:
            return
        self._call(self._request_shutdown)
        if self._thread is not None:
            self._thread.join()
        else:
            self._finished.wait()

    async def serve(self, handler: ServeMux | Handler, *, signals: bool = False) -> None:
        """Run the server in the current event loop until shutdown."""
        self._claim()
        await self._serve_claimed(handler, signals=signals)

    # -- internals ----------------------------------------------------------------------

    def _claim(self) -> None:
        if self._state != "new":
            raise ServerClosedError("a Server runs once; create a new one to start again")
        self._state = "starting"

    def _call(self, fn: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    def _stop(self) -> None:
        if self._rt is not None and not self._rt.stopping.is_set():
            self.log.info("Stopping processor")
            self._rt.stopping.set()
            self._rt.status = "stopped"
            if self._processor is not None:
                self._processor.notify()

    def _request_shutdown(self) -> None:
        if self._shutdown_requested is not None:
            self._shutdown_requested.set()

    async def _serve_claimed(self, handler: ServeMux | Handler, *, signals: bool) -> None:
        mux = _as_mux(handler)
        self._loop = asyncio.get_running_loop()
        self._shutdown_requested = asyncio.Event()
        broker = AsyncBroker(self._redis)
        try:
            await broker.ping()
        except BrokerError as exc:
            self._start_error = exc
            self._started.set()
            self._finished.set()
            await broker.aclose()
            raise
        rt = Runtime(self.config, broker, self.log, self._clock, self._redis)
        self._rt = rt
        await self._warn_eviction(broker)
        parts = _Parts(rt, mux)
        self._processor = parts.processor
        rt.status = "active"
        parts.start()
        if signals:
            self._install_signals()
        self.log.info("Starting processing")
        self._state = "running"
        self._started.set()
        try:
            await self._shutdown_requested.wait()
        finally:
            self.log.info("Starting graceful shutdown")
            rt.status = "closed"
            await parts.shutdown()
            await broker.aclose()
            rt.closing.set()
            self._state = "closed"
            self._finished.set()
            self.log.info("Exiting")

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_shutdown)
        if hasattr(signal, "SIGTSTP"):
            loop.add_signal_handler(signal.SIGTSTP, self._stop)

    async def _warn_eviction(self, broker: AsyncBroker) -> None:
        try:
            reply = await broker.run(Command(("CONFIG", "GET", "maxmemory-policy")))
        except BrokerError:
            return  # CONFIG is often disabled on managed Redis
        values = [v.decode() if isinstance(v, bytes) else str(v) for v in reply or []]
        policy = values[1] if len(values) > 1 else ""
        if policy and policy != "noeviction":
            self.log.warn(
                "Redis maxmemory-policy is %r: under memory pressure Redis may evict task "
                "keys and lose tasks. Set `maxmemory-policy noeviction` for a task queue.",
                policy,
            )


def _as_mux(handler: ServeMux | Handler) -> ServeMux:
    if isinstance(handler, ServeMux):
        return handler
    if not callable(handler):
        raise TypeError(f"handler must be a ServeMux or a callable, got {handler!r}")
    mux = ServeMux()
    mux._exact[""] = handler  # a single handler for every type: "" prefixes them all
    mux._prefixes = [""]
    return mux


class _Parts:
    """The components of one running server, started and shut down in asynq's order."""

    def __init__(self, rt: Runtime, mux: ServeMux) -> None:
        self.rt = rt
        self.threads = ThreadRunner(rt.config.concurrency)
        self.syncer = Syncer(rt)
        self.processor = Processor(rt, mux, self.threads, self.syncer)
        self.forwarder = Forwarder(rt, on_forward=self.processor.notify)
        self.recoverer = Recoverer(rt)
        self.subscriber = Subscriber(rt)
        self.janitor = Janitor(rt)
        self.aggregator = Aggregator(rt)
        self.health = HealthChecker(rt)
        self.heartbeater = Heartbeater(rt)
        self.loops: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.heartbeater.start()  # first beat at once, on its own thread
        parts: list[Component] = [
            self.forwarder, self.recoverer, self.syncer, self.subscriber, self.janitor,
        ]  # fmt: skip
        if self.rt.config.group_aggregator is not None:
            parts.append(self.aggregator)
        if self.rt.config.health_check_func is not None:
            parts.append(self.health)
        self.loops = [asyncio.create_task(c.run(), name=f"pyasynq-{c.name}") for c in parts]
        self.loops.append(asyncio.create_task(self.processor.run(), name="pyasynq-processor"))

    async def shutdown(self) -> None:
        # asynq's order: forwarder, processor, recoverer, syncer, subscriber, janitor,
        # aggregator, healthchecker, heartbeater.
        self.forwarder.stop()
        await self.processor.shutdown()
        self.recoverer.stop()
        await self.syncer.exec()  # flush queued writes once
        for c in (self.syncer, self.subscriber, self.janitor, self.aggregator, self.health):
            c.stop()
        await asyncio.gather(*self.loops, return_exceptions=True)
        await asyncio.to_thread(self.heartbeater.stop)
        self.threads.close()
