"""Records kept outside Redis: the producer's acknowledged enqueues (``acks.log``) and the
workers' handler starts and finishes (``events-<pid>.log``, written by chaos/app.py).
Each line is one ``write(2)`` on an ``O_APPEND`` descriptor, so a line is either there
whole or not at all (a line cut short by a crash is skipped on reading)."""

from __future__ import annotations

import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyasynq


class AppendLog:
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, lines: list[str]) -> None:
        if lines:
            os.write(self.fd, "".join(lines).encode())

    def close(self) -> None:
        os.close(self.fd)


@dataclass(eq=False)
class Producer(threading.Thread):
    """Enqueues ``n`` tasks ``<prefix><i>`` in batches, each id retried until Redis takes it;
    an acknowledged id is written to ``acks.log`` with the time of the acknowledgement.
    ``durable`` enqueues one by one with ``wait_replicas`` (Sentinel, Cluster)."""

    url: str
    run_dir: Path
    n: int
    prefix: str = "t"
    batch: int = 500
    payload: Callable[[int], bytes] = lambda i: b""
    task_type: str = "chaos:work"
    rate: float = 0.0  # tasks per second, 0: as fast as Redis takes them
    durable_replicas: int = 0
    acked: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    progress: int = 0
    first_error_at: float | None = None
    stop_flag: bool = False

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, daemon=True)
        self.log = AppendLog(self.run_dir / "acks.log")

    def _ack(self, ids: list[str]) -> None:
        now = time.time()
        self.log.write([f"A {t} {now:.4f}\n" for t in ids])
        for t in ids:
            self.acked[t] = now

    def _error(self, exc: BaseException) -> None:
        self.errors[type(exc).__name__] += 1
        if self.first_error_at is None:
            self.first_error_at = time.time()

    def run(self) -> None:
        client = pyasynq.Client(
            self.url, failover_timeout=60, wait_replicas=self.durable_replicas, wait_timeout=1.0
        )
        started = time.monotonic()
        try:
            i = 0
            while i < self.n and not self.stop_flag:
                step = 1 if self.durable_replicas else min(self.batch, self.n - i)
                if self.rate:
                    ahead = i / self.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                self._enqueue(client, list(range(i, i + step)))
                i += step
                self.progress = i
        finally:
            client.close()
            self.log.close()

    def _enqueue(self, client: pyasynq.Client, todo: list[int]) -> None:
        while todo and not self.stop_flag:
            tasks = [(pyasynq.Task(self.task_type, self.payload(j)),
                      pyasynq.Options(task_id=f"{self.prefix}{j}", max_retry=100_000))
                     for j in todo]  # fmt: skip
            try:
                if self.durable_replicas:
                    client.enqueue(tasks[0][0], task_id=tasks[0][1].task_id, max_retry=100_000)
                    self._ack([f"{self.prefix}{todo[0]}"])
                    return
                results = client.enqueue_many(tasks)
            except pyasynq.TaskIDConflictError:
                self._ack([f"{self.prefix}{todo[0]}"])  # an attempt whose reply was lost stored it
                return
            except pyasynq.PyAsynqError as exc:
                self._error(exc)
                time.sleep(0.1)
                continue
            ok, again = [], []
            for j, res in zip(todo, results, strict=True):
                if res.error is None or isinstance(res.error, pyasynq.TaskIDConflictError):
                    ok.append(f"{self.prefix}{j}")
                else:
                    self._error(res.error)
                    again.append(j)
            self._ack(ok)
            todo = again
            if todo:
                time.sleep(0.1)


@dataclass
class Runs:
    """Every handler run read back from the workers' event files."""

    starts: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    finishes: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))

    @property
    def finish_times(self) -> list[float]:
        return sorted(at for runs in self.finishes.values() for _, at in runs)


def read_runs(run_dir: Path) -> Runs:
    runs = Runs()
    for f in run_dir.glob("events-*.log"):
        pid = int(f.stem.split("-")[1])
        for line in f.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) != 3 or parts[0] not in "SF":
                continue  # a line cut short
            try:
                at = float(parts[2])
            except ValueError:
                continue
            (runs.starts if parts[0] == "S" else runs.finishes)[parts[1]].append((pid, at))
    return runs


def read_acks(run_dir: Path) -> dict[str, float]:
    acks: dict[str, float] = {}
    path = run_dir / "acks.log"
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                acks.setdefault(parts[1], float(parts[2]))
    return acks


# The line a worker's recoverer logs when it takes back a task whose lease expired.
_RECOVERED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) .*recoverer: task (\S+) in \S+ had an expired lease"
)


def read_recoveries(run_dir: Path) -> dict[str, list[float]]:
    """When each task's expired lease was taken back, from the workers' logs (their
    local-time stamps, to the millisecond)."""
    out: dict[str, list[float]] = defaultdict(list)
    for f in run_dir.glob("worker-*.err"):
        for line in f.read_text(errors="replace").splitlines():
            if (m := _RECOVERED.match(line)) is not None:
                at = time.mktime(time.strptime(m[1], "%Y-%m-%d %H:%M:%S")) + int(m[2]) / 1000
                out[m[3]].append(at)
    return out


def finished(run_dir: Path) -> set[str]:
    return set(read_runs(run_dir).finishes)


class FinishTail:
    """The set of finished task ids, read incrementally from the event files (a poll
    reads only what was appended since the last one)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.offsets: dict[Path, int] = {}
        self.done: set[str] = set()

    def poll(self) -> set[str]:
        for f in self.run_dir.glob("events-*.log"):
            off = self.offsets.get(f, 0)
            with f.open("rb") as fh:
                fh.seek(off)
                data = fh.read()
            end = data.rfind(b"\n") + 1
            self.offsets[f] = off + end
            for line in data[:end].split(b"\n"):
                if line.startswith(b"F "):
                    self.done.add(line.split()[1].decode())
        return self.done
