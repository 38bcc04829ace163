"""Worker metrics per task type: outcome counters and the queue-wait histogram, from the
unit up to a real Server's /metrics; and the dequeue scripts' pending_since they rest on."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

pytest.importorskip("prometheus_client", reason="needs the prometheus extra")

from prometheus_client.parser import text_string_to_metric_families
from test_metrics import FAST, bucket, get, q, scrape

from pyasynq import Client, FakeClock, RevokeTask, ServeMux, Server, SkipRetry, Snooze, Task
from pyasynq._rdb.codec import TaskMessage
from pyasynq._rdb.ops import processing
from pyasynq._sync.broker import Broker
from pyasynq.embedded import free_port
from pyasynq.metrics import OUTCOMES, WorkerMetrics


def _msg(retried: int = 0, retry: int = 3) -> TaskMessage:
    return TaskMessage(type="img:resize", id="t1", queue="default", retry=retry, retried=retried)


def _with(labels: tuple[tuple[str, str], ...], outcome: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((*labels, ("outcome", outcome))))


def test_outcomes_follow_asynqs_rules() -> None:
    m = WorkerMetrics()
    m(_msg(), 0.1, None)
    m(_msg(retried=0), 0.1, ValueError("again"))  # retries left: retried
    m(_msg(retried=3), 0.1, ValueError("last"))  # none left: archived
    m(_msg(retried=0), 0.1, SkipRetry("bad input"))  # archived at once
    m(_msg(), 0.1, RevokeTask())
    m(_msg(retried=3), 0.1, Snooze(30))  # not a failure, even with no retry left
    got = scrape(m.registry)
    lbl = q("default", type="img:resize")
    count = {o: got.get(("pyasynq_task_outcomes_total", _with(lbl, o))) for o in OUTCOMES}
    assert count == {"succeeded": 1, "retried": 1, "archived": 2, "revoked": 1, "snoozed": 1}
    # A snooze is neither processed nor failed, as the Redis counters see it.
    assert got[("pyasynq_tasks_processed_total", lbl)] == 5
    assert got[("pyasynq_tasks_failed_total", lbl)] == 3


def test_queue_wait_histogram() -> None:
    m = WorkerMetrics()
    m.task_started(_msg(), 0.02)
    m.task_started(_msg(), 100.0)
    m.task_started(_msg(), -3.0)  # clocks of two machines: never negative
    got = scrape(m.registry)
    lbl = q("default", type="img:resize")
    assert got["pyasynq_task_queue_wait_seconds_count", lbl] == 3
    assert got["pyasynq_task_queue_wait_seconds_bucket", bucket(lbl, "0.025")] == 2
    assert got["pyasynq_task_queue_wait_seconds_bucket", bucket(lbl, "60.0")] == 2
    assert got["pyasynq_task_queue_wait_seconds_bucket", bucket(lbl, "300.0")] == 3


def test_dequeue_returns_pending_since(redis_url: str, r: redis.Redis) -> None:
    clock = FakeClock(1_700_000_000.5)
    with Client(redis_url, clock=clock) as client:
        client.enqueue(Task("a"), task_id="a")
        client.enqueue(Task("b"), task_id="b")
        client.enqueue(Task("c"), task_id="c")
    broker = Broker(redis_url)
    try:
        one = processing.dequeue_result("default", broker.run(processing.dequeue("default", 1, "")))
        assert one is not None and one.task_id == "a"
        assert one.pending_since == pytest.approx(1_700_000_000.5)
        many = processing.dequeue_many_result(
            "default", broker.run(processing.dequeue_many("default", 1, "", 5))
        )
        assert [(x.task_id, x.pending_since) for x in many] == [
            ("b", pytest.approx(1_700_000_000.5)),
            ("c", pytest.approx(1_700_000_000.5)),
        ]
        # A task hash without the field (as a requeue leaves it): unknown, not zero.
        with Client(redis_url) as client:
            client.enqueue(Task("d"), task_id="d")
        r.hdel("asynq:{default}:t:d", "pending_since")
        d = processing.dequeue_result("default", broker.run(processing.dequeue("default", 1, "")))
        assert d is not None and d.pending_since is None
        assert r.hexists("asynq:{default}:t:d", "pending_since") == 0  # deleted as in Go
    finally:
        broker.close()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_a_server_exports_outcomes_and_queue_wait(redis_url: str, r: redis.Redis) -> None:
    mux = ServeMux()
    attempts: list[int] = []

    @mux.handler("flaky")
    def flaky(task: Task) -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("not yet")

    # Enqueued "100 s ago" by the client's clock: the worker measures ~100 s of wait.
    with Client(redis_url, clock=FakeClock(time.time() - 100)) as client:
        client.enqueue(Task("flaky"), max_retry=5)
    port = free_port()
    config: dict[str, Any] = {**FAST, "retry_delay_func": lambda n, e, t: 0.0}
    server = Server(redis_url, **config, metrics_port=port)
    server.start(mux)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        lbl = q("default", type="flaky")
        done = ("pyasynq_task_outcomes_total", _with(lbl, "succeeded"))
        deadline = time.monotonic() + 15
        while (got := _samples(get(url))).get(done) != 1:
            assert time.monotonic() < deadline, "timed out waiting for the third attempt"
            time.sleep(0.05)
    finally:
        server.shutdown()
    assert got["pyasynq_task_outcomes_total", _with(lbl, "retried")] == 2
    assert got["pyasynq_task_queue_wait_seconds_count", lbl] == 3  # retries were pending too
    # The first attempt waited ~100 s; the retries were forwarded moments before they ran.
    assert got["pyasynq_task_queue_wait_seconds_bucket", bucket(lbl, "60.0")] == 2
    assert got["pyasynq_task_queue_wait_seconds_bucket", bucket(lbl, "300.0")] == 3
