"""The fault scenarios. Each starts its own redis-server (or topology) and workers in its
own run directory, injects its faults while tasks flow, waits until every acknowledged task
has finished (or Redis holds no task any more, where losing some is the documented
outcome), and hands the records to the checker. Sizes come from the tier (chaos/run.py)."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from pyasynq._rdb import keys

from .checker import Result, classify
from .ledger import FinishTail, Producer, read_acks, read_runs
from .procs import Fault, FaultLog, Redis, Workers
from .proxy import Proxy

LEASE = 2.0
TIMINGS = {"CHAOS_LEASE": str(LEASE), "CHAOS_HEARTBEAT": "0.4", "CHAOS_RECOVERER": "0.5",
           "CHAOS_SHUTDOWN_TIMEOUT": "3"}  # fmt: skip
STALE = ("outcome dropped", "lease expired before its outcome was written")


@dataclass
class Ctx:
    run_dir: Path
    faults: FaultLog

    @classmethod
    def make(cls, base: Path, name: str) -> Ctx:
        d = base / name
        d.mkdir(parents=True, exist_ok=True)
        return cls(d, FaultLog(d / "faults.jsonl"))


def remaining(r: redis.Redis, q: str = "default") -> int:
    return int(
        r.llen(keys.pending_key(q)) + r.llen(keys.active_key(q))
        + r.zcard(keys.retry_key(q)) + r.zcard(keys.scheduled_key(q))
    )  # fmt: skip


def drain(
    ctx: Ctx,
    producer: Producer,
    timeout: float,
    inject: Callable[[], None] | None = None,
    empty: Callable[[], bool] | None = None,
) -> None:
    """Until every acknowledged task finished; with ``empty``, also when Redis has held no
    task for 3 s after the producer ended (the rest were lost). ``inject`` runs each tick."""
    tail = FinishTail(ctx.run_dir)
    deadline = time.monotonic() + timeout
    empty_since: float | None = None
    while time.monotonic() < deadline:
        if inject is not None:
            inject()
        if not producer.is_alive():
            done = tail.poll()
            if len(done) >= len(producer.acked) and all(t in done for t in producer.acked):
                return
            if empty is not None:
                try:
                    is_empty = empty()
                except (redis.RedisError, OSError):
                    is_empty = False
                if not is_empty:
                    empty_since = None
                elif empty_since is None:
                    empty_since = time.monotonic()
                elif time.monotonic() - empty_since > 3:
                    return
        time.sleep(0.1)
    producer.stop_flag = True
    raise TimeoutError(f"{ctx.run_dir.name}: not drained in {timeout:.0f}s")


def finish(ctx: Ctx, name: str, producers: Producer | list[Producer], workers: Workers, *,
           lost_allowed: bool = False, notes: list[str] | None = None) -> Result:  # fmt: skip
    prods = producers if isinstance(producers, list) else [producers]
    for p in prods:
        p.stop_flag = True
        p.join(10)
    workers.stop()
    stale = sum(workers.log_lines(*STALE).values())
    attempted = {f"{p.prefix}{i}" for p in prods for i in range(p.progress)}
    res = classify(name, attempted, read_acks(ctx.run_dir), read_runs(ctx.run_dir),
                   ctx.faults.faults, LEASE, stale, lost_allowed)  # fmt: skip
    res.notes.extend(notes or [])
    errors: dict[str, int] = {}
    for p in prods:
        for k, v in p.errors.items():
            errors[k] = errors.get(k, 0) + v
    if errors:
        res.notes.append("enqueue errors, retried: " + ", ".join(f"{k} x{v}" for k, v in errors.items()))
    return res


class Every:
    """Calls ``action`` every ``period`` seconds (from the first tick), ``times`` times."""

    def __init__(self, period: float, times: int, action: Callable[[int], None],
                 first: float | None = None) -> None:  # fmt: skip
        self.period, self.times, self.action = period, times, action
        self.next = time.monotonic() + (period if first is None else first)
        self.done = 0

    def __call__(self) -> None:
        if self.done < self.times and time.monotonic() >= self.next:
            self.action(self.done)
            self.done += 1
            self.next = time.monotonic() + self.period


# a. Worker SIGKILL every 2 s across a large drain; the killed worker is started again.
def worker_kill(base: Path, n: int) -> Result:
    ctx = Ctx.make(base, "worker-sigkill")
    red = Redis(ctx.run_dir)
    try:
        prod = Producer(red.url, ctx.run_dir, n, prefix="k", batch=1000,
                        payload=lambda i: str(i % 4).encode())  # fmt: skip
        prod.start()
        w = Workers(ctx.run_dir, red.url, 3, {**TIMINGS, "CHAOS_CONCURRENCY": "30"})
        w.start()
        rng = random.Random(19)

        def kill(_: int) -> None:
            slot = rng.randrange(3)
            at = time.time()
            pid = w.signal(slot, signal.SIGKILL)
            w.wait(slot, 5)
            ctx.faults.add(Fault("worker SIGKILL", at, at, (pid,)))
            w.start(slot)

        drain(ctx, prod, 60 + n / 100, Every(2.0, 10**9, kill))
        return finish(ctx, "worker SIGKILL every 2 s", prod, w)
    finally:
        red.stop()


# b. A worker stopped (SIGSTOP) for 2.5 leases, then continued: its leases ran out, others
#    took its tasks, and its late outcomes must be refused.
def worker_stall(base: Path, n: int, stalls: int) -> Result:
    ctx = Ctx.make(base, "worker-sigstop")
    red = Redis(ctx.run_dir)
    try:
        prod = Producer(red.url, ctx.run_dir, n, prefix="s", payload=lambda i: b"150")
        w = Workers(ctx.run_dir, red.url, 2, {**TIMINGS, "CHAOS_CONCURRENCY": "20"})
        w.start()
        prod.start()

        def stall(k: int) -> None:
            slot = k % 2
            at = time.time()
            pid = w.signal(slot, signal.SIGSTOP)
            time.sleep(LEASE * 2.5)
            w.signal(slot, signal.SIGCONT)
            ctx.faults.add(Fault("worker SIGSTOP past the lease", at, time.time(), (pid,)))

        drain(ctx, prod, 120 + n / 50, Every(1.5, stalls, stall, first=1.0))
        res = finish(ctx, "worker SIGSTOP 2.5 leases", prod, w)
        res.notes.append(f"stale outcomes refused (logged by the worker): {res.stale_refused}")
        return res
    finally:
        red.stop()


# c. Handlers longer than the lease in live processes: never delivered twice.
def long_handler(base: Path, n: int, leases: float) -> Result:
    ctx = Ctx.make(base, "long-handler")
    red = Redis(ctx.run_dir)
    try:
        ms = str(int(LEASE * leases * 1000)).encode()
        w = Workers(ctx.run_dir, red.url, 2, {**TIMINGS, "CHAOS_CONCURRENCY": "4"})
        w.start()
        # CPU-bound sync handlers (they hold the GIL) and async sleeps.
        cpu = Producer(red.url, ctx.run_dir, n, prefix="c", payload=lambda i: ms,
                       task_type="chaos:cpu")  # fmt: skip
        cpu.run()
        sleeper = Producer(red.url, ctx.run_dir, n, prefix="a", payload=lambda i: ms)
        sleeper.run()
        sleeper.acked.update(cpu.acked)
        drain(ctx, sleeper, 60 + n * LEASE * leases)
        res = finish(ctx, f"handler {leases:g} leases long", [cpu, sleeper], w, notes=[
            f"{n} CPU-bound sync + {n} async handlers of {LEASE * leases:g} s each, lease "
            f"{LEASE:g} s, no fault: any second run counts as unexpected"])  # fmt: skip
        res.unexpected += res.duplicated
        return res
    finally:
        red.stop()
