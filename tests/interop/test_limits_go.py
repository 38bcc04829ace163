"""A Go asynq v0.26 server on a queue where pyasynq enforces a limit (issue 17 item 3): it
keeps processing, is not confused by the limit's keys, and runs parked tasks (ordinary
scheduled tasks to it) once due, without the limit: docs/limits.md says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis

import pyasynq
from pyasynq._rdb import keys

HERE = Path(__file__).resolve().parent
GO_MODULE = HERE / "go"
Q = "limited"

pytestmark = pytest.mark.single_node  # the Go server talks to one Redis address


def wait_for(check: object, what: str, timeout: float = 30.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no Go toolchain on PATH: the interop tests need Go")
        pytest.skip("no Go toolchain (go) on PATH: interop tests with Go asynq skipped")
    out = tmp_path_factory.mktemp("go-bin") / "limits_consumer"
    build = subprocess.run(
        [go, "build", "-o", str(out), "./cmd/limits_consumer"], cwd=GO_MODULE, capture_output=True,
        text=True, timeout=300, check=False, env={**os.environ, "GOFLAGS": "-mod=readonly"},
    )  # fmt: skip
    if build.returncode != 0:
        pytest.fail(f"go build ./cmd/limits_consumer failed:\n{build.stderr}")
    return out


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    ev = threading.Event()
    yield ev
    ev.set()


def test_go_server_processes_a_queue_with_pyasynq_limits(
    consumer: Path, redis_url: str, r: redis.Redis, gate: threading.Event, tmp_path: Path
) -> None:
    started: list[str] = []

    def hold(task: pyasynq.Task) -> None:
        started.append(task.payload.decode())
        gate.wait(30)

    mux = pyasynq.ServeMux()
    mux.handle("email:send", hold, limit=pyasynq.Limit(concurrency=1))
    server = pyasynq.Server(redis_url, queues={Q: 1}, concurrency=4, task_check_interval=0.05)
    server.start(mux)
    go: subprocess.Popen[bytes] | None = None
    try:
        with pyasynq.Client(redis_url) as client:
            for i in range(4):
                client.enqueue(pyasynq.Task("email:send", b"%d" % i), queue=Q, task_id=f"e{i}")
        # pyasynq runs one and parks three as scheduled tasks.
        wait_for(lambda: len(started) == 1 and r.zcard(keys.scheduled_key(Q)) == 3,
                 "one running, three parked")  # fmt: skip
        assert r.zcard(keys.limit_key(Q, "email:send", "waiting")) == 3
        server.stop()  # no more dequeues by pyasynq: the Go server takes what comes
        u = urlparse(redis_url)
        log = tmp_path / "go.log"
        with open(log, "wb") as out:
            go = subprocess.Popen([str(consumer), "-redis", f"{u.hostname}:{u.port}", "-queue", Q],
                                  stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        with pyasynq.Client(redis_url) as client:
            for i in range(3):
                client.enqueue(pyasynq.Task("other:work"), queue=Q, task_id=f"o{i}")
        # Go runs the other tasks beside the limit's keys ...
        wait_for(lambda: all(not r.exists(keys.task_key(Q, f"o{i}")) for i in range(3)),
                 "Go to process the other tasks", log=log)  # fmt: skip
        # ... and the parked ones once due (their 60 s fallback, brought forward here),
        # without the limit: they are ordinary scheduled tasks to it.
        r.zadd(keys.scheduled_key(Q), {f"e{i}": int(time.time()) - 1 for i in (1, 2, 3)}, xx=True)
        wait_for(lambda: all(not r.exists(keys.task_key(Q, f"e{i}")) for i in (1, 2, 3)),
                 "Go to process the parked tasks", log=log)  # fmt: skip
        gate.set()
        wait_for(lambda: not r.exists(keys.task_key(Q, "e0")), "pyasynq to finish its task")
        assert int(r.get(keys.processed_total_key(Q)) or 0) == 7
        assert r.zcard(keys.archived_key(Q)) == 0 and r.zcard(keys.retry_key(Q)) == 0
        text = log.read_text(errors="replace")
        assert "ERROR" not in text and "error" not in text.lower(), text
    finally:
        gate.set()
        if go is not None:
            go.terminate()
            go.wait(15)
        server.shutdown()
