"""The client a worker lends to handlers (``current_task().redis``) through Sentinel: a
coalescing client on the master the sentinels name, with connections of its own."""

from __future__ import annotations

import time
from typing import Any

from topology import SentinelTopology

import pyasynq
from pyasynq._server.lender import CoalescingRedis


def test_handlers_borrow_a_coalescing_client_of_the_sentinel_master(
    sentinel: SentinelTopology,
) -> None:
    master = sentinel.current_master().client()
    master.flushall()
    seen: list[Any] = []
    mux = pyasynq.ServeMux()

    @mux.handler("t")
    async def incr(task: pyasynq.Task) -> None:
        seen.append(pyasynq.current_task().redis)
        await seen[-1].incr("lent:n")

    url = sentinel.url()
    with pyasynq.Client(url) as client:
        client.enqueue_many([pyasynq.Task("t", b"") for _ in range(40)])
    server = pyasynq.Server(url, concurrency=8, task_check_interval=0.05)
    server.start(mux)
    try:
        deadline = time.monotonic() + 20
        while master.get("lent:n") != b"40":
            assert time.monotonic() < deadline, master.get("lent:n")
            time.sleep(0.05)
    finally:
        server.shutdown()
    assert {type(c) for c in seen} == {CoalescingRedis}
    assert type(seen[0].connection_pool).__name__ == "SentinelConnectionPool"
