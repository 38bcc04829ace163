"""Helpers for testing code that uses pyasynq, and a pytest plugin with fixtures for them.

The plugin is registered as the ``pyasynq`` pytest11 entry point, so installing pyasynq
makes these fixtures available to every test (``pip install 'pyasynq[embedded]'`` when no
``redis-server`` is on PATH):

``pyasynq_redis_url``
    The URL of a Redis database, flushed before each test. By default a private
    ``redis-server`` (persistence off) started once per session; ``--pyasynq-redis-url`` or
    the ini option ``pyasynq_redis_url`` points the tests at a Redis of your own instead,
    whose database is then FLUSHED before every test: give a throwaway one.
``pyasynq_client``
    A :class:`pyasynq.Client` on that database, closed after the test.
``pyasynq_worker``
    A :class:`Worker`: ``pyasynq_worker.run_until_idle(mux)`` runs a real Server until the
    queues are drained and returns what it processed.

::

    def test_signup_sends_mail(pyasynq_client, pyasynq_worker):
        pyasynq_client.enqueue(Task("email:welcome", b"ada"))
        report = pyasynq_worker.run_until_idle(mux)
        assert report.processed == 1 and not report.errors
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

try:
    import pytest
except ImportError as exc:  # pragma: no cover - exercised without pytest installed
    raise ImportError("pyasynq.testing needs pytest: pip install pytest") from exc

import redis

from ._sync.client import Client
from ._sync.inspector import Inspector
from .embedded import EmbeddedRedis
from .errors import QueueNotFoundError
from .mux import Handler, ServeMux
from .server import Server

__all__ = ["IdleReport", "Worker", "run_until_idle"]

# A test worker picks tasks up and retries them at once; each can be overridden.
TEST_DEFAULTS: Mapping[str, Any] = {
    "concurrency": 4,
    "task_check_interval": 0.05,
    "delayed_task_check_interval": 0.05,
    "retry_delay_func": lambda retried, error, task: 0.0,
    "shutdown_timeout": 2.0,
    "heartbeat_interval": 0.5,
    "lease_duration": 5.0,
}


@dataclass
class IdleReport:
    """What a :func:`run_until_idle` run did: handler runs with an outcome, and the last
    error of every task whose handler raised (retried ones included), by task id."""

    processed: int = 0
    errors: dict[str, BaseException] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def _record(self, msg: Any, duration: float, error: BaseException | None) -> None:
        with self._lock:
            self.processed += 1
            if error is not None:
                self.errors[msg.id] = error


def _left(inspector: Inspector, queues: list[str], include_scheduled: bool) -> dict[str, int]:
    """Tasks still to run, by "queue/state"; empty when the queues are drained."""
    left: dict[str, int] = {}
    for q in queues:
        try:
            info = inspector.get_queue_info(q)
        except QueueNotFoundError:
            continue  # nothing was ever enqueued there
        states = ["pending", "active", "retry", "aggregating"]
        if include_scheduled:
            states.append("scheduled")
        for st in states:
            n = int(getattr(info, st))
            if n:
                left[f"{q}/{st}"] = n
    return left


def run_until_idle(
    redis_url: str,
    handler: ServeMux | Handler,
    *,
    timeout: float = 10.0,
    include_scheduled: bool = False,
    poll_interval: float = 0.02,
    **config: Any,
) -> IdleReport:
    """Run a real :class:`pyasynq.Server` on ``redis_url`` until its queues hold no pending,
    active, retry or aggregating task (and no scheduled one with ``include_scheduled``),
    then shut it down and return an :class:`IdleReport`.

    ``config`` takes the fields of :class:`pyasynq.ServerConfig`; unset ones get test
    timings (:data:`TEST_DEFAULTS`: retries at once, 50 ms polls). A task retried with a
    long ``retry_delay_func`` keeps the queues busy until ``timeout``: then TimeoutError
    says which tasks were left.
    """
    report = IdleReport()
    user_hook = config.pop("on_task_done", None)

    def on_done(msg: Any, duration: float, error: BaseException | None) -> None:
        report._record(msg, duration, error)
        if user_hook is not None:
            user_hook(msg, duration, error)

    server = Server(redis_url, **{**TEST_DEFAULTS, **config, "on_task_done": on_done})
    queues = list(server.config.queues)
    inspector = Inspector(redis_url)
    server.start(handler)
    try:
        deadline = time.monotonic() + timeout
        while left := _left(inspector, queues, include_scheduled):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the queues were not drained within {timeout}s; still there: {left}. "
                    "Raise timeout=, or shorten retry_delay_func / process_in in the test"
                )
            time.sleep(poll_interval)
    finally:
        server.shutdown()
        inspector.close()
    return report


class Worker:
    """A test worker bound to one Redis: :meth:`run_until_idle` starts a Server, lets it
    drain the queues, and shuts it down. ``defaults`` are ServerConfig fields applied to
    every run (the call's own keywords win)."""

    def __init__(self, redis_url: str, **defaults: Any) -> None:
        self.redis_url = redis_url
        self.defaults = defaults

    def run_until_idle(
        self, handler: ServeMux | Handler, *, timeout: float = 10.0, **config: Any
    ) -> IdleReport:
        """See :func:`run_until_idle`."""
        return run_until_idle(
            self.redis_url, handler, timeout=timeout, **{**self.defaults, **config}
        )


# -- the pytest plugin ------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    help_ = (
        "Redis URL for the pyasynq_* fixtures (its database is flushed before each test); "
        "default: a private redis-server per session"
    )
    parser.addoption("--pyasynq-redis-url", default=None, help=help_)
    parser.addini("pyasynq_redis_url", help_, default="")


@pytest.fixture(scope="session")
def pyasynq_redis_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The session's Redis URL: the configured one, else a private redis-server."""
    url = request.config.getoption("--pyasynq-redis-url") or request.config.getini(
        "pyasynq_redis_url"
    )
    if url:
        yield str(url)
        return
    try:
        server = EmbeddedRedis(persistent=False).start()
    except RuntimeError as exc:
        pytest.fail(f"pyasynq_redis_url: cannot start a Redis for the tests: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def pyasynq_redis_url(pyasynq_redis_server: str) -> str:
    """A Redis URL whose database was just flushed."""
    with redis.Redis.from_url(pyasynq_redis_server) as r:
        r.flushdb()
    return pyasynq_redis_server


@pytest.fixture
def pyasynq_client(pyasynq_redis_url: str) -> Iterator[Client]:
    """A Client on ``pyasynq_redis_url``."""
    client = Client(pyasynq_redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def pyasynq_worker(pyasynq_redis_url: str) -> Worker:
    """A :class:`Worker` on ``pyasynq_redis_url``."""
    return Worker(pyasynq_redis_url)
