"""A real Go asynq v0.26 server takes over a task from a stalled pyasynq worker; the stale
worker's late outcome must be refused (issue 13: fencing with Go workers in the fleet).

The case, with real processes:

1. A pyasynq worker (``fencing_app``, lease 4 s) runs the task. Its Redis connections go
   through :class:`StallingProxy`. The test stalls the proxy, lets the handler finish, and
   waits until the worker's outcome (mark_complete: the task has retention) is in flight,
   held in the proxy; then it SIGSTOPs the worker. The outcome was sent while the worker's
   lease was valid, so no local check can stop it: only Redis can.
2. Go's recoverer takes only leases that expired 30 s ago or more (clock-skew margin, asynq
   v0.26 recoverer.go); instead of waiting those 30 s the test moves the lease back by 31 s,
   and with it the expiry pyasynq's fence records (``attempt`` = "<token> <expiry>"), which
   is the state 31 s more of stall would leave: the fence still holds until Go acts.
3. A Go server (``cmd/fencing_server``) starts: its recoverer runs at start, retries the
   task (retried 1, error "asynq: task lease expired"), its forwarder moves it to pending
   and its processor runs it. The Go handler holds the task.
4. The proxy delivers the stale outcome and the worker continues (SIGCONT). Before the fix
   the outcome matched the surviving ``attempt`` token and moved Go's running task to
   completed; Go then failed with "Could not move task ... NOT FOUND".
5. Go's handler finishes: the task must be completed by Go (its msg, its result) and Go must
   log no failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import pytest
import redis

import pyasynq
from pyasynq._rdb import keys
from pyasynq._rdb.codec import decode_task

HERE = Path(__file__).resolve().parent
GO_MODULE = HERE / "go"
QUEUE = "fencing"
TASK_TYPE = "fence:work"

pytestmark = pytest.mark.single_node  # the Go server talks to one Redis address

T = TypeVar("T")


def wait_for(check: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- the Go program --------------------------------------------------------------------


@pytest.fixture(scope="module")
def fencing_server(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cmd/fencing_server built once per module (Go's build cache makes rebuilds cheap)."""
    go = shutil.which("go")
    if go is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no Go toolchain on PATH: the interop tests need Go")
        pytest.skip("no Go toolchain (go) on PATH: interop tests with Go asynq skipped")
    out = tmp_path_factory.mktemp("go-bin") / "fencing_server"
    build = subprocess.run(
        [go, "build", "-o", str(out), "./cmd/fencing_server"],
        cwd=GO_MODULE, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "GOFLAGS": "-mod=readonly"},
    )  # fmt: skip
    if build.returncode != 0:
        pytest.fail(f"go build ./cmd/fencing_server failed:\n{build.stderr}")
    return out


# --- a TCP proxy that can hold a client's commands -------------------------------------


class _Pipe:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.held = b""
        self.client_eof = False


