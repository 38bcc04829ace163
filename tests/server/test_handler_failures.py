"""What a worker says and stores when a handler fails (issue 14): one line per failed
attempt at the right level, the traceback once per raising line (every time at debug),
``error_msg`` with the exception's type; SystemExit, KeyboardInterrupt and other
BaseExceptions fail only their task; a handler that ignores its cancellation cannot hold
the shutdown up. Real processes and SIGTERM: test_worker_process.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time

import pytest
import redis
from rdb.helpers import queue_state, task_msg

from pyasynq import Client, RevokeTask, SkipRetry, Task
from pyasynq._rdb import keys
from pyasynq._server.failures import duration, error_text
from pyasynq.context import current_task
from pyasynq.mux import ServeMux
from pyasynq.server import Server

from .support import FAST, ListLogger, Servers, wait_for

Q = "default"


def no_delay(n: int, e: BaseException, t: Task) -> float:
    return 0.0


def later(n: int, e: BaseException, t: Task) -> float:
    return 600.0


def about(log: ListLogger, task_id: str) -> list[tuple[str, str]]:
    """Every (level, message) that names the task."""
    return [(lv, m) for lv, m in log.lines if f"task {task_id} " in m]


# --------------------------------------------------------------------------- error_msg


class PaymentDeclined(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (KeyError("missing"), "KeyError: 'missing'"),
        (ValueError(), "ValueError"),
        (PaymentDeclined("card expired"), "PaymentDeclined: card expired"),
        (SystemExit(3), "SystemExit: 3"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
        # asynq's signals keep the message the handler chose, as Go stores err.Error().
        (SkipRetry("bad payload"), "bad payload"),
        (RevokeTask(), "revoke task"),
    ],
)
def test_error_text_is_the_type_and_the_message(exc: BaseException, text: str) -> None:
    assert error_text(exc) == text


def test_durations_read_well() -> None:
    assert [duration(s) for s in (0.2, 45, 600, 3600 * 5)] == ["0s", "45s", "10m", "5.0h"]


# --------------------------------------------------------------------------- the lines


def test_each_attempt_is_one_line_and_the_traceback_comes_once(
    servers: Servers, client: Client, r: redis.Redis, log: ListLogger
) -> None:
    async def handler(task: Task) -> None:
        raise KeyError("missing")

    client.enqueue(Task("email:send"), task_id="k", max_retry=2)
    servers.start(handler, retry_delay_func=no_delay, log_level="info")
    wait_for(lambda: r.zscore(keys.archived_key(Q), "k"), what="k archived")
    lines = about(log, "k")
    assert [lv for lv, _ in lines] == ["warn", "warn", "error"], lines
    head = 'task k (type "email:send", queue "default") failed; '
    assert lines[0][1].startswith(head + "retry 1/2 in 0s: KeyError: 'missing'\nTraceback")
    assert lines[1][1] == head + "retry 2/2 in 0s: KeyError: 'missing'"
    assert lines[2][1] == head + (
        "retry exhausted (2/2), archived: KeyError: 'missing' "
        "(to run it again: pyasynq task run -q default -i k)"
    )
    # The traceback shows the handler, not the worker's own frames.
    assert 'raise KeyError("missing")' in lines[0][1]
    assert "processor.py" not in lines[0][1] and "mux.py" not in lines[0][1]
    msg = task_msg(r, Q, "k")
    assert msg is not None and msg.error_msg == "KeyError: 'missing'"


def test_at_debug_every_line_has_its_traceback(
    servers: Servers, client: Client, r: redis.Redis, log: ListLogger
) -> None:
    def handler(task: Task) -> None:
        raise KeyError("missing")

    client.enqueue(Task("t"), task_id="d", max_retry=1)
    servers.start(handler, retry_delay_func=no_delay, log_level="debug")
    wait_for(lambda: r.zscore(keys.archived_key(Q), "d"), what="d archived")
    lines = about(log, "d")
    assert len(lines) == 2 and all("\nTraceback" in m for _, m in lines), lines


def test_a_stdlib_logger_gets_the_traceback_as_exc_info(
    redis_url: str, client: Client, r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(task: Task) -> None:
        raise KeyError("missing")

    logger = logging.getLogger("test.pyasynq.failures")
    client.enqueue(Task("t"), task_id="s1", max_retry=0)
    client.enqueue(Task("t"), task_id="s2", max_retry=0)
    srv = Server(redis_url, **{**FAST, "logger": logger})
    with caplog.at_level(logging.INFO, logger=logger.name):
        srv.start(handler)
        try:
            wait_for(lambda: r.zcard(keys.archived_key(Q)) == 2, what="both archived")
        finally:
            srv.shutdown()
    failed = [rec for rec in caplog.records if "retry exhausted" in rec.getMessage()]
    assert [rec.levelno for rec in failed] == [logging.ERROR, logging.ERROR]
    # Same raising line: the first record carries the traceback, the second does not.
    assert failed[0].exc_info is not None and failed[0].exc_info[0] is KeyError
    assert failed[1].exc_info is None


def test_no_handler_names_the_type_and_what_the_mux_has(
    servers: Servers, client: Client, r: redis.Redis, log: ListLogger
) -> None:
    mux = ServeMux()
    mux.handle("email:send", lambda t: None)
    mux.handle("report:", lambda t: None)
    client.enqueue(Task("emial:send"), task_id="nf", max_retry=3)
    servers.start(mux, retry_delay_func=later)
    wait_for(lambda: r.zscore(keys.retry_key(Q), "nf"), what="nf in retry")
    ((level, line),) = about(log, "nf")
    assert level == "warn"
    assert line == (
        'task nf (type "emial:send", queue "default"): no handler for type "emial:send" '
        '(this worker\'s ServeMux has "email:send", "report:"); retry 1/3 in 10m'
    )
    msg = task_msg(r, Q, "nf")
    assert msg is not None and msg.error_msg == 'handler not found for task "emial:send"'


def test_skip_retry_revoke_and_not_counted_errors_say_what_happened(
    servers: Servers, client: Client, r: redis.Redis, log: ListLogger
) -> None:
    class RateLimited(Exception):
        pass

    def handler(task: Task) -> None:
        if task.type == "skip":
            raise SkipRetry("bad payload")
        if task.type == "revoke":
            raise RevokeTask("user deleted")
        raise RateLimited("slow down")

    for t in ("skip", "revoke", "limited"):
        client.enqueue(Task(t), task_id=t, max_retry=5)
    servers.start(
        handler, retry_delay_func=later, is_failure=lambda e: not isinstance(e, RateLimited)
    )
    wait_for(lambda: r.zcard(keys.archived_key(Q)) == 1 and r.zcard(keys.retry_key(Q)) == 1,
             what="skip archived, limited in retry")  # fmt: skip
    wait_for(lambda: about(log, "revoke"), what="the revoke line")
    who = 'task {0} (type "{0}", queue "default") failed; '
    assert about(log, "skip") == [
        (
            "warn",
            who.format("skip") + "SkipRetry, archived without retrying: bad payload "
            "(to run it again: pyasynq task run -q default -i skip)",
        )
    ]
    assert about(log, "revoke") == [
        ("warn", who.format("revoke") + "RevokeTask, deleted without retrying: user deleted")
    ]
    ((level, line),) = about(log, "limited")
    assert level == "info"
    assert line.split("\n")[0] == (
        who.format("limited") + "retry in 10m (not counted as a failure): RateLimited: slow down"
    )


# --------------------------------------------------------------------------- BaseException


class Custom(BaseException):
    pass


@pytest.mark.parametrize("sync", [False, True])
@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (SystemExit(3), "SystemExit: 3"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
        (GeneratorExit(), "GeneratorExit"),
        (Custom("odd"), "Custom: odd"),
    ],
)
def test_a_base_exception_from_a_handler_fails_only_its_task(  # noqa: PLR0917
    sync: bool, exc: BaseException, text: str,
    servers: Servers, client: Client, r: redis.Redis, log: ListLogger,
) -> None:  # fmt: skip
    gate = threading.Event()
    done: list[str] = []

    def raise_it(task: Task) -> None:
        if current_task().id == "bad":
            raise exc
        gate.wait(5)  # beside the bad one, running when it fails
        done.append(current_task().id)

    async def async_handler(task: Task) -> None:
        if current_task().id == "bad":
            raise exc
        await asyncio.to_thread(gate.wait, 5)
        done.append(current_task().id)

    client.enqueue(Task("t"), task_id="beside")
    srv = servers.start(raise_it if sync else async_handler, retry_delay_func=later)
    wait_for(lambda: srv.runtime and len(srv.runtime.workers) == 1, what="beside running")
    client.enqueue(Task("t"), task_id="bad")
    wait_for(lambda: r.zscore(keys.retry_key(Q), "bad"), what="bad in retry")
    gate.set()
    client.enqueue(Task("t"), task_id="after")
    wait_for(lambda: sorted(done) == ["after", "beside"], what="the other tasks to finish")
    msg = task_msg(r, Q, "bad")
    assert msg is not None and msg.error_msg == text and msg.retried == 1
    ((level, line),) = about(log, "bad")
    assert level == "warn" and "the worker keeps running" in line
    assert srv.status == "active"


def test_a_handler_raising_cancelled_error_is_still_context_canceled(
    servers: Servers, client: Client, r: redis.Redis
) -> None:
    async def handler(task: Task) -> None:
        raise asyncio.CancelledError

    client.enqueue(Task("t"), task_id="c")
    servers.start(handler, retry_delay_func=later)
    wait_for(lambda: r.zscore(keys.retry_key(Q), "c"), what="c in retry")
    msg = task_msg(r, Q, "c")
    assert msg is not None and msg.error_msg == "context canceled"


def test_an_error_handler_raising_system_exit_is_only_logged(
    servers: Servers, client: Client, r: redis.Redis, log: ListLogger
) -> None:
    def on_error(task: Task, err: BaseException) -> None:
        raise SystemExit("from the error handler")

    def handler(task: Task) -> None:
        raise ValueError("boom")

    client.enqueue(Task("t"), task_id="e")
    srv = servers.start(handler, error_handler=on_error, retry_delay_func=later)
    wait_for(lambda: r.zscore(keys.retry_key(Q), "e"), what="e in retry")
    assert log.find("error handler failed for task e: SystemExit: from the error handler")
    assert srv.status == "active"


# --------------------------------------------------------------------------- shutdown


def test_shutdown_gives_up_on_an_async_handler_that_swallows_cancellation(
    redis_url: str, client: Client, r: redis.Redis
) -> None:
    started = threading.Event()

    async def stubborn(task: Task) -> None:
        started.set()
        while True:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)

    log = ListLogger()
    srv = Server(redis_url, **{**FAST, "logger": log})
    client.enqueue(Task("t"), task_id="s")
    srv.start(stubborn)
    assert started.wait(5)
    # On a helper thread: before issue 14 this never returned.
    stopper = threading.Thread(target=srv.shutdown, daemon=True)
    t = time.monotonic()
    stopper.start()
    stopper.join(15)
    assert not stopper.is_alive(), "shutdown() did not return"
    assert time.monotonic() - t < 10
    assert queue_state(r)["pending"] == ["s"]
    assert log.find("task s ", "warn") and log.find("abandoned")


def test_a_handler_running_on_past_its_deadline_is_reported_once(
    servers: Servers, client: Client, r: redis.Redis, log: ListLogger
) -> None:
    async def stubborn(task: Task) -> None:
        for _ in range(80):  # ends by itself, but long after its deadline
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)

    client.enqueue(Task("t"), task_id="late", timeout=1)
    servers.start(stubborn, retry_delay_func=later)
    wait_for(lambda: r.zscore(keys.retry_key(Q), "late"), what="late in retry")
    line = wait_for(lambda: log.find("still running"), what="the warning")
    assert line == [
        'task late (type "t", queue "default"): its async handler is still running 1s after '
        "it was cancelled (does it catch CancelledError?); its outcome is written, the "
        "handler runs on unsupervised"
    ]


def test_run_names_a_non_daemon_thread_a_handler_left_running(
    redis_url: str, client: Client, r: redis.Redis
) -> None:
    """run() in the main thread (it installs the signal handlers); a helper sends SIGTERM."""
    release = threading.Event()

    def handler(task: Task) -> None:
        threading.Thread(target=release.wait, name="left-behind", daemon=False).start()

    log = ListLogger()
    srv = Server(redis_url, **{**FAST, "logger": log})
    client.enqueue(Task("t"), task_id="x")

    def drive() -> None:
        wait_for(lambda: r.get(keys.processed_total_key(Q)) == b"1", what="x processed")
        os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=drive)
    helper.start()
    try:
        srv.run(handler)
    finally:
        release.set()
        helper.join()
    assert log.find("thread 'left-behind' (non-daemon) is still running after shutdown; "
                    "Python waits for non-daemon threads", "warn")  # fmt: skip
