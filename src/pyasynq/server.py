"""Server: the standalone processor. Builds the components and runs them on one asyncio
event loop (the heartbeater on its own thread), with asynq's start/stop/shutdown life
cycle (wire spec 5.5).

``run(handler)`` blocks and handles signals: SIGTERM/SIGINT shut down gracefully, SIGTSTP
stops taking new work. ``start(handler)`` runs the server on a background thread for
embedding; ``stop()`` and ``shutdown()`` control it from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from functools import partial
from typing import Any

from . import _clocksync, _eventloop
from ._async.broker import AsyncBroker
from ._async.connection import Target
from ._server import metrics_hook, watchdog
from ._server.aggregator import Aggregator
from ._server.base import Component, Runtime
from ._server.forwarder import Forwarder
from ._server.healthcheck import HealthChecker
from ._server.heartbeater import Heartbeater
from ._server.janitor import Janitor
from ._server.limiter import Limiter
from ._server.processor import Processor
from ._server.recoverer import Recoverer
from ._server.subscriber import Subscriber
from ._server.syncer import Syncer
from ._server.threads import ThreadRunner
from ._server.watchdog import Watchdog
from .clock import Clock, RealClock, RedisClock
from .config import ServerConfig
from .embedded import default_url
from .errors import BrokerError, ServerClosedError
from .log import Logger
from .mux import Handler, ServeMux, catch_all

__all__ = ["Server"]

STARTUP_TIMEOUT = 5.0  # seconds to wait for Redis at start (go-redis' dial timeout)
STOP_TIMEOUT = 5.0  # stop() waits at most this long for a dequeue in flight


class Server:
    """Processes tasks from Redis with the handlers of a ServeMux.

    ``Server(redis, **config)`` takes a Redis URL or ``redis.asyncio.Redis`` and the fields
    of :class:`~pyasynq.config.ServerConfig` (``queues={"critical": 6, "default": 3}``,
    ``concurrency=10``, ``error_handler=...``, ...), or ``config=ServerConfig(...)``.
    Without ``redis``: ``$PYASYNQ_REDIS_URL``, ``$REDIS_URL``, else the shared embedded
    Redis of ``./.pyasynq/redis`` (docs/embedded.md).
    """

    def __init__(
        self,
        redis: Target | None = None,
        *,
        config: ServerConfig | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> None:
        if config is not None and options:
            raise TypeError("give either config=ServerConfig(...) or keyword options, not both")
        self.config, self._metrics = metrics_hook.attach(config or ServerConfig(**options))
        self._redis = redis if redis is not None else default_url()
        # Redis's time unless told otherwise: a host clock that is off must not expire
        # leases or forward scheduled tasks early.
        self._clock: Clock = clock or (
            RealClock() if self.config.clock_sync_interval is None else RedisClock()
        )
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
        self._shutdown_flag = False  # shutdown asked before the loop existed
        self._closed: asyncio.Event | None = None
        self._watchdog: Watchdog | None = None  # run() only: see _server/watchdog.py

    @property
    def runtime(self) -> Runtime | None:
        """The running server's shared state (for tests and introspection)."""
        return self._rt

    @property
    def status(self) -> str:
        """asynq's server state: ``new``, ``active``, ``stopped`` or ``closed``."""
        if self._state == "closed":
            return "closed"
        if self._rt is not None:
            return self._rt.status
        return "new"

    # -- life cycle ---------------------------------------------------------------------

    def run(self, handler: ServeMux | Handler) -> None:
        """Start, then block until SIGTERM/SIGINT (graceful shutdown). SIGTSTP stops
        taking new tasks. Returns within about shutdown_timeout plus a few seconds of the
        signal, whatever the handlers do; a non-daemon thread a handler left running is
        named in a warning (the interpreter waits for it at exit)."""
        self._run(handler)

    def _run(self, handler: ServeMux | Handler, exits: bool = False) -> list[threading.Thread]:
        """:meth:`run`; returns the non-daemon threads started meanwhile that still run.
        ``exits``: the caller ends the process without them (``pyasynq worker``)."""
        before = set(threading.enumerate())
        self._watchdog = Watchdog(self._redis, self._finished)
        try:
            _eventloop.run(self.serve(handler, signals=True), self.config.event_loop)
        finally:
            self._watchdog.cancel()
        return self._lingering_threads(before, exits)

    def _lingering_threads(
        self, before: set[threading.Thread], exits: bool
    ) -> list[threading.Thread]:
        until = time.monotonic() + _eventloop.LINGER
        left = []
        for t in threading.enumerate():
            if t in before or t.daemon or t is threading.current_thread():
                continue
            t.join(max(0.0, until - time.monotonic()))
            if t.is_alive():
                left.append(t)
        outcome = (
            "the worker exits without it" if exits
            else "Python waits for non-daemon threads before the process can exit"
        )  # fmt: skip
        for t in left:
            if t.name.startswith("asyncio_"):  # see _eventloop.run
                self.log.warn(
                    "thread %r (non-daemon) of the event loop's executor is still running "
                    "after shutdown: a function a handler gave to asyncio.to_thread or "
                    "run_in_executor has not returned; %s", t.name, outcome,
                )  # fmt: skip
            else:
                self.log.warn(
                    "thread %r (non-daemon) is still running after shutdown; %s. Start it "
                    "with daemon=True, or end it in the handler that started it",
                    t.name, outcome,
                )  # fmt: skip
        return left

    def start(self, handler: ServeMux | Handler) -> None:
        """Start processing on a background thread and return once it is running.
        Raises BrokerError when Redis cannot be reached (then the server is closed)."""
        mux = _as_mux(handler)
        self._claim()
        self._thread = threading.Thread(
            target=self._thread_main, args=(mux,), name="pyasynq-server", daemon=True
        )
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error

    def stop(self) -> None:
        """Stop taking new tasks; running ones finish. Safe from any thread; from another
        thread than the server's it returns once no new task can start."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if _running_loop() is loop:
            self._stop()
            return
        try:
            done = asyncio.run_coroutine_threadsafe(self._stop_and_wait(), loop)
        except RuntimeError:  # the loop closed meanwhile
            return
        with contextlib.suppress(Exception):
            done.result(STOP_TIMEOUT)

    async def _stop_and_wait(self) -> None:
        self._stop()
        if self._processor is not None:
            await self._processor.stopped()

    def shutdown(self) -> None:
        """Stop, wait up to shutdown_timeout for running tasks, requeue the rest, clear the
        server state, and return. Safe from any thread except the server's own loop (there,
        ``await server.ashutdown()``)."""
        loop = self._loop
        if loop is None:
            self._shutdown_flag = True  # not started yet: serve() ends at once
            return
        if _running_loop() is loop:
            raise RuntimeError(
                "shutdown() would block the server's own event loop; use "
                "`await server.ashutdown()` there"
            )
        self._call(self._request_shutdown)
        if self._thread is not None:
            self._thread.join()
        else:
            self._finished.wait()

    async def ashutdown(self) -> None:
        """:meth:`shutdown` for async code, from the server's loop or any other."""
        loop = self._loop
        if loop is None:
            self._shutdown_flag = True
            return
        if _running_loop() is not loop:
            await asyncio.to_thread(self.shutdown)
            return
        self._request_shutdown()
        assert self._closed is not None
        await self._closed.wait()

    async def serve(self, handler: ServeMux | Handler, *, signals: bool = False) -> None:
        """Run the server in the current event loop until shutdown."""
        mux = _as_mux(handler)
        self._claim()
        await self._serve_claimed(mux, signals=signals)

    # -- internals ----------------------------------------------------------------------

    def _claim(self) -> None:
        if self._state != "new":
            raise ServerClosedError("a Server runs once; create a new one to start again")
        self._state = "starting"

    def _thread_main(self, mux: ServeMux) -> None:
        try:
            _eventloop.run(self._serve_claimed(mux, signals=False), self.config.event_loop)
        except BaseException as exc:
            # A start failure is re-raised by start(); anything later is only logged,
            # so that it does not end as an unhandled exception in a thread.
            if self._start_error is None:
                self.log.error("server stopped by an unexpected error: %r", exc)

    def _call(self, fn: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if _running_loop() is loop:
            fn()
        else:
            # RuntimeError: the loop closed meanwhile, nothing left to stop.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn)

    def _stop(self) -> None:
        if self._rt is not None and not self._rt.stopping.is_set():
            self.log.info("Stopping processor")
            self._rt.status = "stopped"
            self._rt.stopping.set()
            if self._processor is not None:
                self._processor.notify()

    def _on_signal(self, inner: Any, signum: int, frame: Any) -> None:
        assert self._watchdog is not None
        self._watchdog.rt = self._rt
        self._watchdog.arm(self.config.seconds("shutdown_timeout") + watchdog.GRACE)
        if callable(inner):
            inner(signum, frame)

    def _request_shutdown(self) -> None:
        if self._shutdown_requested is not None:
            self._shutdown_requested.set()

    async def _serve_claimed(self, mux: ServeMux, *, signals: bool) -> None:
        self._loop = asyncio.get_running_loop()
        self._shutdown_requested = asyncio.Event()
        self._closed = asyncio.Event()
        if self._shutdown_flag:
            self._shutdown_requested.set()
        try:
            broker = AsyncBroker(self._redis)
        except BaseException as exc:
            self._fail_start(exc)
            raise
        try:
            parts = await self._startup(broker, mux)
        except BaseException as exc:
            await broker.aclose()
            self._fail_start(exc)
            raise
        if signals:
            self._install_signals()
        self.log.info("Starting processing")
        self._state = "running"
        self._started.set()
        try:
            await self._shutdown_requested.wait()
        finally:
            self.log.info("Starting graceful shutdown")
            rt = parts.rt
            rt.status = "closed"
            try:
                await parts.shutdown()
            finally:
                await broker.aclose()
                if self._metrics is not None:
                    self._metrics.close()
                rt.closing.set()
                self._state = "closed"
                self._closed.set()
                self._finished.set()
                self.log.info("Exiting")

    async def _startup(self, broker: AsyncBroker, mux: ServeMux) -> _Parts:
        try:
            await asyncio.wait_for(broker.ping(), STARTUP_TIMEOUT)
        except TimeoutError:
            raise BrokerError(
                f"cannot reach Redis at {broker}: no answer within {STARTUP_TIMEOUT} s"
            ) from None
        await _clocksync.start(self._clock, broker, self.log, "worker")
        rt = Runtime(self.config, broker, self.log, self._clock, self._redis)
        self._rt = rt
        await self._check_redis(broker)
        parts = _Parts(rt, mux)
        self._processor = parts.processor
        rt.status = "active"
        if self._metrics is not None:
            port = metrics_hook.serve(self._metrics, self.config)
            self.log.info(
                "Serving worker metrics at http://%s:%d/metrics", self.config.metrics_host, port
            )
        parts.start()
        return parts

    def _fail_start(self, exc: BaseException) -> None:
        self._start_error = exc
        self._state = "closed"
        self._started.set()
        self._finished.set()
        if self._closed is not None:
            self._closed.set()

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_shutdown)
            if self._watchdog is not None:
                # The loop learns of the signal through its wakeup fd; the Python-level
                # handler also runs while a handler's code blocks the loop: arm there.
                signal.signal(sig, partial(self._on_signal, signal.getsignal(sig)))
        if hasattr(signal, "SIGTSTP"):
            loop.add_signal_handler(signal.SIGTSTP, self._stop)

    async def _check_redis(self, broker: AsyncBroker) -> None:
        """Warn when Redis' own settings lose tasks: an evicting maxmemory-policy, or no
        persistence at all. Settings Redis will not show (managed Redis) are skipped."""
        for warning in (await broker.redis_settings()).warnings():
            self.log.warn("%s", warning)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _as_mux(handler: ServeMux | Handler) -> ServeMux:
    if isinstance(handler, ServeMux):
        return handler
    if not callable(handler):
        raise TypeError(f"handler must be a ServeMux or a callable, got {handler!r}")
    return catch_all(handler)


