"""Helpers for the dashboard tests: an XSS corpus, a seeded world of real tasks processed
by a real Server, and uvicorn serving an app on a free loopback port in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import uvicorn

import pyasynq
from pyasynq._rdb import keys

USER, PASSWORD = "admin", "s3cret-pässword"

# Each would run script if it reached the page as markup: it must show as text instead.
XSS = [
    "<script>window.__xss=1</script>",
    '"><img src=x onerror="window.__xss=1">',
    "javascript:window.__xss=1",
    '<svg onload="window.__xss=1"><circle r="5"/></svg>',
    '\'><a href="javascript:window.__xss=1" id="xss-link">click</a>',
    '<div hx-get="javascript:window.__xss=1" hx-trigger="load">htmx</div>',
    '<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
    "</textarea></pre><script>window.__xss=1</script>",
]
XSS_TYPE = '<img src=x onerror="window.__xss=1">'
XSS_QUEUE = '"><svg onload=window.__xss=1>'
XSS_ERROR = "<script>window.__xss=1</script> boom"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # An attacker's site for the cross-site test; it resolves to loopback.
    "--host-resolver-rules=MAP evil.example 127.0.0.1",
]


def chromium_path() -> str:
    """The system Chromium; under CI=true a missing one fails the run, else it skips."""
    path = os.environ.get("PYASYNQ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if os.path.exists(path):
        return path
    msg = "no chromium for the browser tests: apt-get install chromium"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def wait_for(pred: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``pred`` until it returns something truthy; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yield its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), what="uvicorn to start")
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def paused(r: redis.Redis, queue: str) -> bool:
    return bool(r.exists(keys.paused_key(queue)))


def in_zset(r: redis.Redis, key: str, member: str) -> bool:
    return r.zscore(key, member) is not None


def in_list(r: redis.Redis, key: str, member: str) -> bool:
    return member.encode() in r.lrange(key, 0, -1)


@dataclass
class World:
    """What the seeded Redis holds, for the tests to look for."""

    redis_url: str
    ids: dict[str, str] = field(default_factory=dict)
    xss_ids: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    server: pyasynq.Server | None = None
    scheduler: Any = None
    entry_id: str = ""

    def close(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
        if self.scheduler is not None:
            self.scheduler.shutdown()


def build_world(redis_url: str) -> World:
    """Flush Redis, then: tasks in every state in ``default`` (processed by a real
    Server) and ``critical`` (not processed), an XSS corpus, a running scheduler, and a
    week of daily counters for the chart."""
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    w = World(redis_url)
    mux = pyasynq.ServeMux()

    @mux.handler("email:send")
    async def send(task: pyasynq.Task) -> None:
        await task.result_writer.write(b'{"delivered": true, "smtp": "250 OK"}')

    @mux.handler("report:fail")
    async def fail(task: pyasynq.Task) -> None:
        raise RuntimeError(XSS_ERROR)

    @mux.handler("slow:job")
    async def slow(task: pyasynq.Task) -> None:
        await asyncio.to_thread(w.release.wait)

    @mux.handler("cancel:me")
    async def cancel_me(task: pyasynq.Task) -> None:
        await asyncio.sleep(60)

    client = pyasynq.Client(redis_url)
    try:
        for n in range(3):
            info = client.enqueue(
                pyasynq.Task.from_json("email:send", {"to": f"user{n}@example.com", "n": n}),
                queue="default",
                retention=3600,
            )
            w.ids[f"completed{n}"] = info.id
        w.ids["retry"] = client.enqueue(
            pyasynq.Task("report:fail", b"quarterly"), queue="default", max_retry=5
        ).id
        w.ids["archived"] = client.enqueue(
            pyasynq.Task("report:fail", b"\x00\x01\xfe binary"), queue="default", max_retry=0
        ).id
        w.ids["active"] = client.enqueue(
            pyasynq.Task("slow:job", b'{"size": "large"}'), queue="default"
        ).id
        for n in range(3):
            w.ids[f"pending{n}"] = client.enqueue(
                pyasynq.Task.from_json("image:resize", {"id": n, "w": 640}),
                queue="critical",
                headers={"trace-id": f"t-{n}"},
            ).id
        for n in range(2):
            w.ids[f"scheduled{n}"] = client.enqueue(
                pyasynq.Task("report:build", f"report-{n}".encode()),
                queue="critical",
                process_in=3600 * (n + 1),
            ).id
        for n in range(2):
            w.ids[f"aggregating{n}"] = client.enqueue(
                pyasynq.Task("batch:item", f"item-{n}".encode()), queue="critical", group="batch-1"
            ).id
        w.ids["pausable"] = client.enqueue(pyasynq.Task("noop", b""), queue="pausable").id
        for text in XSS:
            info = client.enqueue(
                pyasynq.Task(XSS_TYPE, text.encode(), headers={"x-note": text}), queue="xss"
            )
            w.xss_ids.append(info.id)
        client.enqueue(pyasynq.Task("noop", XSS[0].encode()), queue=XSS_QUEUE)
    finally:
        client.close()

    # A week of history for the chart (what servers write, per UTC day).
    today = datetime.now(UTC)
    for d in range(1, 7):
        day = (today - timedelta(days=d)).strftime("%Y-%m-%d")
        r.set(keys.processed_key_for_date("default", day), 40 + 17 * d)
        r.set(keys.failed_key_for_date("default", day), 3 * d)
    r.close()

    w.server = pyasynq.Server(
        redis_url,
        queues={"default": 1},
        concurrency=4,
        retry_delay_func=lambda n, e, t: 3600.0,
        heartbeat_interval=0.2,
        task_check_interval=0.05,
        delayed_task_check_interval=0.1,
        shutdown_timeout=1,
        subscriber_retry_interval=0.2,
    )
    w.server.start(mux)
    from pyasynq.scheduler import Scheduler

    w.scheduler = Scheduler(redis_url)
    w.entry_id = w.scheduler.register(
        "@every 1s", pyasynq.Task("cron:tick", b'{"source": "scheduler"}'), queue="cron"
    )
    w.scheduler.start()
    return w


def settle(w: World) -> None:
    """Wait until the server has done what the world expects of it."""
    r = redis.Redis.from_url(w.redis_url)
    try:
        wait_for(lambda: r.zcard(keys.completed_key("default")) == 3, what="3 completed")
        wait_for(lambda: in_zset(r, keys.retry_key("default"), w.ids["retry"]), what="retry")
        wait_for(
            lambda: in_zset(r, keys.archived_key("default"), w.ids["archived"]), what="archived"
        )
        wait_for(lambda: in_list(r, keys.active_key("default"), w.ids["active"]), what="active")
        wait_for(lambda: r.zcard(keys.scheduler_history_key(w.entry_id)) > 0, what="cron")
    finally:
        r.close()
