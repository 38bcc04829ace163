"""Connecting goes wrong in ways the user fixes in the URL or in Redis: each fails at
once (or within the configured timeout), in one line that says what to check, and never
shows the password. Real servers: one redis-server of our own whose password we set, and
a loopback listener that takes connections and never answers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
import redis
from topology import SingleServer, free_port

import pyasynq
from pyasynq import BrokerError, SentinelOptions, Task
from pyasynq.connection import parse_url

PASSWORD = "s3cret-h14c"

pytestmark = pytest.mark.single_node("runs its own servers")


@pytest.fixture(scope="module")
def locked() -> Iterator[SingleServer]:
    """A redis-server that requires PASSWORD (set once it runs: the start-up probe has
    no password)."""
    with SingleServer() as server:
        c = server.nodes[0].client()
        c.config_set("requirepass", PASSWORD)
        c.close()
        yield server


@pytest.fixture
def silent() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        held: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            s.settimeout(0.1)
            while not stop.is_set():
                try:
                    held.append(s.accept()[0])
                except OSError:
                    continue

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        try:
            yield int(s.getsockname()[1])
        finally:
            stop.set()
            t.join(2)
            for c in held:
                c.close()


Attempt = Callable[[str], Awaitable[None]]


@pytest.fixture(params=["sync", "async"])
def enqueue(request: pytest.FixtureRequest) -> Attempt:
    """Enqueue one task with a new client of either kind; the client is closed after."""

    async def run(url: str) -> None:
        if request.param == "sync":
            with pyasynq.Client(url) as c:
                c.enqueue(Task("t"))
        else:
            async with pyasynq.AsyncClient(url) as ac:
                await ac.enqueue(Task("t"))

    return run


async def failure(attempt: Awaitable[None]) -> tuple[str, float]:
    """The BrokerError message of ``attempt`` and how long it took to fail."""
    start = time.monotonic()
    with pytest.raises(BrokerError) as err:
        await attempt
    message = str(err.value)
    assert "\n" not in message
    return message, time.monotonic() - start


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "unix:///nonexistent/redis.sock"])
async def test_nothing_listening_fails_at_once_and_says_what_to_check(
    url: str, enqueue: Attempt
) -> None:
    message, took = await failure(enqueue(url))
    assert took < 2, took
    assert message.startswith("cannot reach Redis at "), message
    assert "check that Redis runs there" in message
    assert "INFO" not in message  # not the internal command the client happened to send


async def test_missing_password_fails_at_once_and_says_how(
    locked: SingleServer, enqueue: Attempt
) -> None:
    message, took = await failure(enqueue(locked.url()))
    assert took < 2, took  # no retrying for the failover window
    assert f"127.0.0.1:{locked.port}" in message
    assert "requires a password" in message and "redis://:PASSWORD@host:port" in message


async def test_wrong_password_fails_at_once_without_showing_it(
    locked: SingleServer, enqueue: Attempt
) -> None:
    for auth in (":wrong-pw", "bob:wrong-pw"):
        message, took = await failure(enqueue(locked.url(auth=auth)))
        assert took < 2, took
        assert "refused the password" in message and "check the user and password" in message
        assert "wrong-pw" not in message and PASSWORD not in message


async def test_right_password_works(locked: SingleServer, enqueue: Attempt) -> None:
    await enqueue(locked.url(auth=f":{PASSWORD}"))


async def test_a_user_without_the_rights_is_told_what_to_grant(locked: SingleServer) -> None:
    admin = redis.Redis(port=locked.port, password=PASSWORD)
    admin.acl_setuser("limited", enabled=True, passwords=["+pw"], keys=["*"],
                      commands=["+@all", "-evalsha", "-eval"])  # fmt: skip
    try:
        start = time.monotonic()
        with pytest.raises(BrokerError) as err:
            pyasynq.Client(locked.url(auth="limited:pw")).enqueue(Task("t"))
        assert time.monotonic() - start < 2
        assert "does not let this user do what pyasynq needs" in str(err.value)
        assert "NOPERM" in str(err.value) and "docs/security.md" in str(err.value)
    finally:
        admin.acl_deluser("limited")
        admin.close()


def test_the_server_refuses_to_start_with_a_clear_line(locked: SingleServer) -> None:
    server = pyasynq.Server(locked.url(), queues={"default": 1})
    start = time.monotonic()
    with pytest.raises(BrokerError, match="requires a password"):
        server.run(pyasynq.ServeMux())
    assert time.monotonic() - start < 3


async def test_a_silent_host_fails_within_the_configured_timeout(
    silent: int, enqueue: Attempt
) -> None:
    url = f"redis://127.0.0.1:{silent}/0?connect_timeout=0.5&socket_timeout=0.5"
    message, took = await failure(enqueue(url))
    assert took < 2, took  # one try of 0.5 s, not 4 tries times 2 rounds
    assert f"127.0.0.1:{silent}" in message
    assert "did not answer within 0.5 s" in message and "Redis server" in message


async def test_rediss_to_a_plain_server_mentions_tls(silent: int, enqueue: Attempt) -> None:
    message, took = await failure(enqueue(f"rediss://127.0.0.1:{silent}/0?connect_timeout=0.5"))
    assert took < 3, took
    assert "within 0.5 s" in message
    assert "TLS (rediss://)" in message and "use redis://" in message


def test_timeouts_default_to_a_few_seconds_and_are_configurable() -> None:
    c = pyasynq.Client("redis://127.0.0.1:6379/0")
    kw = c._broker.redis.connection_pool.connection_kwargs
    assert (kw["socket_connect_timeout"], kw["socket_timeout"]) == (5.0, 5.0)
    c.close()
    c = pyasynq.Client("redis://127.0.0.1:6379/0?connect_timeout=1.5&socket_timeout=3")
    kw = c._broker.redis.connection_pool.connection_kwargs
    assert (kw["socket_connect_timeout"], kw["socket_timeout"]) == (1.5, 3.0)
    c.close()
    for bad in ("0", "-1", "abc", "nan", "inf", ""):
        with pytest.raises(ValueError, match="connect_timeout must be a positive number"):
            pyasynq.Client(f"redis://127.0.0.1:6379/0?connect_timeout={bad}")
    opts = parse_url("redis-sentinel://127.0.0.1:26379/0?master=m&connect_timeout=2")
    assert isinstance(opts, SentinelOptions) and opts.connect_timeout == 2.0
    assert parse_url("redis-cluster://127.0.0.1:7000?socket_timeout=4").socket_timeout == 4.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/abc",
        "redis://127.0.0.1:6379/1/2",
        "redis://127.0.0.1:6379/-1",
        "rediss://127.0.0.1:6379/x",
        "redis://127.0.0.1:6379/0?db=abc",
        "unix:///tmp/redis.sock?db=x",
        "redis-sentinel://127.0.0.1:26379/abc?master=m",
    ],
)
def test_a_malformed_database_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="bad database number"):
        pyasynq.Client(url)
    with pytest.raises(ValueError, match="bad database number"):
        pyasynq.Inspector(url)


def test_sentinel_failure_is_one_short_line() -> None:
    port = free_port()  # nothing listens there
    insp = pyasynq.Inspector(
        SentinelOptions(master_name="mymaster", sentinels=[("127.0.0.1", port)])
    )
    try:
        start = time.monotonic()
        with pytest.raises(BrokerError) as err:
            insp.ping()
        assert time.monotonic() - start < 5
    finally:
        insp.close()
    message = str(err.value)
    assert len(message) < 300, message
    assert "<redis" not in message and "\n" not in message
    assert f"127.0.0.1:{port}" in message and "mymaster" in message