class _Parts:
    """The components of one running server, started and shut down in asynq's order."""

    def __init__(self, rt: Runtime, mux: ServeMux) -> None:
        self.rt = rt
        self.threads = ThreadRunner(rt.config.concurrency)
        self.syncer = Syncer(rt)
        self.processor = Processor(rt, mux, self.threads, self.syncer)
        rt.wake = self.processor.notify
        self.forwarder = Forwarder(rt, on_forward=self.processor.notify)
        self.recoverer = Recoverer(rt)
        self.subscriber = Subscriber(rt)
        self.janitor = Janitor(rt)
        self.aggregator = Aggregator(rt)
        self.health = HealthChecker(rt)
        self.heartbeater = Heartbeater(rt)
        self.limiter = Limiter(rt, mux)
        if self.limiter:  # else the processor never asks: no cost without limits
            self.processor.limiter = self.limiter
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
        if self.limiter:
            parts.append(self.limiter)
        self.loops = [asyncio.create_task(c.run(), name=f"pyasynq-{c.name}") for c in parts]
        self.loops.append(asyncio.create_task(self.processor.run(), name="pyasynq-processor"))

    async def shutdown(self) -> None:
        # asynq's order: forwarder, processor, recoverer, syncer, subscriber, janitor,
        # aggregator, healthchecker, heartbeater.
        self.forwarder.stop()
        await self.processor.shutdown()
        self.recoverer.stop()
        await self.syncer.exec()  # flush queued writes once
        for c in (
            self.syncer, self.subscriber, self.janitor, self.aggregator, self.health, self.limiter,
        ):  # fmt: skip
            c.stop()
        await asyncio.gather(*self.loops, return_exceptions=True)
        await asyncio.to_thread(self.heartbeater.stop)
        self.threads.close()
