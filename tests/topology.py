"""Real multi-process Redis topologies on loopback for the high-availability tests:
a Redis Cluster of masters with replicas, and a master/replica pair watched by sentinels.
Every process is a redis-server child; stop() (or the context manager) kills them all.

Ports: a port found free here can be taken by another process (another test run, another
helper) before our server binds it. So every server is confirmed to be *ours* (its INFO
process_id is our child's pid) before it is used, and one that exits because its port
was taken is started again on a new port. A server that fails for any other reason ends
the start-up with the tail of its log in the error."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pyasynq.embedded import find_server_binary

START_ATTEMPTS = 8  # fresh ports to try for one server whose port was taken meanwhile
PORT_TAKEN = ("Address already in use", "EADDRINUSE")


def free_port() -> int:
    """A loopback port free at this moment (it may be taken again before we bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    port: int
    process: subprocess.Popen[bytes]
    role: str = "master"
    log: Path | None = None

    @property
    def cmd(self) -> list[str]:
        return list(self.process.args)  # type: ignore[arg-type]

    def restart(self, timeout: float = 10) -> None:
        """Start the same server again (same port and files), after a kill."""
        self.kill()
        self.process = subprocess.Popen(
            self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if not _confirm(self.process, self.port, timeout, f"{self.addr} to restart", self.log):
            raise RuntimeError(
                f"{self.addr} did not restart: its port was taken meanwhile" + _log_tail(self.log)
            )

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)


def _spawn(binary: str, args: list[str], logfile: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [binary, *args, "--logfile", str(logfile)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _log_tail(log: Path | None, lines: int = 12) -> str:
    if log is None:
        return ""
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError as exc:
        return f"\n(no log: {exc})"
    return f"\nlast lines of {log}:\n" + "\n".join(f"  {line}" for line in tail)


def _confirm(
    proc: subprocess.Popen[bytes], port: int, timeout: float, what: str, log: Path | None
) -> bool:
    """Wait until the server on ``port`` is ``proc`` (not whoever else holds the port):
    True once it answers as ours, False when it exited because its port was taken.
    Anything else (another exit, no answer in time) raises with the log's tail."""
    deadline = time.monotonic() + timeout
    # One try per probe (no redis-py retries), so a dead process is noticed quickly.
    probe = redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                text = log.read_text(errors="replace") if log and log.exists() else ""
                if any(marker in text for marker in PORT_TAKEN):
                    return False
                raise RuntimeError(f"{what} exited with status {proc.returncode}" + _log_tail(log))
            with suppress(redis.RedisError, OSError):
                if int(probe.info("server").get("process_id", -1)) == proc.pid:
                    return True
            time.sleep(0.05)
    finally:
        probe.close()
    raise RuntimeError(f"timed out waiting for {what}" + _log_tail(log))


@dataclass
class _Spec:
    """How to start one server on a given port: its arguments, log, role and name."""

    args: Callable[[int], list[str]]
    log: Path
    role: str
    what: str


def _start_all(binary: str, specs: list[_Spec], timeout: float = 10) -> list[Node]:
    """Start every server (together), confirm each is ours, and start again on a new
    port any that lost its port to another process. Returns the nodes in spec order."""
    spawned: list[subprocess.Popen[bytes]] = []  # every process, to kill on failure

    def spawn(spec: _Spec) -> tuple[int, subprocess.Popen[bytes]]:
        port = free_port()
        spawned.append(_spawn(binary, spec.args(port), spec.log))
        return port, spawned[-1]

    try:
        first = [spawn(spec) for spec in specs]
        nodes = []
        for spec, launched in zip(specs, first, strict=True):
            port, proc = launched
            for _attempt in range(START_ATTEMPTS):
                if _confirm(proc, port, timeout, f"{spec.what} on port {port}", spec.log):
                    nodes.append(Node(port, proc, spec.role, spec.log))
                    break
                spec.log.unlink(missing_ok=True)  # the log of the next attempt only
                port, proc = spawn(spec)
            else:
                raise RuntimeError(
                    f"{spec.what}: {START_ATTEMPTS} ports in a row were taken before it "
                    "could bind them" + _log_tail(spec.log)
                )
    except BaseException:
        for proc in spawned:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        raise
    return nodes


def _wait(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(redis.RedisError, OSError):
            if cond():  # type: ignore[operator]
                return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


@dataclass
class _Base:
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pyasynq-topo-")))
    nodes: list[Node] = field(default_factory=list)

    def stop(self) -> None:
        for n in self.nodes:
            n.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError


@dataclass
class SingleServer(_Base):
    """One plain redis-server of a test's own (to change its settings: requirepass,
    ACL users, limits), started like the others."""

    def start(self) -> None:
        d = self.dir / "r0"
        d.mkdir()

        def args(port: int) -> list[str]:
            return ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(d), "--save", "",
                    "--appendonly", "no"]  # fmt: skip

        self.nodes.extend(
            _start_all(find_server_binary(), [_Spec(args, d / "log", "master", "redis")])
        )

    @property
    def port(self) -> int:
        return self.nodes[0].port

    def url(self, scheme: str = "redis", auth: str = "", query: str = "") -> str:
        base = f"{scheme}://{auth + '@' if auth else ''}127.0.0.1:{self.port}/0"
        return base + ("?" + query if query else "")


@dataclass
class ClusterTopology(_Base):
    """``masters`` masters each with ``replicas`` replicas, slots split evenly."""

    masters: int = 3
    replicas: int = 1
    appendonly: bool = False

    def start(self) -> None:
        binary = find_server_binary()
        specs = []
        for i in range(self.masters * (1 + self.replicas)):
            d = self.dir / f"n{i}"
            d.mkdir()

            def args(port: int, d: Path = d) -> list[str]:
                # The bus port too is picked here (the default, port + 10000, may not exist).
                return [
                    "--bind", "127.0.0.1", "--port", str(port), "--dir", str(d),
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-port", str(free_port()), "--cluster-node-timeout", "1000",
                    "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                    "--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0",
                ]  # fmt: skip

            specs.append(_Spec(args, d / "log", "master", f"cluster node n{i}"))
        self.nodes.extend(_start_all(binary, specs))
        addrs = [n.addr for n in self.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addrs, "--cluster-replicas",
             str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        _wait(self._ok, 30, "cluster_state:ok on every node")
        self.refresh_roles()
        _wait(self._synced, 30, "replicas in sync")

    def _synced(self) -> bool:
        for n in self.nodes:
            if n.alive():
                info = n.client().info("replication")
                if info.get("role") == "slave" and info.get("master_link_status") != "up":
                    return False
        return True

    def _ok(self) -> bool:
        return all(
            b"cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO")
            for n in self.nodes
            if n.alive()
        )

    def refresh_roles(self) -> None:
        for n in self.nodes:
            if n.alive():
                with suppress(redis.RedisError):
                    n.role = n.client().execute_command("ROLE")[0].decode()

    def seeds(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", n.port) for n in self.nodes]

    def url(self) -> str:
        return "redis-cluster://" + ",".join(n.addr for n in self.nodes)

    def master_for_key(self, key: str) -> Node:
        c = next(n for n in self.nodes if n.alive()).client()
        slot = c.execute_command("CLUSTER", "KEYSLOT", key)
        for lo, hi, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
            if lo <= slot <= hi:
                port = int(master[1])
                return next(n for n in self.nodes if n.port == port)
        raise RuntimeError(f"no master for slot {slot}")

    def wait_healthy(self, timeout: float = 30) -> None:
        _wait(self._ok, timeout, "cluster_state:ok")


@dataclass
class SentinelTopology(_Base):
    """One master, ``replicas`` replicas and ``sentinels`` sentinels (quorum 2)."""

    replicas: int = 1
    sentinels: int = 3
    master_name: str = "mymaster"
    appendonly: bool = False
    sentinel_nodes: list[Node] = field(default_factory=list)

    def start(self) -> None:
        binary = find_server_binary()
        appendonly = "yes" if self.appendonly else "no"

        def redis_spec(i: int) -> _Spec:
            d = self.dir / f"r{i}"
            d.mkdir()

            def args(port: int) -> list[str]:
                out = ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(d), "--save", "",
                       "--appendonly", appendonly, "--repl-diskless-sync-delay", "0"]  # fmt: skip
                if i > 0:
                    out += ["--replicaof", "127.0.0.1", str(self.nodes[0].port)]
                return out

            return _Spec(args, d / "log", "master" if i == 0 else "slave", f"redis r{i}")

        # The master first: the replicas' arguments name its port, known once it is up.
        self.nodes.extend(_start_all(binary, [redis_spec(0)]))
        self.nodes.extend(_start_all(binary, [redis_spec(i) for i in range(1, 1 + self.replicas)]))
        master = self.nodes[0]

        def sentinel_spec(i: int) -> _Spec:
            d = self.dir / f"s{i}"
            d.mkdir()
            conf = d / "sentinel.conf"

            def args(port: int) -> list[str]:
                conf.write_text(
                    f"bind 127.0.0.1\nport {port}\ndir {d}\n"
                    f"sentinel monitor {self.master_name} 127.0.0.1 {master.port} 2\n"
                    f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                    f"sentinel failover-timeout {self.master_name} 5000\n"
                    f"sentinel parallel-syncs {self.master_name} 1\n"
                )
                return [str(conf), "--sentinel"]

            return _Spec(args, d / "log", "sentinel", f"sentinel s{i}")

        self.sentinel_nodes.extend(
            _start_all(binary, [sentinel_spec(i) for i in range(self.sentinels)])
        )
        _wait(self._replicas_seen, 30, "sentinels to see the replicas")
        self.wait_synced()

    def wait_synced(self, timeout: float = 30) -> None:
        """Until every live replica of the current master has finished its sync."""

        def synced() -> bool:
            master = self.current_master()
            for n in self.nodes:
                if n is master or not n.alive():
                    continue
                info = n.client().info("replication")
                if info.get("master_link_status") != "up" or info.get("master_port") != master.port:
                    return False
            return True

        _wait(synced, timeout, "replicas in sync with the master")

    def _replicas_seen(self) -> bool:
        for s in self.sentinel_nodes:
            info = s.client().execute_command("SENTINEL", "REPLICAS", self.master_name)
            if len(info) < self.replicas:
                return False
        return True

    def stop(self) -> None:
        for s in self.sentinel_nodes:
            s.kill()
        super().stop()

    def sentinel_addrs(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", s.port) for s in self.sentinel_nodes]

    def url(self) -> str:
        hosts = ",".join(s.addr for s in self.sentinel_nodes)
        return f"redis-sentinel://{hosts}/0?master={self.master_name}"

    def current_master(self) -> Node:
        s = next(s for s in self.sentinel_nodes if s.alive()).client()
        _host, port = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        return next(n for n in self.nodes if n.port == int(port))
