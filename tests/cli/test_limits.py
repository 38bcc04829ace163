"""Fleet-wide limits where they have state: ``Inspector.get_limits``, ``pyasynq queue
inspect`` and the dashboard's queue page show each limit with running/cap, starts/rate
and waiting tasks."""

from __future__ import annotations

import time

import httpx
import redis

from pyasynq import Client, Inspector, Task
from pyasynq._rdb.ops import limiter as ops
from pyasynq._rdb.ops import processing
from pyasynq._sync.broker import Broker
from pyasynq.web import BasicAuth, create_app

from .support import Cli

SPEC = ops.Spec(concurrency=2, rate=50, per=1.0)


def seed(redis_url: str, client: Client) -> None:
    """Three email:send tasks under a cap of 2 and a rate of 50/s: two run, one waits."""
    for i in range(3):
        client.enqueue(Task("email:send"), task_id=f"t{i}")
    now = time.time()
    b = Broker(redis_url)
    try:
        for i in range(3):
            got = processing.dequeue_result(
                "default", b.run(processing.dequeue("default", now, f"k{i}"))
            )
            assert got is not None
            op = ops.acquire("default", "email:send", SPEC, task_id=f"t{i}", token=f"k{i}", now=now)
            ops.acquire_result(b.run(op))
        b.run(ops.wake("default", "email:send", SPEC, time.time_ns()))  # reports the limit
    finally:
        b.close()


def test_inspector_and_cli_show_limits_in_use(
    cli: Cli, client: Client, redis_url: str, r: redis.Redis
) -> None:
    seed(redis_url, client)
    with Inspector(redis_url) as insp:
        [lim] = insp.get_limits("default")
    assert (lim.name, lim.concurrency, lim.rate, lim.per) == ("email:send", 2, 50, 1.0)
    assert (lim.running, lim.started, lim.waiting) == (2, 2, 1)
    res = cli("queue", "inspect", "default")
    assert res.code == 0, res.err
    assert "Fleet-wide limits" in res.out
    row = next(line for line in res.out.splitlines() if "email:send" in line)
    assert row.split()[1:6] == ["2/2", "2/50", "per", "1s", "1"]


async def test_dashboard_queue_page_shows_limits(
    client: Client, redis_url: str, r: redis.Redis
) -> None:
    from pyasynq import AsyncInspector

    seed(redis_url, client)
    insp = AsyncInspector(redis_url)
    app = create_app(insp, auth=BasicAuth("u", "p"))
    try:
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", auth=("u", "p")
        ) as c:
            res = await c.get("/queue?q=default")
    finally:
        await insp.aclose()
    assert res.status_code == 200, res.text[:300]
    assert 'aria-label="fleet-wide limits"' in res.text
    assert "2/2" in res.text and "2/50 per 1s" in res.text
