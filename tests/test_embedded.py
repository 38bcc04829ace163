"""The shared embedded Redis (docs/embedded.md): one server per data directory for every
pyasynq process with no Redis configured, started once even by simultaneous first users,
and gone once the last user exits, whatever ended it (normal exit, SIGTERM, SIGINT,
SIGHUP to the terminal's process group, SIGKILL). Real processes, real redis-server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

import pyasynq
from pyasynq import embedded

pytestmark = pytest.mark.single_node

try:
    embedded.find_server_binary()
except RuntimeError:
    pytest.skip("no redis-server or embedded Valkey to start", allow_module_level=True)

TASKS = """
from pathlib import Path

import pyasynq
from pyasynq import PeriodicTaskConfig, Task

mux = pyasynq.ServeMux()


@mux.handler("email:send")
def send(task):
    Path("sent.txt").write_bytes(task.payload)


configs = [PeriodicTaskConfig("@every 1h", Task("noop"))]
"""


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYASYNQ_REDIS_URL", "REDIS_URL")}


def wait_for(check: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(0.02)


def procs_on(data_dir: Path) -> dict[int, str]:
    """Every process whose command line names ``data_dir``: its redis-server (the config
    path is in the process title) and its watcher."""
    found = {}
    needle = os.fsencode(data_dir)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            if needle in cmd and stat[stat.rfind(b")") + 2 :][:1] != b"Z":
                found[int(entry)] = cmd.replace(b"\0", b" ").decode(errors="replace")
    return found


def servers_on(data_dir: Path) -> list[int]:
    return [pid for pid, cmd in procs_on(data_dir).items() if "redis.conf" in cmd]


def alive(pid: int) -> bool:
    return embedded._start_time(pid) is not None


class Cmd:
    """``python -m pyasynq ...`` in its own process group (as a terminal would run it),
    its stderr collected line by line."""

    def __init__(self, cwd: Path, *argv: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyasynq", *argv],
            cwd=cwd,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def err(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None and text not in self.err:
                pytest.fail(f"exited {self.proc.returncode} before {text!r}: {self.err}")
            return text in self.err

        wait_for(seen, timeout, f"{text!r} from {self.proc.args}")

    def killpg(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "mytasks.py").write_text(TASKS)
    yield tmp_path
    data = tmp_path / ".pyasynq" / "redis"
    for pid in procs_on(data):  # never leave a server behind, even when a test fails
        os.kill(pid, signal.SIGKILL)


def data_dir(cwd: Path) -> Path:
    return (cwd / ".pyasynq" / "redis").resolve()


def assert_nothing_left(data: Path, server_pid: int) -> None:
    # The last user stops the server (and its watcher) before it exits.
    assert not alive(server_pid), f"redis-server {server_pid} outlived its last user"
    wait_for(lambda: not procs_on(data), 2, f"no process left on {data}: {procs_on(data)}")
    assert not (data / embedded.STATE_FILE).exists()
    assert not embedded.status(data).running


NOTICE = (
    "pyasynq: using the embedded Redis in ./.pyasynq/redis; set PYASYNQ_REDIS_URL to use your own\n"
)


def test_worker_enqueue_web_and_dash_share_one_server_and_leave_nothing(app_dir: Path) -> None:
    data = data_dir(app_dir)
    worker = Cmd(app_dir, "worker", "mytasks:mux")
    web = Cmd(app_dir, "web", "--port", "0", "--insecure-open-dashboard")
    dash = Cmd(app_dir, "dash", "--interval", "0.2")
    cmds = [worker, web, dash]
    try:
        worker.wait_for("Starting processing")
        web.wait_for("dashboard at")
        for c in cmds:
            c.wait_for(NOTICE)
            assert c.err.count("using the embedded Redis") == 1
        wait_for(lambda: len(embedded.status(data).users) == 3, what="three users")
        st = embedded.status(data)
        assert set(st.users) == {c.proc.pid for c in cmds}
        assert servers_on(data) == [st.pid]

        enqueue = subprocess.run(
            [sys.executable, "-m", "pyasynq", "task", "enqueue", "-t", "email:send",
             "-p", '{"to": "x"}'],
            cwd=app_dir, env=clean_env(), capture_output=True, text=True, timeout=30,
            check=False,
        )  # fmt: skip
        assert enqueue.returncode == 0, enqueue.stderr
        assert enqueue.stderr == NOTICE
        sent = app_dir / "sent.txt"
        wait_for(sent.exists, 10, "the worker to process the enqueued task")
        assert json.loads(sent.read_bytes()) == {"to": "x"}
        # The dashboard reads the same data.
        url = web.err.split("dashboard at ")[1].split()[0]
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "default" in page.text, page.text
        assert embedded.status(data).pid == st.pid  # the enqueue did not restart it

        for c in cmds:
            c.killpg(signal.SIGTERM)
            assert c.proc.wait(20) in (0, 143), c.err
        assert_nothing_left(data, st.pid)
    finally:
        for c in cmds:
            c.stop()


def test_the_server_outlives_the_terminal_of_the_command_that_started_it(
    app_dir: Path,
) -> None:
    data = data_dir(app_dir)
    first = Cmd(app_dir, "dash", "--interval", "0.2")
    worker = None
    try:
        first.wait_for(NOTICE)
        wait_for(lambda: embedded.status(data).users == (first.proc.pid,), what="first user")
        server = embedded.status(data).pid
        assert server is not None
        worker = Cmd(app_dir, "worker", "mytasks:mux")
        worker.wait_for("Starting processing")
        first.killpg(signal.SIGHUP)  # its terminal closes
        first.proc.wait(20)
        st = embedded.status(data)
        assert (st.pid, st.users) == (server, (worker.proc.pid,))
        with pyasynq.Client(st.url) as client:
            client.enqueue(pyasynq.Task("email:send", b'{"to": "y"}'))
        wait_for((app_dir / "sent.txt").exists, 5, "the worker to process the task")
        worker.killpg(signal.SIGTERM)
        worker.proc.wait(20)
        assert_nothing_left(data, server)
    finally:
        first.stop()
        if worker is not None:
            worker.stop()


READY = {
    "worker": (("worker", "mytasks:mux"), "Starting processing"),
    "web": (("web", "--port", "0", "--insecure-open-dashboard"), "dashboard at"),
    "dash": (("dash", "--interval", "0.2"), NOTICE),
    "scheduler": (("scheduler", "mytasks:configs"), "Scheduler starting"),
    "metrics": (("metrics", "--port", "0"), "serving queue metrics"),
}


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: signal.Signals(s).name
)
@pytest.mark.parametrize("command", sorted(READY))
def test_no_server_outlives_a_command_ended_by_a_signal(
    app_dir: Path, command: str, sig: signal.Signals
) -> None:
    argv, ready = READY[command]
    cmd = Cmd(app_dir, *argv)
    try:
        cmd.wait_for(ready)
        data = data_dir(app_dir)
        wait_for(lambda: cmd.proc.pid in embedded.status(data).users, what="registration")
        server = embedded.status(data).pid
        assert server is not None and servers_on(data) == [server]
        cmd.killpg(sig)  # the whole process group, as a closed terminal or Ctrl-C does
        cmd.proc.wait(20)
        assert_nothing_left(data, server)
    finally:
        cmd.stop()


def test_a_command_verb_gives_the_server_back_on_exit(app_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pyasynq", "stats", "--json"],
        cwd=app_dir, env=clean_env(), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == NOTICE
    wait_for(lambda: not procs_on(data_dir(app_dir)), 5, "nothing left")
    # Durable: the append-only file lives in the data directory.
    assert (data_dir(app_dir) / "appendonlydir").is_dir()


HOLDER = """
import pathlib, sys, time
import pyasynq
from pyasynq import embedded

