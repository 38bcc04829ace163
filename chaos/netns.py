"""A network namespace of the scenario's own, where Redis and the workers talk over the
namespace's 127.0.0.1, so that packet delay, loss and a partition hit their traffic only
(the host's loopback is untouched). The harness and the producer reach the same Redis
through its unix socket, which no packet rule touches.

* loss and partitions: iptables rules in the namespace (``statistic --probability`` and
  ``DROP`` on the Redis port, both ways); one process cut off alone: it runs in a cgroup
  of its own and ``-m cgroup`` drops what it sends;
* delay: ``tc netem`` when the kernel has it; this machine's kernel is built without
  ``sch_netem``, so by default an NFQUEUE rule hands each packet to :func:`delayer` (a
  process in the namespace) that lets it through ``ms ± jitter`` later, in order.

Needs root (CAP_NET_ADMIN) and the ``ip`` and ``iptables`` commands; :func:`missing` says
what is missing. ``python -m chaos.netns delay QUEUE MS JITTER`` runs the delayer."""

from __future__ import annotations

import contextlib
import os
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from types import FrameType, TracebackType

PREFIX = "pyasynq-chaos-"
QUEUE = 19  # NFQUEUE number the delayer binds (per namespace)


def missing() -> str | None:
    """Why a namespace cannot be made here (None: it can)."""
    root = "needs root for network namespaces (CAP_NET_ADMIN)"
    if shutil.which("ip") is None or os.geteuid() != 0:
        return root
    if shutil.which("iptables") is None:
        return "needs iptables (make netns-tools, or apt-get install iptables)"
    probe = f"{PREFIX}probe-{os.getpid()}"  # root in a container may still lack the capability
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False).returncode:
        return root
    _ip("netns", "del", probe, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ip(*args: str, check: bool = True) -> str:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {p.stderr.strip()}")
    return p.stdout


def _delete(name: str) -> None:
    """Kill what still runs in ``name`` and delete it (nothing else holds it)."""
    for pid in _ip("netns", "pids", name, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    _ip("netns", "del", name, check=False)


def _cgroup_root() -> Path | None:
    """The cgroup v2 hierarchy (whole, or beside v1 controllers), for per-process rules."""
    for root in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        if (root / "cgroup.procs").exists() and (root / "cgroup.subtree_control").exists():
            return root
    return None


def _remove_cgroup(cg: Path) -> None:
    with contextlib.suppress(OSError):
        for pid in (cg / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while cg.exists() and time.monotonic() < deadline:
        try:
            cg.rmdir()
        except OSError:  # its processes are still exiting
            time.sleep(0.05)


def leftovers() -> list[str]:
    """Namespaces of this suite whose harness is gone (a run killed with SIGKILL)."""
    out = []
    for line in _ip("netns", "list", check=False).splitlines():
        m = re.match(rf"({PREFIX}(\d+))\b", line)
        if m and not _alive(int(m.group(2))):
            out.append(m.group(1))
    return out


class NetNS:
    """``with NetNS() as ns``: the namespace ``pyasynq-chaos-<pid>`` with its ``lo`` up;
    gone (with every process still in it) on leaving, on SIGTERM/SIGHUP/SIGINT of the
    harness, and at the next start when the harness was SIGKILLed."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"{PREFIX}{os.getpid()}"
        self.delayer: subprocess.Popen[bytes] | None = None
        self.netem = False
        self._old: dict[int, object] = {}
        self.cgroups: list[Path] = []

    @property
    def prefix(self) -> list[str]:
        """The argv prefix that runs a command in the namespace (it execs: same pid)."""
        return ["ip", "netns", "exec", self.name]

    def sh(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([*self.prefix, *cmd], capture_output=True, text=True, check=False)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} in {self.name} failed: {p.stderr.strip()}")
        return p

    def __enter__(self) -> NetNS:
        for old in leftovers():
            _delete(old)
        root = _cgroup_root()
        for cg in root.glob(f"{PREFIX}*") if root else []:
            m = re.match(rf"{PREFIX}(\d+)-", cg.name)
            if m and not _alive(int(m.group(1))):
                _remove_cgroup(cg)
        if self.name in _ip("netns", "list", check=False).split():
            _delete(self.name)
        _ip("netns", "add", self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            self.netem = self.sh("tc", "qdisc", "add", "dev", "lo", "root", "netem",
                                 "delay", "0ms", check=False).returncode == 0  # fmt: skip
            if self.netem:
                self.sh("tc", "qdisc", "del", "dev", "lo", "root")
        except BaseException:
            _delete(self.name)
            raise
        if threading_main():
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Unwind through the scenario's finally blocks (which stop Redis and the workers).
        raise SystemExit(128 + signum)

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._stop_delayer()
        _delete(self.name)
        while self.cgroups:
            _remove_cgroup(self.cgroups.pop())
        for sig, old in self._old.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._old.clear()

    def exists(self) -> bool:
        return self.name in _ip("netns", "list", check=False).split()

    # Packet rules, on the namespace's lo, for TCP to and from ``port`` (both ways).
    def _rules(self, op: str, port: int, *target: str) -> None:
        for way in ("--dport", "--sport"):
            self.sh("iptables", op, "OUTPUT", *(["1"] if op == "-I" else []), "-o", "lo",
                    "-p", "tcp", way, str(port), *target)  # fmt: skip

    def loss(self, port: int, percent: float) -> None:
        """Drop ``percent`` % of the packets, at random, each way."""
        self._rules("-A", port, "-m", "statistic", "--mode", "random",
                    "--probability", f"{percent / 100:.4f}", "-j", "DROP")  # fmt: skip

    def partition(self, port: int) -> None:
        """Drop every packet each way (first rule: it wins over delay and loss)."""
        self._rules("-I", port, "-j", "DROP")

    def cgroup_prefix(self, tag: str) -> list[str] | None:
        """An argv prefix that runs a command in the namespace *and* in a cgroup of its own
        (joined before the command starts, so every socket it opens belongs to it), for
        :meth:`isolate`. None without a cgroup v2 hierarchy."""
        root = _cgroup_root()
        if root is None:
            return None
        cg = root / f"{self.name}-{tag}"
        cg.mkdir(exist_ok=True)
        self.cgroups.append(cg)
        # sh joins the cgroup (outside the namespace's own /sys) then execs: same pid.
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cg / "cgroup.procs"),
                *self.prefix]  # fmt: skip

    def isolate(self, port: int, tag: str) -> None:
        """Drop every packet that the processes started with ``cgroup_prefix(tag)`` send
        to ``port``: that process alone is cut off (the others still reach Redis)."""
        root = _cgroup_root()
        assert root is not None
        path = f"{self.name}-{tag}"
        self.sh("iptables", "-I", "OUTPUT", "1", "-o", "lo", "-p", "tcp", "--dport", str(port),
                "-m", "cgroup", "--path", path, "-j", "DROP")  # fmt: skip

    def heal(self) -> None:
        """No packet rule any more (delay, loss and partition gone)."""
        self.sh("iptables", "-F", "OUTPUT")
        self._stop_delayer()
        if self.netem:
            self.sh("tc", "qdisc", "del", "dev", "lo", "root", check=False)

    def delay(self, port: int, ms: float, jitter: float) -> None:
        """Hold each packet ``ms ± jitter`` milliseconds, each way, keeping their order."""
        if self.netem:
            self.sh("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
                    f"{ms}ms", f"{jitter}ms")  # fmt: skip
            return
        self.delayer = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "chaos.netns", "delay", str(QUEUE), str(ms),
             str(jitter)],
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert self.delayer.stdout is not None
        if self.delayer.stdout.readline().strip() != b"bound":
            self._stop_delayer()
            raise RuntimeError(f"the NFQUEUE delayer did not start in {self.name}")
        # --queue-bypass: if the delayer is gone, packets pass instead of being dropped.
        self._rules("-A", port, "-j", "NFQUEUE", "--queue-num", str(QUEUE), "--queue-bypass")

    def _stop_delayer(self) -> None:
        if self.delayer is not None:
            with contextlib.suppress(ProcessLookupError):
                self.delayer.terminate()
            try:
                self.delayer.wait(5)
            except subprocess.TimeoutExpired:
                self.delayer.kill()
                self.delayer.wait()
            self.delayer = None


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# The delayer: nfnetlink_queue spoken over a raw netlink socket (no library needed).
_NETLINK_NETFILTER = 12
_QUEUE_SUBSYS = 3 << 8
_MSG_PACKET, _MSG_VERDICT, _MSG_CONFIG = 0, 1, 2
_REQUEST, _ACK = 1, 4
_CFG_CMD, _CFG_PARAMS, _CFG_QUEUE_MAXLEN = 1, 2, 3
_CMD_BIND = 1
_COPY_META = 1
_PACKET_HDR, _VERDICT_HDR = 1, 2
_ACCEPT = 1


def _attr(kind: int, data: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


def _msg(kind: int, queue: int, attrs: bytes, flags: int = _REQUEST) -> bytes:
    body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack(">H", queue) + attrs
    return struct.pack("=IHHII", 16 + len(body), _QUEUE_SUBSYS | kind, flags, 0, 0) + body


def delayer(queue: int, ms: float, jitter: float) -> None:
    """Binds NFQUEUE ``queue`` and accepts each packet ``ms ± jitter`` ms after it came,
    never before the one queued ahead of it (TCP sees delay, not reordering)."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((0, 0))
    cmd = _attr(_CFG_CMD, struct.pack("=BB", _CMD_BIND, 0) + struct.pack(">H", socket.AF_INET))
    s.send(_msg(_MSG_CONFIG, queue, cmd, _REQUEST | _ACK))
    s.recv(4096)
    params = _attr(_CFG_PARAMS, struct.pack(">IB", 0, _COPY_META))
    params += _attr(_CFG_QUEUE_MAXLEN, struct.pack(">I", 65536))
    s.send(_msg(_MSG_CONFIG, queue, params, _REQUEST | _ACK))
    s.recv(4096)
    s.setblocking(False)
    sys.stdout.write("bound\n")
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    held: deque[tuple[float, int]] = deque()
    last = 0.0
    rng = random.Random()
    while True:
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, pid = held.popleft()
            s.send(_msg(_MSG_VERDICT, queue, _attr(_VERDICT_HDR, struct.pack(">II", _ACCEPT, pid))))
        wait = max(0.0, held[0][0] - now) if held else 1.0
        if not select.select([s], [], [], wait)[0]:
            continue
        try:
            data = s.recv(1 << 16)
        except BlockingIOError:
            continue
        now = time.monotonic()
        off = 0
        while off + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, off)
            if length < 16:
                break
            if kind == _QUEUE_SUBSYS | _MSG_PACKET:
                a = off + 20
                while a + 4 <= off + length:
                    alen, atype = struct.unpack_from("=HH", data, a)
                    if alen < 4:
                        break
                    if atype & 0x7FFF == _PACKET_HDR:
                        (pid,) = struct.unpack_from(">I", data, a + 4)
                        last = max(last, now + (ms + rng.uniform(-jitter, jitter)) / 1000)
                        held.append((last, pid))
                    a += (alen + 3) & ~3
            off += (length + 3) & ~3


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "delay":
        delayer(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit("usage: python -m chaos.netns delay QUEUE MS JITTER")