class StallingProxy:
    """Forwards loopback TCP to Redis; while stalled, what clients send is held (replies
    still flow) and delivered, in order per connection, by :meth:`resume`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.stalled = False
        self.pipes: list[_Pipe] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            pipe = _Pipe(client, socket.create_connection(self.target))
            with self.lock:
                self.pipes.append(pipe)
            threading.Thread(target=self._up, args=(pipe,), daemon=True).start()
            threading.Thread(target=self._down, args=(pipe,), daemon=True).start()

    def _up(self, pipe: _Pipe) -> None:
        while True:
            try:
                data = pipe.client.recv(65536)
            except OSError:
                data = b""
            with self.lock:
                if not data:
                    pipe.client_eof = True
                    if not self.stalled:
                        _shut(pipe.server)
                    return
                if self.stalled:
                    pipe.held += data
                    continue
                try:
                    pipe.server.sendall(data)
                except OSError:
                    return

    def _down(self, pipe: _Pipe) -> None:
        while True:
            try:
                data = pipe.server.recv(65536)
                if not data:
                    break
                pipe.client.sendall(data)
            except OSError:
                break
        _shut(pipe.client)

    def stall(self) -> None:
        with self.lock:
            self.stalled = True

    def held(self) -> bytes:
        with self.lock:
            return b"".join(p.held for p in self.pipes)

    def resume(self) -> None:
        with self.lock:
            self.stalled = False
            for p in self.pipes:
                try:
                    if p.held:
                        p.server.sendall(p.held)
                    if p.client_eof:
                        _shut(p.server)
                except OSError:
                    pass
                p.held = b""

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for p in self.pipes:
                p.client.close()
                p.server.close()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


# --- the case ---------------------------------------------------------------------------


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.terminate()
    for p in started:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def test_a_stale_pyasynq_outcome_never_touches_a_task_go_took_over(
    redis_url: str,
    r: redis.Redis,
    fencing_server: Path,
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    url = urlparse(redis_url)
    host, port, db = url.hostname or "127.0.0.1", url.port or 6379, int(url.path[1:] or 0)
    proxy = StallingProxy(host, port)
    try:
        _run_case(r, redis_url, proxy, f"{host}:{port}", db, fencing_server, tmp_path, procs)
    finally:
        proxy.resume()
        proxy.close()


def _run_case(  # noqa: PLR0917 (one scenario, its parts)
    r: redis.Redis,
    redis_url: str,
    proxy: StallingProxy,
    go_addr: str,
    db: int,
    fencing_server: Path,
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    with pyasynq.Client(redis_url) as client:
        info = client.enqueue(
            pyasynq.Task(TASK_TYPE, b"{}"), queue=QUEUE, max_retry=3, retention=3600
        )
    tid, task_key = info.id, keys.task_key(QUEUE, info.id)

    # 1. The pyasynq worker runs the task through the proxy.
    py_log = tmp_path / "pyasynq.log"
    proxy_url = redis_url.replace(f":{urlparse(redis_url).port}", f":{proxy.port}", 1)
    env = {**os.environ, "FENCE_DIR": str(tmp_path), "PYTHONPATH": str(HERE)}
    with py_log.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pyasynq", "--redis-url", proxy_url, "worker",
             "fencing_app:mux", "--config", "fencing_app:config", "--log-level", "info"],
            cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    procs.append(worker)
    wait_for((tmp_path / "py-started").exists, "the pyasynq handler to start")

    # The outcome leaves while the lease is valid and is held on the way; the worker stalls.
    proxy.stall()
    (tmp_path / "py-release").touch()
    wait_for(lambda: b":processed" in proxy.held(), "the pyasynq outcome to be sent")
    os.kill(worker.pid, signal.SIGSTOP)

    # 2. 31 s more of stall, as far as Go's recoverer can tell.
    _move_lease(r, tid, int(time.time()) - 31)
    assert r.hget(task_key, "state") == b"active"

    # 3. A Go server recovers the task and runs it; its handler holds it.
    go_log = tmp_path / "go.log"
    with go_log.open("wb") as log:
        go = subprocess.Popen(
            [str(fencing_server), "-redis", go_addr, "-db", str(db), "-queue", QUEUE,
             "-type", TASK_TYPE, "-started", str(tmp_path / "go-started"),
             "-hold", str(tmp_path / "go-release"), "-result", "done by go"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    procs.append(go)
    started = wait_for(lambda: _read(tmp_path / "go-started"), "the Go handler to start")
    assert started == f"{tid} 1\n"  # Go's recoverer counted the lost lease: retried 1
    assert r.lrange(keys.active_key(QUEUE), 0, -1) == [tid.encode()]
    assert (r.zscore(keys.lease_key(QUEUE), tid) or 0) > time.time() + 20  # Go's lease

    # 4. The stale outcome arrives; the worker continues.
    proxy.resume()
    os.kill(worker.pid, signal.SIGCONT)
    lost = f"task {tid}: lease lost to another worker"
    wait_for(
        lambda: lost in py_log.read_text() or r.hget(task_key, "state") != b"active",
        "the stale outcome to be answered",
    )
    assert r.hget(task_key, "state") == b"active", (
        "the stale pyasynq worker's outcome changed the task Go is running"
    )
    assert r.lrange(keys.active_key(QUEUE), 0, -1) == [tid.encode()]
    assert r.zscore(keys.completed_key(QUEUE), tid) is None
    assert lost in py_log.read_text()

    # 5. Go finishes its run: completed with Go's msg and result, and no Go failure.
    (tmp_path / "go-release").touch()
    wait_for(lambda: r.zscore(keys.completed_key(QUEUE), tid), "Go to complete the task")
    fields: dict[bytes, bytes] = r.hgetall(task_key)  # type: ignore[assignment]
    msg = decode_task(fields[b"msg"])
    assert fields[b"state"] == b"completed" and fields[b"result"] == b"done by go"
    assert (msg.retried, msg.error_msg) == (1, "asynq: task lease expired")
    assert msg.completed_at > 0
    assert r.llen(keys.active_key(QUEUE)) == 0 and r.zcard(keys.lease_key(QUEUE)) == 0
    go.send_signal(signal.SIGTERM)
    go.wait(15)
    text = go_log.read_text()
    assert "NOT FOUND" not in text and "Could not" not in text, text


def _move_lease(r: redis.Redis, tid: str, new: int) -> None:
    """Set the task's lease score to ``new``, and the expiry pyasynq's fence records beside
    its token when it records one (the field then ends with the score)."""
    lease, key = keys.lease_key(QUEUE), keys.task_key(QUEUE, tid)
    score = int(r.zscore(lease, tid) or 0)
    attempt = (r.hget(key, "attempt") or b"").decode()
    with r.pipeline(transaction=True) as p:
        p.zadd(lease, {tid: new}, xx=True)
        if attempt.endswith(f" {score}"):
            p.hset(key, "attempt", f"{attempt[: -len(str(score))]}{new}")
        p.execute()
    assert new <= time.time() - 30


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