go = pathlib.Path(sys.argv[1])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
lease = embedded.acquire(sys.argv[2])
print(lease.pid, lease.started, flush=True)
sys.stdin.readline()
lease.release()
"""


def holders(tmp_path: Path, n: int, data: Path) -> tuple[list[subprocess.Popen[str]], Path]:
    go = tmp_path / "go"
    argv = [sys.executable, "-c", HOLDER, str(go), str(data)]
    procs = [
        subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=clean_env()
        )
        for _ in range(n)
    ]
    for p in procs:  # every interpreter is up: they race for the lock together
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    return procs, go


def test_simultaneous_first_starts_give_one_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    procs, go = holders(tmp_path, 4, data)
    try:
        go.touch()
        answers = [p.stdout.readline().split() for p in procs if p.stdout]
        pids = {pid for pid, _ in answers}
        assert len(pids) == 1, answers
        assert sorted(started for _, started in answers) == ["False", "False", "False", "True"]
        server = int(pids.pop())
        assert servers_on(data) == [server]
        assert set(embedded.status(data).users) == {p.pid for p in procs}
        for p in procs:
            p.communicate("\n", timeout=20)
        assert_nothing_left(data.resolve(), server)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for pid in procs_on(data.resolve()):
            os.kill(pid, signal.SIGKILL)


def test_a_killed_last_user_is_noticed_by_the_watcher(tmp_path: Path) -> None:
    data = (tmp_path / "data").resolve()
    procs, go = holders(tmp_path, 1, data)
    go.touch()
    try:
        assert procs[0].stdout is not None
        server = int(procs[0].stdout.readline().split()[0])
        procs[0].kill()  # no chance to clean up
        procs[0].wait()
        wait_for(lambda: not procs_on(data), 5 + 2 * embedded.WATCH_INTERVAL, "the watcher")
        assert not alive(server)
    finally:
        for pid in procs_on(data):
            os.kill(pid, signal.SIGKILL)


def test_a_server_left_without_users_or_watcher_is_reused(app_dir: Path) -> None:
    data = data_dir(app_dir)
    procs, go = holders(app_dir, 1, data)
    go.touch()
    assert procs[0].stdout is not None
    server = int(procs[0].stdout.readline().split()[0])
    watcher = json.loads((data / embedded.STATE_FILE).read_text())["watcher"]["pid"]
    os.kill(watcher, signal.SIGKILL)  # a crash of everything but the server
    procs[0].kill()
    procs[0].wait()
    assert alive(server) and not embedded.status(data).users

    done = subprocess.run(
        [sys.executable, "-m", "pyasynq", "queue", "ls"],
        cwd=app_dir, env=clean_env(), capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == NOTICE
    # It was reused (the verb ran against it), and as its only user the verb stopped it.
    assert_nothing_left(data, server)


def test_a_stale_record_is_replaced_by_a_fresh_server(app_dir: Path) -> None:
    data = data_dir(app_dir)
    data.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    pid = int(dead.stdout)
    (data / embedded.PID_FILE).write_text(f"{pid}\n")
    (data / embedded.STATE_FILE).write_text(json.dumps(
        {"pid": pid, "port": 1, "socket": str(data / "redis.sock"),
         "users": {str(pid): "1"}, "watcher": {"pid": pid, "start": "1"}}))  # fmt: skip
    lease = embedded.acquire(data)
    try:
        assert lease.started and lease.pid != pid
        client = redis.Redis.from_url(lease.url)
        assert client.ping()
        client.close()
        assert embedded.status(data).users == (os.getpid(),)
    finally:
        lease.release()
    assert_nothing_left(data, lease.pid)


def test_a_data_dir_with_spaces_and_quotes(tmp_path: Path) -> None:
    data = (tmp_path / 'my "app" data').resolve()
    lease = embedded.acquire(data)
    try:
        assert lease.socket == str(data / "redis.sock")
        client = pyasynq.Inspector(lease.url)  # as every pyasynq command connects
        assert client.queues() == []
        client.close()
        assert servers_on(data) == [lease.pid]
    finally:
        lease.release()
    assert_nothing_left(data, lease.pid)


def test_a_data_dir_too_long_for_a_unix_socket_puts_it_in_the_temp_dir(tmp_path: Path) -> None:
    data = (tmp_path / ("d" * 60) / ("e" * 60)).resolve()
    lease = embedded.acquire(data)
    try:
        assert not lease.socket.startswith(str(data))
        assert len(os.fsencode(lease.socket)) <= embedded.SOCKET_PATH_MAX
        assert "the data directory's path is too long" in lease.notice()
        for url in (lease.url, lease.tcp_url):
            client = redis.Redis.from_url(url)
            assert client.ping()
            client.close()
    finally:
        lease.release()
    assert_nothing_left(data, lease.pid)
    assert not Path(lease.socket).exists()


API = """
import pyasynq

