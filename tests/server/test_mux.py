"""ServeMux routing, registration errors and middleware (wire spec 5.6), and how a Server
runs what the mux resolves: sync and async handlers, a bare callable, the not-found path."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis

from pyasynq import Client, Task
from pyasynq.context import current_task
from pyasynq.mux import AsyncHandler, HandlerNotFoundError, ServeMux

from .support import Servers, wait_for


async def run_direct(fn: Callable[[Task], Any], task: Task) -> Any:
    return fn(task)


def names(mux: ServeMux, *types: str) -> list[str | None]:
    out = []
    for t in types:
        h = mux.match(t)
        out.append(None if h is None else h.__name__)
    return out


def test_exact_match_wins_then_longest_prefix() -> None:
    mux = ServeMux()

    def email(task: Task) -> None: ...
    def email_send(task: Task) -> None: ...
    def email_send_bulk(task: Task) -> None: ...
    def e(task: Task) -> None: ...

    mux.handle("email:", email)
    mux.handle("email:send", email_send)
    mux.handle("email:send:bulk", email_send_bulk)
    mux.handle("e", e)
    assert names(
        mux,
        "email:send",  # exact
        "email:send:bulk:x",  # longest prefix
        "email:sendx",  # prefix without a ":" boundary, as asynq
        "email:other",
        "ex",
        "sms:send",
    ) == ["email_send", "email_send_bulk", "email_send", "email", "e", None]


def test_decorator_and_call_forms() -> None:
    mux = ServeMux()

    @mux.handler("a")
    async def a(task: Task) -> None: ...

    def b(task: Task) -> None: ...

    returned = mux.handler("b", b)
    mux.handle("c", b)
    assert a.__name__ == "a"  # the decorator returns the function unchanged
    assert returned is b
    assert mux.match("a") is a and mux.match("b") is b and mux.match("c") is b


@pytest.mark.parametrize("pattern", ["", "   ", "\t"])
def test_blank_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="non-blank"):
        ServeMux().handle(pattern, lambda t: None)


def test_duplicate_pattern_is_refused() -> None:
    mux = ServeMux()
    mux.handle("a:b", lambda t: None)
    with pytest.raises(ValueError, match="already registered for 'a:b'"):
        mux.handle("a:b", lambda t: None)
    with pytest.raises(ValueError, match="already registered"):
        mux.handler("a:b")(lambda t: None)


def test_non_callable_handler_and_middleware_are_refused() -> None:
    mux = ServeMux()
    with pytest.raises(TypeError, match="must be callable"):
        mux.handle("a", "not a function")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="middleware must be callable"):
        mux.use(42)  # type: ignore[arg-type]


def recording_middleware(name: str, calls: list[str]) -> Callable[[AsyncHandler], AsyncHandler]:
    def mw(nxt: AsyncHandler) -> AsyncHandler:
        async def wrapped(task: Task) -> None:
            calls.append(f"{name}>")
            try:
                await nxt(task)
            finally:
                calls.append(f"<{name}")

        return wrapped

    return mw


async def test_middlewares_wrap_in_order_first_added_outermost() -> None:
    calls: list[str] = []
    mux = ServeMux()

    @mux.handler("t")
    def handler(task: Task) -> None:
        calls.append("handler")

    mux.use(recording_middleware("first", calls))
    mux.use(recording_middleware("second", calls), recording_middleware("third", calls))
    await mux.resolve("t", run_direct)(Task("t"))
    assert calls == ["first>", "second>", "third>", "handler", "<third", "<second", "<first"]


async def test_middlewares_also_wrap_not_found() -> None:
    calls: list[str] = []
    mux = ServeMux()
    mux.use(recording_middleware("mw", calls))
    with pytest.raises(HandlerNotFoundError, match=r'^handler not found for task "no:such"$'):
        await mux.resolve("no:such", run_direct)(Task("no:such"))
    assert calls == ["mw>", "<mw"]


async def test_sync_handler_goes_through_run_sync_and_async_does_not() -> None:
    used: list[str] = []

    async def run_sync(fn: Callable[[Task], Any], task: Task) -> Any:
        used.append(task.type)
        return fn(task)

    mux = ServeMux()
    ran: list[str] = []
    mux.handle("sync", lambda t: ran.append("sync"))

    async def coro(task: Task) -> None:
        ran.append("async")

    mux.handle("async", coro)
    await mux.resolve("sync", run_sync)(Task("sync"))
    await mux.resolve("async", run_sync)(Task("async"))
    assert ran == ["sync", "async"]
    assert used == ["sync"]


async def test_a_sync_callable_returning_a_coroutine_is_awaited() -> None:
    ran: list[str] = []

    async def work(task: Task) -> None:
        ran.append(task.type)

    def returns_a_coroutine(task: Task) -> Any:  # a plain def: run on a thread
        return work(task)

    mux = ServeMux()
    mux.handle("t", returns_a_coroutine)
    await mux.resolve("t", run_direct)(Task("t"))
    assert ran == ["t"]


# --------------------------------------------------------------------------- with a server


def test_server_runs_sync_handlers_on_threads_and_async_ones_on_the_loop(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    seen: dict[str, tuple[str, str]] = {}
    mux = ServeMux()

    @mux.handler("sync:")
    def sync_handler(task: Task) -> None:
        seen[task.type] = (current_task().id, threading.current_thread().name)
        assert task.payload == b"s"

    @mux.handler("async:")
    async def async_handler(task: Task) -> None:
        asyncio.get_running_loop()  # on an event loop
        seen[task.type] = (current_task().id, threading.current_thread().name)
        assert task.payload == b"a"

    client.enqueue(Task("sync:one", b"s"), task_id="s1")
    client.enqueue(Task("async:one", b"a"), task_id="a1")
    servers.start(mux)
    wait_for(lambda: r.get("asynq:{default}:processed") == b"2", what="2 processed")
    assert seen["sync:one"][0] == "s1"
    assert seen["sync:one"][1].startswith("pyasynq-worker")
    assert seen["async:one"] == ("a1", "pyasynq-server")  # the server's loop thread
    assert r.exists("asynq:{default}:t:s1", "asynq:{default}:t:a1") == 0


def test_a_single_callable_serves_every_type(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    types: list[str] = []
    for i, t in enumerate(["a", "b:c", "zzz"]):
        client.enqueue(Task(t), task_id=f"t{i}")
    servers.start(lambda task: types.append(task.type))
    wait_for(lambda: r.get("asynq:{default}:processed") == b"3", what="3 processed")
    assert sorted(types) == ["a", "b:c", "zzz"]


def test_not_found_fails_the_task_with_asynqs_text(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    mux = ServeMux()
    mux.handle("known", lambda t: None)
    client.enqueue(Task("unknown:type"), task_id="nf", max_retry=3)
    servers.start(mux)
    wait_for(lambda: r.zscore("asynq:{default}:retry", "nf"), what="nf in retry")
    from rdb.helpers import task_msg

    msg = task_msg(r, "default", "nf")
    assert msg is not None
    assert msg.error_msg == 'handler not found for task "unknown:type"'
    assert msg.retried == 1


def test_a_handler_that_is_not_a_mux_or_callable_is_refused_at_start(servers: Servers) -> None:
    srv = servers.make()
    with pytest.raises(TypeError, match="ServeMux or a callable"):
        srv.start("nope")  # type: ignore[arg-type]
    assert srv.status == "new"
