"""What a handler is given about its task (``current_task()``, ``task.result_writer``):
built only when asked for, once per task, with the values the worker gave eagerly before."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from pyasynq import Client, ResultWriter, Task, TaskContext, current_task
from pyasynq._rdb import keys
from pyasynq.context import LazyContext, _current
from pyasynq.mux import ServeMux

from .support import Servers, wait_for

Q = "ctxq"


def _deadline_in(seconds: int) -> datetime:
    """A whole-second deadline (the wire stores Unix seconds)."""
    return datetime.fromtimestamp(int(time.time()) + seconds, UTC)


def test_an_async_handler_gets_one_context_and_writer_with_the_eager_values(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    seen: dict[str, Any] = {}

    async def handler(task: Task) -> None:
        writer = task.result_writer  # the writer first, then the context: one writer
        a, b = current_task(), current_task()
        seen.update(writer=writer, a=a, b=b, again=task.result_writer)
        await writer.write(b"stored")

    mux = ServeMux()
    mux.handle("ctx:async", handler)
    deadline = _deadline_in(3600)
    info = client.enqueue(
        Task("ctx:async"), queue=Q, task_id="c1", max_retry=7, deadline=deadline, retention=60
    )
    servers.start(mux, queues={Q: 1})
    wait_for(lambda: r.hget(keys.task_key(Q, info.id), "result"), what="the result")
    a, b, writer = seen["a"], seen["b"], seen["writer"]
    assert a is b
    assert type(a) is TaskContext and isinstance(writer, ResultWriter)
    assert writer is seen["again"] is a.result_writer
    assert (a.id, a.type, a.queue, a.retry_count, a.max_retry) == ("c1", "ctx:async", Q, 0, 7)
    assert a.deadline == deadline and a.deadline.tzinfo is UTC
    wait_for(lambda: a.cancelled, what="the context to end with the task")
    assert repr(a).startswith("TaskContext(id='c1', type='ctx:async', queue='ctxq', ")
    assert r.hget(keys.task_key(Q, "c1"), "result") == b"stored"


def test_a_def_handler_gets_the_same_context_from_its_thread(
    servers: Servers, client: Client
) -> None:
    seen: dict[str, Any] = {}
    done = threading.Event()

    def handler(task: Task) -> None:
        ctx = current_task()
        seen.update(ctx=ctx, again=current_task(), writer=task.result_writer)
        seen["left"] = ctx.seconds_left()
        done.set()

    mux = ServeMux()
    mux.handle("ctx:sync", handler)
    client.enqueue(Task("ctx:sync"), queue=Q, task_id="s1", timeout=timedelta(seconds=30))
    servers.start(mux, queues={Q: 1})
    assert done.wait(10)
    ctx = seen["ctx"]
    assert ctx is seen["again"] and ctx.result_writer is seen["writer"]
    assert ctx.id == "s1" and 25 < seen["left"] <= 30.01


def test_a_handler_that_asks_for_nothing_gets_nothing_built(
    servers: Servers, client: Client
) -> None:
    lazies: list[LazyContext] = []
    done = threading.Event()

    async def handler(task: Task) -> None:
        v = _current.get()
        assert isinstance(v, LazyContext)
        lazies.append(v)
        done.set()

    mux = ServeMux()
    mux.handle("ctx:none", handler)
    client.enqueue(Task("ctx:none"), queue=Q)
    servers.start(mux, queues={Q: 1})
    assert done.wait(10)
    assert lazies[0]._ctx is None and lazies[0]._writer is None


class _Slow(LazyContext):
    """Counts builds; each build takes a while, so concurrent first calls overlap."""

    __slots__ = ("builds",)

    def __init__(self) -> None:
        super().__init__()
        self.builds = 0

    def _build_writer(self) -> ResultWriter:
        self.builds += 1
        time.sleep(0.01)
        return ResultWriter("t", None, None, threading.Event())  # type: ignore[arg-type]

    def _build_context(self, writer: ResultWriter) -> TaskContext:
        self.builds += 1
        time.sleep(0.01)
        return TaskContext(
            "t", "x", Q, 0, 0, datetime.now(UTC), writer, threading.Event(), None, None
        )


def test_concurrent_first_calls_build_once() -> None:
    lazy = _Slow()
    got: list[TaskContext] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        got.append(lazy.context())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(got) == 8 and all(c is got[0] for c in got)
    assert lazy.builds == 2  # one writer, one context
    assert lazy.result_writer() is got[0].result_writer
