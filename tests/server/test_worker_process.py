"""What a real ``pyasynq worker`` process does when its handlers misbehave (issue 14): a
failure is one log line at the level asked for, SystemExit/KeyboardInterrupt from a handler
fail only that task, and SIGTERM ends the process within the shutdown timeout plus a
small bound whatever a handler does, with what did not finish back in pending.

The bounds below are generous (a loaded 2-core machine): they tell "exits" from "hangs",
not how fast it exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rdb.helpers import queue_state, task_msg

from pyasynq import Client, Task
from pyasynq._rdb import keys

from .support import wait_for

pytestmark = pytest.mark.single_node(
    "real worker processes and their signals; the topology is not what is under test"
)

HERE = Path(__file__).parent
Q = "default"
EXIT_BOUND = 15.0  # shutdown_timeout (1 s) plus the bound, with room for a slow machine


class Worker:
    def __init__(self, redis_url: str, log_path: Path, *args: str) -> None:
        self.log_path = log_path
        env = {**os.environ, "APP_REDIS_URL": redis_url, "PYTHONPATH": str(HERE)}
        with open(log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pyasynq", "--redis-url", redis_url, "worker",
                 "worker_app:mux", "--config", "worker_app:config", *args],
                cwd=HERE, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self, r: redis.Redis) -> None:
        wait_for(lambda: r.zcard(keys.ALL_SERVERS) or self.proc.poll() is not None,
                 timeout=20, what="the worker to start")  # fmt: skip
        assert self.proc.poll() is None, self.log

    def terminate(self) -> float:
        """SIGTERM; returns how long the process took to exit."""
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(EXIT_BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker was still running {EXIT_BOUND} s after SIGTERM:\n{self.log}")
        return time.monotonic() - t

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def start(redis_url: str, r: redis.Redis, tmp_path: Path) -> Iterator[Any]:
    started: list[Worker] = []

    def make(*args: str) -> Worker:
        w = Worker(redis_url, tmp_path / f"worker{len(started)}.log", *args)
        started.append(w)
        w.wait_started(r)
        return w

    yield make
    for w in started:
        w.kill()


@pytest.fixture
def client(redis_url: str, r: redis.Redis) -> Iterator[Client]:
    with Client(redis_url) as c:
        yield c


def lines_with(log: str, text: str) -> list[str]:
    return [line for line in log.splitlines() if text in line]


def one_line_with(log: str, text: str) -> str:
    found = lines_with(log, text)
    assert len(found) == 1, f"expected one line with {text!r} in:\n{log}"
    return found[0]


def test_failures_are_logged_once_at_the_level_asked_for(
    start: Any, client: Client, r: redis.Redis
) -> None:
    client.enqueue(Task("fail:key"), task_id="k1", max_retry=2)
    client.enqueue(Task("fail:key"), task_id="k2", max_retry=0)
    client.enqueue(Task("no:such:type"), task_id="nf", max_retry=5)
    w = start("--log-level", "warn")
    wait_for(lambda: r.zcard(keys.retry_key(Q)) == 2 and r.zcard(keys.archived_key(Q)) == 1,
             timeout=10, what="two tasks in retry, one archived")  # fmt: skip
    msg = task_msg(r, Q, "k1")
    assert msg is not None and msg.error_msg == "KeyError: 'missing'"
    w.terminate()
    log = w.log
    assert not lines_with(log, " INFO "), log  # --log-level warn
    k1 = one_line_with(log, "task k1 ")
    assert "WARNING" in k1 and 'type "fail:key"' in k1 and 'queue "default"' in k1
    assert "retry 1/2" in k1 and k1.endswith("KeyError: 'missing'")
    k2 = one_line_with(log, "task k2 ")
    assert "ERROR" in k2 and "retry exhausted (0/0), archived" in k2
    nf = one_line_with(log, "task nf ")
    assert 'no handler for type "no:such:type"' in nf and "retry 1/5" in nf
    # The first KeyError from that line of code comes with its traceback, the second not.
    assert log.count("Traceback (most recent call last)") == 1, log
    assert log.count('raise KeyError("missing")') == 1, log


def test_system_exit_and_keyboard_interrupt_fail_only_their_task(
    start: Any, client: Client, r: redis.Redis
) -> None:
    w = start()
    client.enqueue(Task("exit:async"), task_id="ea")
    client.enqueue(Task("exit:sync"), task_id="es")
    wait_for(lambda: r.zcard(keys.retry_key(Q)) == 2 or w.proc.poll() is not None,
             timeout=10, what="both tasks in retry")  # fmt: skip
    assert w.proc.poll() is None, f"the worker died:\n{w.log}"
    ea, es = task_msg(r, Q, "ea"), task_msg(r, Q, "es")
    assert ea is not None and ea.error_msg == "SystemExit: 3"
    assert es is not None and es.error_msg == "KeyboardInterrupt"
    client.enqueue(Task("ok"), task_id="after")
    wait_for(lambda: r.lrange("app:done", 0, -1) == [b"after"], what="the next task to run")
    assert w.terminate() < EXIT_BOUND
    assert w.proc.returncode == 0
    assert "worker keeps running" in lines_with(w.log, "task ea ")[0]


def test_sigterm_ends_a_worker_whose_async_handler_swallows_cancellation(
    start: Any, client: Client, r: redis.Redis
) -> None:
    w = start()
    client.enqueue(Task("stubborn"), task_id="s")
    wait_for(lambda: r.lrange("app:started", 0, -1) == [b"s"], what="the handler to start")
    w.terminate()
    assert queue_state(r)["pending"] == ["s"] and queue_state(r)["active"] == []
    line = one_line_with(w.log, "async handler is still running")
    assert "task s " in line and "abandoned" in line


def test_sigterm_ends_a_worker_whose_def_handler_left_a_non_daemon_thread(
    start: Any, client: Client, r: redis.Redis
) -> None:
    w = start()
    client.enqueue(Task("thread:leak"), task_id="t")
    wait_for(lambda: r.lrange("app:done", 0, -1) == [b"t"], what="the handler to run")
    wait_for(lambda: r.get(keys.processed_total_key(Q)) == b"1", what="the task to finish")
    w.terminate()
    line = one_line_with(w.log, "leaky-poller")
    assert "non-daemon" in line


def test_sigterm_ends_a_worker_whose_def_handler_is_stuck(
    start: Any, client: Client, r: redis.Redis
) -> None:
    w = start()
    client.enqueue(Task("stuck:sync"), task_id="st")
    wait_for(lambda: r.lrange("app:started", 0, -1) == [b"st"], what="the handler to start")
    w.terminate()
    assert queue_state(r)["pending"] == ["st"]
    line = one_line_with(w.log, "still running in thread")
    assert "task st " in line


def test_sigterm_ends_a_worker_whose_async_handler_waits_on_a_stuck_executor_thread(
    start: Any, client: Client, r: redis.Redis
) -> None:
    w = start()
    client.enqueue(Task("to_thread:stuck"), task_id="tt")
    wait_for(lambda: r.lrange("app:started", 0, -1) == [b"tt"], what="the handler to start")
    w.terminate()
    assert queue_state(r)["pending"] == ["tt"]
    assert "non-daemon" in one_line_with(w.log, "asyncio_")


def test_sigterm_ends_a_worker_whose_async_handler_blocks_the_event_loop(
    start: Any, client: Client, r: redis.Redis
) -> None:
    w = start()
    client.enqueue(Task("blocks:loop"), task_id="b")
    wait_for(lambda: r.lrange("app:started", 0, -1) == [b"b"], what="the handler to start")
    w.terminate()  # after shutdown_timeout (1 s) and the watchdog's grace (5 s)
    assert w.proc.returncode == 1
    assert queue_state(r)["pending"] == ["b"] and queue_state(r)["active"] == []
    line = one_line_with(w.log, "event loop is blocked")
    assert 'b (type "blocks:loop")' in line
