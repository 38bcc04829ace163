"""Real multi-process Redis topologies on loopback for the high-availability tests:
a Redis Cluster of masters with replicas, and a master/replica pair watched by sentinels.
Every process is a redis-server child; stop() (or the context manager) kills them all."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from pyasynq.embedded import find_server_binary, free_port


@dataclass
class Node:
    port: int
    process: subprocess.Popen[bytes]
    role: str = "master"

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
        _wait(lambda: self.client().ping(), timeout, f"{self.addr} to restart")

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
class ClusterTopology(_Base):
    """``masters`` masters each with ``replicas`` replicas, slots split evenly."""

    masters: int = 3
    replicas: int = 1
    appendonly: bool = False

    def start(self) -> None:
        binary = find_server_binary()
        count = self.masters * (1 + self.replicas)
        for i in range(count):
            port = free_port()
            d = self.dir / f"n{i}"
            d.mkdir()
            proc = _spawn(binary, [
                "--bind", "127.0.0.1", "--port", str(port), "--dir", str(d),
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(free_port()), "--cluster-node-timeout", "1000",
                "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                "--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0",
            ], d / "log")  # fmt: skip
            self.nodes.append(Node(port, proc))
        for n in self.nodes:
            _wait(lambda n=n: n.client().ping(), 10, f"node {n.addr}")
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
        for i in range(1 + self.replicas):
            port = free_port()
            d = self.dir / f"r{i}"
            d.mkdir()
            args = ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(d), "--save", "",
                    "--appendonly", "yes" if self.appendonly else "no",
                    "--repl-diskless-sync-delay", "0"]  # fmt: skip
            if i > 0:
                args += ["--replicaof", "127.0.0.1", str(self.nodes[0].port)]
            self.nodes.append(
                Node(port, _spawn(binary, args, d / "log"), "master" if i == 0 else "slave")
            )
        for n in self.nodes:
            _wait(lambda n=n: n.client().ping(), 10, f"redis {n.addr}")
        master = self.nodes[0]
        for i in range(self.sentinels):
            port = free_port()
            d = self.dir / f"s{i}"
            d.mkdir()
            conf = d / "sentinel.conf"
            conf.write_text(
                f"bind 127.0.0.1\nport {port}\ndir {d}\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {master.port} 2\n"
                f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                f"sentinel failover-timeout {self.master_name} 5000\n"
                f"sentinel parallel-syncs {self.master_name} 1\n"
            )
            proc = _spawn(binary, [str(conf), "--sentinel"], d / "log")
            self.sentinel_nodes.append(Node(port, proc, "sentinel"))
        for s in self.sentinel_nodes:
            _wait(lambda s=s: s.client().ping(), 10, f"sentinel {s.addr}")
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
