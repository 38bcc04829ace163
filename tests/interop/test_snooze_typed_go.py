"""Snooze and typed tasks with the real Go asynq v0.26 on the same queues (issue 17).

* A task a pyasynq handler snoozed is, for Go's Inspector, an ordinary scheduled task
  (retried 0, no last error); a Go server's forwarder moves it to pending when due and a
  Go worker runs it to completion.
* A typed task's payload is plain JSON: a Go worker decodes it into a struct with unknown
  fields refused.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlparse

import pytest
import redis

import pyasynq
from pyasynq import Task, TaskState

HERE = Path(__file__).resolve().parent
GO_MODULE = HERE / "go"

pytestmark = pytest.mark.single_node  # the Go programs talk to one Redis address

T = TypeVar("T")


def wait_for(check: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _build(tmp: Path, name: str) -> Path:
    go = shutil.which("go")
    if go is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no Go toolchain on PATH: the interop tests need Go")
        pytest.skip("no Go toolchain (go) on PATH: interop tests with Go asynq skipped")
    out = tmp / name
    build = subprocess.run(
        [go, "build", "-o", str(out), f"./cmd/{name}"],
        cwd=GO_MODULE, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "GOFLAGS": "-mod=readonly"},
    )  # fmt: skip
    if build.returncode != 0:
        pytest.fail(f"go build ./cmd/{name} failed:\n{build.stderr}")
    return out


@pytest.fixture(scope="module")
def go_bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("go-bin")
    return {name: _build(tmp, name) for name in ("json_worker", "task_info")}


def _addr(redis_url: str) -> list[str]:
    url = urlparse(redis_url)
    db = (url.path or "/0").lstrip("/") or "0"
    return ["-redis", f"{url.hostname}:{url.port or 6379}", "-db", db]


@dataclass
class GoWorker:
    """A running cmd/json_worker; ``lines`` are the tasks it handled (decoded JSON)."""

    proc: subprocess.Popen[str]
    lines: list[dict[str, Any]]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def start_go_worker(
    go_bins: dict[str, Path], redis_url: str, tmp_path: Path
) -> Iterator[Callable[[str], GoWorker]]:
    workers: list[GoWorker] = []

    def start(queue: str) -> GoWorker:
        log: IO[str] = (tmp_path / f"go-{queue}.log").open("w")
        proc = subprocess.Popen(
            [str(go_bins["json_worker"]), *_addr(redis_url), "-queue", queue],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        w = GoWorker(proc, [])

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                w.lines.append(json.loads(line))

        threading.Thread(target=read, daemon=True).start()
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.stop()


def go_task_info(go_bins: dict[str, Path], redis_url: str, queue: str, task_id: str) -> Any:
    out = subprocess.run(
        [str(go_bins["task_info"]), *_addr(redis_url), "-queue", queue, "-id", task_id],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_go_reads_and_runs_a_snoozed_task(
    go_bins: dict[str, Path],
    redis_url: str,
    r: redis.Redis,
    start_go_worker: Callable[[str], GoWorker],
) -> None:
    queue = "snooze"
    snoozed = threading.Event()

    def handler(task: Task) -> None:
        snoozed.set()
        raise pyasynq.Snooze(2)

    with pyasynq.Client(redis_url) as client:
        client.enqueue(Task("report:build", b'{"n":1}'), queue=queue, task_id="snz", retention=300)
    server = pyasynq.Server(
        redis_url, queues={queue: 1}, task_check_interval=0.05, shutdown_timeout=1
    )
    server.start(handler)
    try:
        assert snoozed.wait(10), "the pyasynq handler did not run"
        with pyasynq.Inspector(redis_url) as insp:
            wait_for(
                lambda: insp.get_task_info(queue, "snz").state == TaskState.SCHEDULED,
                "the task to be scheduled",
            )
    finally:
        server.shutdown()
    before = time.time()
    info = go_task_info(go_bins, redis_url, queue, "snz")
    assert info["state"] == "scheduled"
    assert (info["retried"], info["last_err"]) == (0, "")
    assert info["queue_scheduled"] == 1
    assert before - 1 <= info["next_process_at"] <= before + 3
    assert info["payload"] == '{"n":1}'

    go = start_go_worker(queue)
    wait_for(lambda: go.lines, "the Go worker to run the snoozed task")
    assert go.lines == [{"id": "snz", "type": "report:build", "retried": 0, "payload": {"n": 1}}]
    with pyasynq.Inspector(redis_url) as insp:
        done = wait_for(
            lambda: (t := insp.get_task_info(queue, "snz")).state == TaskState.COMPLETED and t,
            "Go to complete the task",
        )
    assert done.retried == 0 and done.last_err == ""
    assert r.hget(f"asynq:{{{queue}}}:t:snz", "snoozed") == b"1"  # pyasynq's count, kept


@dataclass
class VerifyEmail:
    username: str
    lang: str = "en"


def test_a_go_worker_decodes_a_typed_payload(
    redis_url: str, start_go_worker: Callable[[str], GoWorker]
) -> None:
    queue = "typed"

    @pyasynq.typed_task("email:verify", queue=queue)
    async def send(payload: VerifyEmail) -> None: ...

    with pyasynq.Client(redis_url) as client:
        send.enqueue(client, username="alice", lang="fr", task_id="t1")
        send.enqueue(client, VerifyEmail("bob"), task_id="t2")
    go = start_go_worker(queue)
    wait_for(lambda: len(go.lines) == 2, "the Go worker to handle both tasks")
    got = {line["id"]: line["payload"] for line in go.lines}
    assert got == {
        "t1": {"username": "alice", "lang": "fr"},
        "t2": {"username": "bob", "lang": "en"},
    }
