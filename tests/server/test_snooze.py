"""Snooze (issue 17): a handler's ``raise Snooze(delay)`` schedules the task again without
a retry or an error: retried, error_msg and last_failed_at stay, no counter moves, the error
handler is not called, one info line says so, and the task runs again after the delay."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import redis
from rdb.helpers import counters, queue_state, task_fields, task_msg

from pyasynq import Client, Inspector, Snooze, Task, TaskState
from pyasynq._rdb import keys
from pyasynq.context import current_task

from .support import ListLogger, Servers, wait_for

Q = "default"


def no_delay(n: int, e: BaseException, t: Task) -> float:
    return 0.0


def test_snooze_validates_its_delay() -> None:
    assert Snooze(30).delay == 30.0
    assert Snooze(timedelta(minutes=2)).delay == 120.0
    assert Snooze(0).delay == 0.0
    assert str(Snooze(1.5)) == "snooze for 1.5s"
    with pytest.raises(ValueError, match=">= 0"):
        Snooze(-1)
    with pytest.raises(ValueError, match="finite"):
        Snooze(float("inf"))
    with pytest.raises(TypeError, match="timedelta"):
        Snooze("30")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Snooze(True)


def test_a_snoozed_task_is_scheduled_without_counting_a_retry(
    servers: Servers, client: Client, r: redis.Redis, log: ListLogger
) -> None:
    errors: list[BaseException] = []

    async def handler(task: Task) -> None:
        raise Snooze(30)

    info = client.enqueue(Task("report:build", b"{}"), task_id="s1", max_retry=3)
    servers.start(handler, error_handler=lambda t, e: errors.append(e), log_level="info")
    wait_for(lambda: queue_state(r, Q)["scheduled"], what="s1 scheduled")
    [(tid, score)] = queue_state(r, Q)["scheduled"]
    assert tid == info.id == "s1"
    fields = task_fields(r, Q, "s1")
    assert fields["state"] == "scheduled" and fields["snoozed"] == "1"
    msg = fields["msg"]
    assert (msg.retried, msg.error_msg, msg.last_failed_at) == (0, "", 0)
    assert queue_state(r, Q)["active"] == [] and queue_state(r, Q)["retry"] == []
    c = counters(r, Q, score)
    assert c.processed.value is None and c.failed.value is None
    assert errors == []
    assert log.find('task s1 (type "report:build", queue "default") snoozed for 30s', "info")
    assert not [m for lv, m in log.lines if "s1" in m and lv in {"warn", "error"}]
    # The inspector sees an ordinary scheduled task, due in about 30 s.
    with Inspector(servers.redis_url) as insp:
        ti = insp.get_task_info(Q, "s1")
    assert ti.state == TaskState.SCHEDULED and ti.retried == 0 and ti.last_err == ""
    assert ti.next_process_at is not None and ti.next_process_at.timestamp() == score


def test_retried_and_the_last_error_survive_a_snooze(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    runs: list[int] = []

    async def handler(task: Task) -> None:
        runs.append(current_task().retry_count)
        if len(runs) == 1:
            raise RuntimeError("flaky upstream")
        raise Snooze(60)

    client.enqueue(Task("t"), task_id="s2", max_retry=5)
    servers.start(handler, retry_delay_func=no_delay)
    wait_for(lambda: queue_state(r, Q)["scheduled"], what="s2 scheduled")
    msg = task_msg(r, Q, "s2")
    assert msg is not None
    assert runs == [0, 1]
    assert msg.retried == 1 and msg.error_msg == "RuntimeError: flaky upstream"
    assert msg.last_failed_at > 0
    c = counters(r, Q, msg.last_failed_at)
    assert (c.processed.value, c.failed.value) == (1, 1)  # the failure, not the snooze


def test_a_snoozed_task_runs_again_after_the_delay(
    servers: Servers, client: Client, r: redis.Redis, log: ListLogger
) -> None:
    seen: list[int] = []
    done = threading.Event()

    def handler(task: Task) -> None:  # a def handler, in the thread pool
        seen.append(current_task().retry_count)
        if len(seen) < 3:
            raise Snooze(timedelta(0))
        done.set()

    client.enqueue(Task("t"), task_id="s3", retention=600)
    servers.start(handler)
    assert done.wait(10), "the task did not run three times"
    wait_for(lambda: queue_state(r, Q)["completed"], what="s3 completed")
    assert seen == [0, 0, 0]
    fields = task_fields(r, Q, "s3")
    assert fields["state"] == "completed" and fields["snoozed"] == "2"
    assert len(log.find("task s3 ", "info")) >= 2


def test_a_snooze_in_the_chain_counts(servers: Servers, client: Client, r: redis.Redis) -> None:
    async def handler(task: Task) -> None:
        try:
            raise Snooze(45)
        except Snooze as exc:
            raise RuntimeError("not ready") from exc

    client.enqueue(Task("t"), task_id="s4")
    servers.start(handler)
    wait_for(lambda: queue_state(r, Q)["scheduled"], what="s4 scheduled")
    assert task_msg(r, Q, "s4").retried == 0  # type: ignore[union-attr]
    assert r.zscore(keys.retry_key(Q), "s4") is None
