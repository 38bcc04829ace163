"""Idle workers wake when a pyasynq client enqueues, instead of waiting for their poll."""

from __future__ import annotations

import threading
import time

import redis

import pyasynq
from pyasynq._rdb import keys


def test_enqueue_wakes_an_idle_worker(redis_url: str, r: redis.Redis) -> None:
    ran = threading.Event()
    mux = pyasynq.ServeMux()
    mux.handle("t", lambda task: ran.set())
    # A poll interval far longer than the test may take: only a wake-up can start the task.
    server = pyasynq.Server(redis_url, concurrency=1, task_check_interval=600)
    server.start(mux)
    try:
        deadline = time.monotonic() + 10
        # The first dequeue attempt found nothing; wait until the server idles.
        while r.pubsub_numsub(keys.WAKE_CHANNEL)[0][1] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        with pyasynq.Client(redis_url) as client:
            client.enqueue(pyasynq.Task("t"))
        assert ran.wait(10), "the worker did not wake up for the new task"
    finally:
        server.shutdown()


def test_other_queues_and_scheduled_tasks_do_not_wake(redis_url: str, r: redis.Redis) -> None:
    with pyasynq.Client(redis_url) as client:
        p = r.pubsub()
        p.subscribe(keys.WAKE_CHANNEL)
        assert p.get_message(timeout=1)["type"] == "subscribe"  # type: ignore[index]
        client.enqueue(pyasynq.Task("t"), queue="q1")
        client.enqueue(pyasynq.Task("t"), queue="q2", process_in=60)
        client.enqueue_many([pyasynq.Task("t", queue="q3"), pyasynq.Task("t", queue="q3")])
        got = []
        # A cluster relays a publish from another node over its bus: wait for the two
        # expected messages, then a little longer for any that should not be there.
        give_up = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < give_up:
            if (m := p.get_message(timeout=0.5)) is not None:
                got.append(m["data"])
        while (m := p.get_message(timeout=0.5)) is not None:
            got.append(m["data"])
        p.close()
    # One per pending batch queue, none for a scheduled task. In a cluster each script
    # publishes from its queue's node, so the messages may arrive in either order.
    assert sorted(got) == [b"q1", b"q3"]
