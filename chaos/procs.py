"""The processes a scenario runs: one redis-server (standalone) and a pool of worker
processes, each started, signalled and restarted by the harness, which writes every
fault it injects to the scenario's fault log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/topology.py: real servers on free ports

from topology import Node, _Spec, _start_all  # type: ignore[import-not-found]  # noqa: E402

from pyasynq.embedded import find_server_binary  # noqa: E402


@dataclass
class Fault:
    """One injected fault: ``kind`` from ``at`` to ``until`` (both unix times), on the
    worker ``pids`` it hit (empty: every worker, or Redis itself). A fault with
    ``explains=False`` is one the guarantee covers (clock skew): the checker attributes
    no duplicate to it."""

    kind: str
    at: float
    until: float
    pids: tuple[int, ...] = ()
    note: str = ""
    explains: bool = True


@dataclass
class FaultLog:
    path: Path
    faults: list[Fault] = field(default_factory=list)

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        with self.path.open("a") as f:
            f.write(json.dumps(fault.__dict__) + "\n")
        return fault


class Redis:
    """One redis-server of the scenario's own, in ``run_dir/redis``, with extra args
    (persistence, maxmemory). ``kill``/``restart`` keep its port and files."""

    def __init__(self, run_dir: Path, *args: str) -> None:
        d = run_dir / "redis"
        d.mkdir(parents=True, exist_ok=True)
        self.dir = d

        def argv(port: int) -> list[str]:
            return ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(d),
                    "--save", "", "--appendonly", "no", *args]  # fmt: skip

        self.node: Node = _start_all(
            find_server_binary(), [_Spec(argv, d / "log", "master", "redis")]
        )[0]

    @property
    def port(self) -> int:
        return int(self.node.port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def signal(self, sig: signal.Signals) -> None:
        self.node.process.send_signal(sig)

    def kill(self) -> None:
        self.node.kill()

    def restart(self) -> None:
        self.node.restart(timeout=30)

    def stop(self) -> None:
        with suppress(ProcessLookupError):
            self.node.process.send_signal(signal.SIGCONT)
        self.node.kill()


LIVE: list[Workers] = []  # every pool started, so a scenario that fails stops its workers


def stop_all() -> None:
    """Stop every worker pool still running (after a scenario, whatever its outcome)."""
    while LIVE:
        LIVE.pop().stop(timeout=5)


class Workers:
    """``n`` single-process workers (``pyasynq worker chaos.app:mux``) on ``url``. Each
    keeps its stderr in ``run_dir/worker-<slot>-<pid>.err``; ``env`` sets the app's
    timings (chaos/app.py). ``prefix`` runs each under a wrapper (faketime)."""

    def __init__(self, run_dir: Path, url: str, n: int, env: dict[str, str] | None = None,
                 prefix: list[list[str]] | None = None) -> None:  # fmt: skip
        self.run_dir = run_dir
        self.url = url
        self.env = {**os.environ, "CHAOS_RUN_DIR": str(run_dir), "PYTHONPATH": str(REPO),
                    **(env or {})}  # fmt: skip
        self.prefix = prefix or [[] for _ in range(n)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * n
        self.all_pids: list[int] = []
        LIVE.append(self)

    def start(self, slot: int | None = None) -> None:
        for i in range(len(self.procs)) if slot is None else [slot]:
            err = self.run_dir / f"worker-{i}-{time.time_ns()}.err"
            with err.open("ab") as f:
                p = subprocess.Popen(
                    [*self.prefix[i], sys.executable, "-m", "pyasynq", "--redis-url", self.url,
                     "worker", "chaos.app:mux", "--config", "chaos.app:config",
                     "--log-level", "warn"],
                    cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=f,
                    start_new_session=True,
                )  # fmt: skip
            self.procs[i] = p
            self.all_pids.append(p.pid)

    def wait_ready(self, timeout: float = 60, raw: redis.Redis | None = None) -> None:
        """Until every worker has announced itself in Redis (its server info), so that a
        fault injected next hits running workers, not starting ones. With ``raw`` (a
        standalone Redis) the records are read as they are, expired or not: a worker whose
        clock is behind writes records that look expired."""
        import pyasynq

        with pyasynq.Inspector(self.url) as insp:
            want = {self.pid(i) for i in self.alive()}

            def ready() -> bool:
                if raw is not None:
                    members: list[bytes] = raw.zrange("asynq:servers", 0, -1)  # type: ignore[assignment]
                    return want <= {int(m.split(b":")[-2]) for m in members}
                return want <= {s.pid for s in insp.servers()}

            if not wait_until(ready, timeout, 0.1):
                raise RuntimeError(f"workers {sorted(want)} did not start in {timeout:.0f} s; "
                                   f"see {self.run_dir}/worker-*.err")  # fmt: skip

    def pid(self, slot: int) -> int:
        p = self.procs[slot]
        assert p is not None
        return p.pid

    def signal(self, slot: int, sig: signal.Signals) -> int:
        p = self.procs[slot]
        assert p is not None
        with suppress(ProcessLookupError):
            p.send_signal(sig)
        return p.pid

    def wait(self, slot: int, timeout: float) -> bool:
        p = self.procs[slot]
        assert p is not None
        try:
            p.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def alive(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p is not None and p.poll() is None]

    def stop(self, timeout: float = 15) -> None:
        for p in self.procs:
            if p is not None and p.poll() is None:
                with suppress(ProcessLookupError):
                    p.send_signal(signal.SIGCONT)
                    p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            if p is None:
                continue
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def log_lines(self, *needles: str) -> dict[str, int]:
        """How many lines of the workers' logs contain each needle."""
        counts = dict.fromkeys(needles, 0)
        for f in self.run_dir.glob("worker-*.err"):
            for line in f.read_text(errors="replace").splitlines():
                for n in needles:
                    if n in line:
                        counts[n] += 1
        return counts


def wait_until(cond: Any, timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(redis.RedisError, OSError):
            if cond():
                return True
        time.sleep(poll)
    return False
