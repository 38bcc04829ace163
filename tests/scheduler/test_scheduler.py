"""Scheduler: registration errors, configuration, and the life cycle on a real clock
(start/shutdown on a thread, serve/ashutdown in a loop)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis

from pyasynq import ServerClosedError, Task
from pyasynq._rdb import keys
from pyasynq._scheduler.entries import entry_identity, entry_option_strings
from pyasynq.errors import BrokerError
from pyasynq.options import Options
from pyasynq.scheduler import CronSpecError, PeriodicTaskConfig, Scheduler, SchedulerConfig


def wait_until(pred: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


# --------------------------------------------------------------------------- registering


def test_register_rejects_a_bad_spec_with_the_reason(redis_url: str) -> None:
    s = Scheduler(redis_url)
    with pytest.raises(CronSpecError) as err:
        s.register("*/5 * * *", Task("t"))
    assert str(err.value).startswith("invalid cron spec '*/5 * * *': expected exactly 5 fields")
    with pytest.raises(ValueError, match="unrecognized descriptor: @weekdays"):
        s.register("@weekdays", Task("t"))
    assert s.entries() == []


def test_register_checks_task_and_options(redis_url: str) -> None:
    s = Scheduler(redis_url)
    with pytest.raises(TypeError, match=r"pyasynq\.Task"):
        s.register("@daily", "t")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown enqueue option"):
        s.register("@daily", Task("t"), queues="x")
    with pytest.raises(ValueError, match="queue must not be blank"):
        s.register("@daily", Task("t"), queue=" ")
    eid = s.register("@daily", Task("t"), queue="q", timeout=timedelta(minutes=1))
    (info,) = s.entries()
    assert (info.id, info.spec, info.raw_options) == (
        eid,
        "@daily",
        ('Queue("q")', "Timeout(1m0s)"),
    )
    assert info.next_enqueue_at is None and info.prev_enqueue_at is None  # not running


def test_entry_identity_is_asynq_periodic_task_config_hash() -> None:
    strings = ['Queue("cron")', "MaxRetry(3)", "Timeout(1m30s)"]
    go = hashlib.sha256()
    for part in ("*/5 * * * *", "report:rollup", '{"window":"5m"}', *sorted(strings)):
        go.update(part.encode())
    task = Task("report:rollup", b'{"window":"5m"}')
    assert entry_identity("*/5 * * * *", task, strings) == go.hexdigest()
    cfg = PeriodicTaskConfig("*/5 * * * *", task, {"queue": "cron", "max_retry": 3, "timeout": 90})
    assert cfg.identity() == go.hexdigest()
    # The option order does not matter; a different value or task header does.
    same = PeriodicTaskConfig("*/5 * * * *", task, Options(timeout=90, max_retry=3, queue="cron"))
    assert same.identity() == go.hexdigest()
    other = PeriodicTaskConfig(
        "*/5 * * * *", task, {"queue": "cron", "max_retry": 4, "timeout": 90}
    )
    assert other.identity() != go.hexdigest()
    headed = Task("report:rollup", b'{"window":"5m"}', headers={"k": "v"})
    assert entry_identity("*/5 * * * *", headed, strings) != go.hexdigest()


def test_entry_option_strings_process_at_and_in_replace_each_other() -> None:
    task = Task("t", process_at=4102444800, queue="a")
    assert entry_option_strings(task, Options(process_in=5), ["process_in"]) == [
        'Queue("a")',
        "ProcessIn(5s)",
    ]


def test_config_validation(redis_url: str) -> None:
    with pytest.raises(ValueError, match="location 'Mars/Olympus' is not a known time zone"):
        Scheduler(redis_url, location="Mars/Olympus")
    with pytest.raises(ValueError, match="heartbeat_interval"):
        SchedulerConfig(heartbeat_interval=0)
    with pytest.raises(ValueError, match="tick_marker_ttl"):
        SchedulerConfig(tick_marker_ttl=0.5)
    with pytest.raises(TypeError, match="pre_enqueue"):
        SchedulerConfig(pre_enqueue=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="either config"):
        Scheduler(redis_url, config=SchedulerConfig(), location="UTC")
    with pytest.raises(ValueError, match="log level"):
        SchedulerConfig(log_level="loud")
    assert SchedulerConfig(heartbeat_interval=timedelta(seconds=3)).entries_ttl() == 6
    assert SchedulerConfig(heartbeat_interval=0.2).entries_ttl() == 1


# --------------------------------------------------------------------------- life cycle


def test_start_fires_and_shutdown_cleans_up(redis_url: str, r: redis.Redis) -> None:
    s = Scheduler(redis_url, heartbeat_interval=0.2)
    eid = s.register("@every 1s", Task("t"), queue="q")
    s.start()
    try:
        assert s.entries()[0].next_enqueue_at is not None  # scheduled once start() returns
        wait_until(lambda: r.llen(keys.pending_key("q")) >= 1, timeout=3)
        wait_until(lambda: r.exists(keys.scheduler_entries_key(s.id)))
        late = s.register("@every 1s", Task("late"), queue="q")  # while running
        wait_until(lambda: r.exists(keys.scheduler_history_key(late)), timeout=3)
        with pytest.raises(ServerClosedError):
            s.start()
    finally:
        s.shutdown()
    assert r.exists(keys.scheduler_entries_key(s.id)) == 0
    assert r.zcard(keys.ALL_SCHEDULERS) == 0
    assert r.exists(keys.scheduler_history_key(eid), keys.scheduler_history_key(late)) == 0
    assert r.llen(keys.pending_key("q")) >= 2
    s.shutdown()  # a second shutdown does nothing


def test_start_fails_when_redis_is_unreachable() -> None:
    s = Scheduler("redis://127.0.0.1:1/0")
    s.register("@every 1s", Task("t"))
    with pytest.raises(BrokerError):
        s.start()
    with pytest.raises(ServerClosedError):
        s.start()


def test_shutdown_before_start(redis_url: str, r: redis.Redis) -> None:
    s = Scheduler(redis_url)
    s.register("@every 1s", Task("t"))
    s.shutdown()
    s.start()  # returns at once: already shut down
    s.shutdown()
    assert r.llen(keys.pending_key("default")) == 0


async def test_serve_and_ashutdown_in_one_loop(redis_url: str, r: redis.Redis) -> None:
    fired = asyncio.Event()

    async def post(info: Any, err: Any) -> None:
        fired.set()

    s = Scheduler(redis_url, post_enqueue=post, heartbeat_interval=0.2)
    s.register("@every 1s", Task("t"))
    runner = asyncio.create_task(s.serve())
    await asyncio.wait_for(fired.wait(), 3)
    with pytest.raises(RuntimeError, match="ashutdown"):
        s.shutdown()  # would block its own loop
    await s.ashutdown()
    await asyncio.wait_for(runner, 3)
    assert r.zcard(keys.ALL_SCHEDULERS) == 0
