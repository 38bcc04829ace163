"""A real Go asynq v0.26 server runs tasks that carry pyasynq's waiter and progress fields
(``pyasynq:notify``, ``pyasynq:progress``) while a pyasynq client waits for them: Go must
process them as any task, and the waiter must learn the outcome by polling (Go does not
announce it). See docs/redis-schema.md, "Waiters and progress with Go in the fleet"."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis

import pyasynq
from pyasynq._rdb import keys
from pyasynq._rdb.codec import decode_task

from .test_fencing_go import fencing_server, procs, wait_for  # noqa: F401 (fixtures)

QUEUE = "goresults"
TASK_TYPE = "fence:work"

pytestmark = pytest.mark.single_node  # the Go server talks to one Redis address


def test_a_go_server_finishes_tasks_pyasynq_waits_for(
    redis_url: str,
    r: redis.Redis,
    fencing_server: Path,  # noqa: F811
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],  # noqa: F811
) -> None:
    url = urlparse(redis_url)
    addr, db = f"{url.hostname or '127.0.0.1'}:{url.port or 6379}", int(url.path[1:] or 0)
    client = pyasynq.Client(redis_url)
    try:
        kept = client.enqueue(pyasynq.Task(TASK_TYPE, b"{}"), queue=QUEUE, retention=600)
        key = keys.task_key(QUEUE, kept.id)
        # As if an earlier pyasynq attempt had reported progress.
        r.hset(key, "pyasynq:progress", '{"fraction":0.25,"message":"py","at":1700000000}')
        got: dict[str, object] = {}

        def wait() -> None:
            try:
                got["value"] = client.wait_result(kept.id, queue=QUEUE, timeout=30)
            except BaseException as exc:
                got["error"] = exc

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        wait_for(lambda: r.hget(key, "pyasynq:notify"), "the waiter's registration")

        go_log = tmp_path / "go.log"
        with go_log.open("wb") as log:
            go = subprocess.Popen(
                [str(fencing_server), "-redis", addr, "-db", str(db), "-queue", QUEUE,
                 "-type", TASK_TYPE, "-started", str(tmp_path / "go-started"),
                 "-hold", str(tmp_path / "go-release"), "-result", "done by go"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        procs.append(go)
        wait_for((tmp_path / "go-started").exists, "the Go handler to start")
        (tmp_path / "go-release").touch()
        t0 = time.monotonic()
        waiter.join(30)
        assert got == {"value": b"done by go"}, got
        assert time.monotonic() - t0 < 10  # found by polling: Go announces nothing
        fields: dict[bytes, bytes] = r.hgetall(key)  # type: ignore[assignment]
        assert fields[b"state"] == b"completed" and decode_task(fields[b"msg"]).completed_at
        with pyasynq.Inspector(redis_url) as insp:
            info = insp.get_task_info(QUEUE, kept.id)
        assert info.result == b"done by go"
        assert info.progress is not None and info.progress.message == "py"

        # Without retention Go deletes the task, its result and the pyasynq fields with it.
        gone = client.enqueue(pyasynq.Task(TASK_TYPE, b"{}"), queue=QUEUE)
        wait_for(lambda: not r.exists(keys.task_key(QUEUE, gone.id)), "Go to finish it")
        with pytest.raises(pyasynq.TaskNotFoundError, match="retention"):
            client.wait_result(gone.id, queue=QUEUE, timeout=5)
        assert int(r.get(keys.processed_total_key(QUEUE)) or 0) == 2
        go.send_signal(signal.SIGTERM)
        go.wait(15)
        text = go_log.read_text()
        assert "Could not" not in text and "ERROR" not in text, text
    finally:
        client.close()