with pyasynq.Client() as client:
    info = client.enqueue(pyasynq.Task("email:send", b"{}"))
with pyasynq.Inspector() as insp:
    print(insp.get_task_info("default", info.id).state.name)
"""


def test_the_python_api_without_a_url_uses_the_shared_server(app_dir: Path) -> None:
    done = subprocess.run([sys.executable, "-c", API], cwd=app_dir, env=clean_env(),
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().lower() == "pending"
    assert done.stderr == NOTICE  # once, though two objects used it
    assert not procs_on(data_dir(app_dir))
    # The task is still there for the next user (append-only file).
    lease = embedded.acquire(data_dir(app_dir))
    try:
        client = redis.Redis.from_url(lease.url)
        assert client.llen("asynq:{default}:pending") == 1
        client.close()
    finally:
        lease.release()


def test_a_configured_url_wins_over_the_embedded_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/1")
    monkeypatch.setenv("PYASYNQ_REDIS_URL", "redis://127.0.0.1:1/2")
    assert embedded.default_url() == "redis://127.0.0.1:1/2"
    monkeypatch.delenv("PYASYNQ_REDIS_URL")
    assert embedded.default_url() == "redis://127.0.0.1:1/1"
    assert not (tmp_path / ".pyasynq").exists()  # nothing started


def test_a_worker_module_with_its_own_client_says_it_once_and_leaves_nothing(
    app_dir: Path,
) -> None:
    (app_dir / "withclient.py").write_text(
        TASKS + "\nclient = pyasynq.Client()  # no URL: the same embedded server\n"
    )
    cmd = Cmd(app_dir, "worker", "withclient:mux")
    try:
        cmd.wait_for("Starting processing")
        data = data_dir(app_dir)
        st = embedded.status(data)
        assert st.users == (cmd.proc.pid,) and st.pid is not None
        cmd.killpg(signal.SIGTERM)
        cmd.proc.wait(20)
        assert cmd.err.count("using the embedded Redis") == 1, cmd.err
        assert_nothing_left(data, st.pid)
    finally:
        cmd.stop()


def test_status_and_stop(app_dir: Path) -> None:
    data = data_dir(app_dir)

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pyasynq", "embedded", *argv],
                              cwd=app_dir, env=clean_env(), capture_output=True, text=True,
                              timeout=30, check=False)  # fmt: skip

    idle = cli("status")
    assert idle.returncode == 0 and "not running" in idle.stdout
    assert not procs_on(data)  # status does not start one
    procs, go = holders(app_dir, 1, data)
    go.touch()
    try:
        assert procs[0].stdout is not None
        server = int(procs[0].stdout.readline().split()[0])
        st = json.loads(cli("status", "--json").stdout)
        assert st["running"] and st["pid"] == server and st["users"] == [procs[0].pid]
        assert st["url"] == f"unix://{data / 'redis.sock'}?db=0"
        assert "last pyasynq process" in st["model"]
        text = cli("status").stdout
        assert f"pid {procs[0].pid}:" in text and "./.pyasynq/redis" in text
        stopped = cli("stop")
        assert stopped.returncode == 0
        assert f"stopped the embedded Redis in ./.pyasynq/redis (pid {server})" in stopped.stderr
        assert not alive(server)
        procs[0].communicate("\n", timeout=20)  # its release finds nothing to stop
        assert procs[0].returncode == 0
        assert_nothing_left(data, server)
    finally:
        procs[0].kill()
        procs[0].wait()
