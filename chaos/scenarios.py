"""The fault scenarios. Each starts its own redis-server (or topology) and workers in its
own run directory, injects its faults while tasks flow, waits until every acknowledged task
has finished (or Redis holds no task any more, where losing some is the documented
outcome), and hands the records to the checker. Sizes come from the tier (chaos/run.py)."""

from __future__ import annotations

import contextlib
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from pyasynq._rdb import keys

from .checker import Result, classify
from .ledger import FinishTail, Producer, read_acks, read_recoveries, read_runs
from .procs import Fault, FaultLog, Redis, Workers, wait_until
from .proxy import Proxy

LEASE = 2.0
TIMINGS = {"CHAOS_LEASE": str(LEASE), "CHAOS_HEARTBEAT": "0.4", "CHAOS_RECOVERER": "0.5",
           "CHAOS_SHUTDOWN_TIMEOUT": "3"}  # fmt: skip
# What a worker logs when it refuses (drops) the outcome of a task whose lease it lost.
STALE = ("outcome dropped", "lease expired before its outcome was written",
         "dropped a write whose lease ended")  # fmt: skip


@dataclass
class Ctx:
    run_dir: Path
    faults: FaultLog
    notes: list[str] = field(default_factory=list)

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
    ctx.notes.append(
        f"NOT DRAINED within {timeout:.0f} s (producer at {producer.progress}/{producer.n}): "
        "what had not finished is counted as lost"
    )


def finish(ctx: Ctx, name: str, producers: Producer | list[Producer], workers: Workers, *,
           lost_allowed: bool = False, notes: list[str] | None = None) -> Result:  # fmt: skip
    prods = producers if isinstance(producers, list) else [producers]
    for p in prods:
        p.stop_flag = True
        if p.is_alive():
            p.join(10)
    workers.stop()
    stale = sum(workers.log_lines(*STALE).values())
    attempted = {f"{p.prefix}{i}" for p in prods for i in range(p.progress)}
    res = classify(
        name, attempted, read_acks(ctx.run_dir), read_runs(ctx.run_dir), ctx.faults.faults,
        lease=LEASE, stale_refused=stale, lost_allowed=lost_allowed,
        recovered=read_recoveries(ctx.run_dir),
    )  # fmt: skip
    res.notes.extend(ctx.notes + (notes or []))
    errors: dict[str, int] = {}
    for p in prods:
        for k, v in p.errors.items():
            errors[k] = errors.get(k, 0) + v
    if errors:
        res.notes.append(
            "enqueue errors, retried: " + ", ".join(f"{k} x{v}" for k, v in errors.items())
        )
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
        w.wait_ready()
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
        w.wait_ready()
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
        w.wait_ready()
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


def _redis_down(ctx: Ctx, red: Redis, kind: str, down: float) -> None:
    at = time.time()
    red.kill()
    time.sleep(down)
    red.restart()
    ctx.faults.add(Fault(kind, at, time.time()))


# d. Redis SIGKILLed and started again on its AOF, with appendfsync always or everysec.
def redis_kill(base: Path, n: int, kills: int, fsync: str) -> Result:
    ctx = Ctx.make(base, f"redis-sigkill-aof-{fsync}")
    red = Redis(ctx.run_dir, "--appendonly", "yes", "--appendfsync", fsync)
    try:
        rate = 1500.0
        prod = Producer(red.url, ctx.run_dir, n, prefix="d", batch=50, rate=rate)
        w = Workers(ctx.run_dir, red.url, 2, TIMINGS)
        w.start()
        w.wait_ready()
        prod.start()
        period = n / rate / (kills + 1)
        kill = Every(period, kills, lambda k: _redis_down(ctx, red, "Redis SIGKILL", 0.3))
        drain(ctx, prod, 120 + n / 100, kill, empty=lambda: remaining(red.client()) == 0)
        res = finish(ctx, f"Redis SIGKILL, AOF fsync {fsync}", prod, w,
                     lost_allowed=fsync != "always")  # fmt: skip
        if fsync == "everysec":
            res.notes.append(
                "a SIGKILL of the Redis process loses no acknowledged write even with everysec: "
                "Redis write(2)s the AOF before it replies; the everysec window (up to 1 s, "
                "2 s at worst) is lost only to an OS crash or power cut, not simulated here"
            )
        if res.lost:
            acks = read_acks(ctx.run_dir)
            lost = [acks[t] for t in acks if t in set(res.examples["all_lost"])]
            windows = []
            for f in ctx.faults.faults:
                mine = [f.at - a for a in lost if a <= f.at + 0.01 and a > f.at - 5]
                if mine:
                    windows.append(max(mine))
            res.notes.append(
                "lost acknowledged enqueues were all acknowledged at most "
                f"{max(windows, default=0) * 1000:.0f} ms before a kill (the fsync window)"
            )
        return res
    finally:
        red.stop()


# e. Redis restarted without persistence: everything it held is gone. The worker warned
#    at its start; the count of lost tasks is what Redis held at the restart.
def redis_restart_no_persistence(base: Path, n: int) -> Result:
    ctx = Ctx.make(base, "redis-restart-no-persistence")
    red = Redis(ctx.run_dir)
    try:
        # Handlers of 50 ms: the workers take 800 tasks/s, so a backlog builds up in Redis.
        prod = Producer(red.url, ctx.run_dir, n, prefix="e", batch=50, rate=1500.0,
                        payload=lambda i: b"50")  # fmt: skip
        w = Workers(ctx.run_dir, red.url, 2, TIMINGS)
        w.start()
        w.wait_ready()
        prod.start()
        held: list[int] = []

        def restart(_: int) -> None:
            held.append(remaining(red.client()))
            _redis_down(ctx, red, "Redis restart, no persistence", 0.3)

        drain(ctx, prod, 120 + n / 100, Every(n / 1500 / 2, 1, restart),
              empty=lambda: remaining(red.client()) == 0)  # fmt: skip
        warned = sum(w.log_lines("no persistence").values())
        res = finish(ctx, "Redis restart without persistence", prod, w, lost_allowed=True)
        res.notes.append(
            f"Redis held {held[0] if held else '?'} unfinished tasks at the restart (the "
            "ones running then finished: their handlers ran, only the record was lost); "
            f"{res.lost} acknowledged tasks lost; the workers warned at start ({warned} "
            "warning lines: 'Redis has no persistence')"
        )
        return res
    finally:
        red.stop()


# f. Redis frozen (SIGSTOP) for longer than the lease, then continued.
def redis_freeze(base: Path, n: int, freezes: int) -> Result:
    ctx = Ctx.make(base, "redis-sigstop")
    red = Redis(ctx.run_dir)
    try:
        prod = Producer(red.url, ctx.run_dir, n, prefix="f", batch=50, rate=1000.0,
                        payload=lambda i: b"50")  # fmt: skip
        w = Workers(ctx.run_dir, red.url, 2, TIMINGS)
        w.start()
        w.wait_ready()
        prod.start()

        def freeze(_: int) -> None:
            at = time.time()
            red.signal(signal.SIGSTOP)
            time.sleep(LEASE * 2)
            red.signal(signal.SIGCONT)
            ctx.faults.add(Fault("Redis SIGSTOP 2 leases", at, time.time()))

        period = n / 1000 / (freezes + 1)
        drain(ctx, prod, 120 + n / 100, Every(period, freezes, freeze))
        return finish(ctx, "Redis frozen 2 leases", prod, w)
    finally:
        red.stop()


# g. Graceful shutdown (SIGTERM) of a worker in the middle of its batches, started again.
def graceful_shutdown(base: Path, n: int, stops: int) -> Result:
    ctx = Ctx.make(base, "worker-sigterm")
    red = Redis(ctx.run_dir)
    try:
        prod = Producer(
            red.url, ctx.run_dir, n, prefix="g", payload=lambda i: str(i % 200).encode()
        )
        w = Workers(ctx.run_dir, red.url, 2, {**TIMINGS, "CHAOS_CONCURRENCY": "40"})
        w.start()
        w.wait_ready()
        prod.start()

        def term(k: int) -> None:
            slot = k % 2
            at = time.time()
            pid = w.signal(slot, signal.SIGTERM)
            w.wait(slot, 30)
            ctx.faults.add(Fault("worker SIGTERM", at, time.time(), (pid,)))
            w.start(slot)

        drain(ctx, prod, 120 + n / 50, Every(2.0, stops, term))
        res = finish(ctx, "graceful shutdown mid-batch", prod, w)
        res.notes.append(
            "handlers of 0-200 ms, shutdown_timeout 3 s: every running task "
            "finishes, the unstarted ones go back to the queue; a duplicate "
            "here would mean a task was handed back while it ran"
        )
        res.unexpected += res.duplicated
        return res
    finally:
        red.stop()


# h. maxmemory with noeviction: Redis fills up (enqueues refused), workers start and drain,
#    enqueues go on.
def maxmemory(base: Path, n: int) -> Result:
    ctx = Ctx.make(base, "maxmemory-noeviction")
    red = Redis(ctx.run_dir, "--maxmemory", "8mb", "--maxmemory-policy", "noeviction")
    try:
        blob = b"0" * 1000  # 1 kB, parsed by the handler as 0 ms
        prod = Producer(red.url, ctx.run_dir, n, prefix="h", batch=200, payload=lambda i: blob)
        w = Workers(ctx.run_dir, red.url, 2, TIMINGS)
        prod.start()
        full_for = 0.0
        started: list[float] = []

        def start_workers() -> None:
            if (
                not started
                and prod.first_error_at is not None
                and (time.time() - prod.first_error_at > 2)
            ):
                started.append(time.time())
                w.start()

        def inject() -> None:
            start_workers()

        deadline = time.monotonic() + 60
        while prod.is_alive() and not started and time.monotonic() < deadline:
            inject()
            time.sleep(0.1)
        if not started:
            w.start()
            started.append(time.time())
        if prod.first_error_at is not None:
            ctx.faults.add(Fault("maxmemory reached", prod.first_error_at, started[0]))
            full_for = started[0] - prod.first_error_at
        drain(ctx, prod, 120 + n / 100)
        return finish(ctx, "maxmemory noeviction reached", prod, w, notes=[
            f"maxmemory 8 MB, 1 kB payloads; enqueues refused for {full_for:.1f} s until "
            "workers started and drained"])  # fmt: skip
    finally:
        red.stop()


# l. A network partition between the workers and Redis (a loopback proxy of our own drops
#    every byte for 2.5 leases, then resets the connections).
def partition(base: Path, n: int, cuts: int) -> Result:
    ctx = Ctx.make(base, "partition")
    red = Redis(ctx.run_dir)
    proxy = Proxy(red.port)
    proxy.start()
    try:
        prod = Producer(red.url, ctx.run_dir, n, prefix="p", batch=50, rate=800.0,
                        payload=lambda i: b"50")  # fmt: skip
        w = Workers(ctx.run_dir, f"redis://127.0.0.1:{proxy.port}/0", 2, TIMINGS)
        w.start()
        w.wait_ready()
        prod.start()

        def cut(_: int) -> None:
            at = time.time()
            proxy.blackhole()
            time.sleep(LEASE * 2.5)
            proxy.heal(reset=True)
            ctx.faults.add(Fault("partition 2.5 leases", at, time.time()))

        period = n / 800 / (cuts + 1)
        drain(ctx, prod, 120 + n / 100, Every(period, cuts, cut))
        return finish(ctx, "partition workers-Redis", prod, w)
    finally:
        proxy.stop()
        red.stop()


# j. Sentinel or Cluster failover under load, durable enqueues (wait_replicas): the master
#    holding the queue is SIGKILLed, a replica takes over, the old master comes back as a
#    replica. Target: 0 acknowledged tasks lost.
def failover(base: Path, kind: str, n: int, kills: int) -> Result:
    from topology import ClusterTopology, SentinelTopology  # type: ignore[import-not-found]

    ctx = Ctx.make(base, f"{kind}-failover")
    topo: SentinelTopology | ClusterTopology
    if kind == "sentinel":
        topo = SentinelTopology(replicas=2, sentinels=3, dir=ctx.run_dir / "topo")
        replicas = 1
    else:
        topo = ClusterTopology(masters=3, replicas=1, dir=ctx.run_dir / "topo")
        replicas = 1
    (ctx.run_dir / "topo").mkdir(exist_ok=True)
    key = keys.pending_key("default")

    def master() -> object:
        return (
            topo.current_master()
            if isinstance(topo, SentinelTopology)
            else topo.master_for_key(key)
        )

    with topo:
        prod = Producer(topo.url(), ctx.run_dir, n, prefix="x", durable_replicas=replicas)
        w = Workers(ctx.run_dir, topo.url(), 2, TIMINGS)
        w.start()
        w.wait_ready()
        prod.start()
        for k in range(kills):
            target = n * (k + 1) // (kills + 1)
            while prod.progress < target and prod.is_alive():
                time.sleep(0.05)
            if isinstance(topo, SentinelTopology):
                _sentinels_ready(topo, ctx.faults.faults[-1].at if ctx.faults.faults else None)
            at = time.time()
            node = master()
            node.kill()  # type: ignore[attr-defined]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if master() is not node:
                        break
                except Exception:  # topology in flux: ask again
                    pass
                time.sleep(0.1)
            promoted = time.time()
            node.restart()  # type: ignore[attr-defined]
            if isinstance(topo, SentinelTopology):
                topo.wait_synced(60)
            else:
                topo.wait_healthy(60)
                deadline = time.monotonic() + 60
                while not topo._synced() and time.monotonic() < deadline:
                    time.sleep(0.1)
            # The fault lasts until a replica took over; the old master rejoins after.
            ctx.faults.add(Fault(f"{kind} failover", at, promoted,
                                 note=f"rejoined after {time.time() - at:.2f} s"))  # fmt: skip
        drain(ctx, prod, 120 + n / 50)
        promoted_in = [f.until - f.at for f in ctx.faults.faults]
        return finish(ctx, f"{kind.capitalize()} failover, durable enqueue", prod, w, notes=[
            f"wait_replicas={replicas}; master SIGKILLed {kills} times; a replica was "
            f"promoted after {min(promoted_in, default=0):.1f}-{max(promoted_in, default=0):.1f} s"
        ])  # fmt: skip


def _sentinels_ready(topo: Any, last_failover: float | None) -> None:
    """Before the next kill: a Sentinel starts a new failover of the same master only
    2 x failover-timeout (5 s in the topology) after its last one, and promotes only a
    replica it sees linked; a kill sooner waits for neither promotion (up to 60 s) nor a
    replica, which measures the harness, not the failover."""
    if last_failover is not None:
        time.sleep(max(0.0, last_failover + 10.5 - time.time()))

    def linked() -> bool:
        for sn in topo.sentinel_nodes:
            # redis-py answers one dict (bytes keys and values) per replica.
            reps = sn.client().execute_command("SENTINEL", "REPLICAS", topo.master_name)
            if not any(r.get(b"flags") == b"slave" and r.get(b"master-link-status") == b"ok"
                       for r in reps):  # fmt: skip
                return False
        return True

    wait_until(linked, 30)


# i. Scheduler replicas, one SIGKILLed every 2 s and started again: each tick of an
#    ``@every 1s`` entry must be enqueued (and run) exactly once.
def scheduler_replicas(base: Path, seconds: float) -> Result:
    import subprocess
    import sys

    from pyasynq._scheduler.entries import tick_task_id

    from .periodic import CONFIG
    from .procs import REPO

    ctx = Ctx.make(base, "scheduler-replicas")
    red = Redis(ctx.run_dir)
    procs: list[subprocess.Popen[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        with (ctx.run_dir / f"scheduler-{time.time_ns()}.log").open("wb") as log:
            p = subprocess.Popen(
                [sys.executable, "-m", "pyasynq", "--redis-url", red.url, "scheduler",
                 "chaos.periodic:configs", "--heartbeat-interval", "0.5"],
                cwd=REPO, env={**w.env}, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        procs.append(p)
        return p

    w = Workers(ctx.run_dir, red.url, 1, TIMINGS)
    try:
        w.start()
        w.wait_ready()
        for _ in range(3):
            spawn()
        r = red.client()
        if not _poll(lambda: r.zcard(keys.ALL_SCHEDULERS) >= 3, 30):
            raise RuntimeError("scheduler replicas did not start")
        started = time.time()
        rng = random.Random(19)
        while time.time() < started + seconds:
            time.sleep(2.0)
            victim = rng.choice([p for p in procs if p.poll() is None])
            at = time.time()
            victim.kill()
            victim.wait(10)
            ctx.faults.add(Fault("scheduler SIGKILL", at, at))
            spawn()
        first, last = int(started) + 1, int(time.time()) - 2
        identity = CONFIG.identity()
        expected = {tick_task_id(identity, t) for t in range(first, last + 1)}
        around = {tick_task_id(identity, t) for t in range(first - 60, last + 60)}
        _poll(lambda: expected <= FinishTail(ctx.run_dir).poll(), 30)
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        w.stop()
        return _count_ticks(ctx, expected, around)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        w.stop()
        red.stop()


def _count_ticks(ctx: Ctx, expected: set[str], around: set[str]) -> Result:
    runs = read_runs(ctx.run_dir)
    # Runs of ticks outside [first, last] (before the count started, after it ended)
    # are neither expected nor strangers.
    for tid in list(runs.starts) + list(runs.finishes):
        if tid in around and tid not in expected:
            runs.starts.pop(tid, None)
            runs.finishes.pop(tid, None)
    res = classify("scheduler replicas SIGKILLed", expected, dict.fromkeys(expected, 0.0),
                   runs, ctx.faults.faults, lease=LEASE)  # fmt: skip
    res.unexpected += res.duplicated  # a tick run twice means it was enqueued twice
    res.notes.append(
        f"3 replicas of an @every 1s entry, one SIGKILLed every 2 s; "
        f"{len(expected)} ticks counted, each must run once (lost = a missed tick)"
    )
    return res


def _poll(cond: Callable[[], bool], timeout: float) -> bool:
    from .procs import wait_until

    return wait_until(cond, timeout, 0.1)


# k. Worker clock skew: one worker 300 s ahead, one 300 s behind, one on time
#    (libfaketime, workers only; Redis and the producer keep the true time). pyasynq's
#    workers keep Redis's time (RedisClock), so no duplicate is expected: any is unexpected.
def clock_skew(base: Path, n: int) -> Result | None:
    import shutil

    if shutil.which("faketime") is None:
        return None
    ctx = Ctx.make(base, "clock-skew")
    red = Redis(ctx.run_dir)
    try:
        # libfaketime preloaded through env(1), which execs: the worker keeps its pid (the
        # faketime wrapper would fork it into a child the harness cannot signal).
        lib = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), None)
        if lib is None:
            return None

        def skew(offset: int) -> list[str]:
            # FORCE_MONOTONIC_FIX=0: libfaketime's "fix" of pthread_cond_timedwait (not
            # needed, monotonic time is left alone) delays the GIL's handoff between
            # threads by up to a second under load, starving the heartbeater thread: the
            # harness, not the skew, would then expire leases.
            return ["env", f"LD_PRELOAD={lib}", f"FAKETIME={offset:+d}s",
                    "FAKETIME_DONT_FAKE_MONOTONIC=1", "FAKETIME_FORCE_MONOTONIC_FIX=0",
                    f"CHAOS_CLOCK_OFFSET={offset}"]  # fmt: skip

        w = Workers(ctx.run_dir, red.url, 3, TIMINGS, prefix=[skew(300), skew(-300), []])
        w.start()
        w.wait_ready(raw=red.client())
        pids = tuple(w.pid(i) for i in range(2))
        at = time.time()
        prod = Producer(red.url, ctx.run_dir, n, prefix="w", batch=100, rate=1000.0,
                        payload=lambda i: str(i % 100).encode())  # fmt: skip
        prod.start()
        drain(ctx, prod, 120 + n / 50)
        # Logged for the table, but it explains no duplicate: the workers' clocks are off,
        # their view of time (Redis's) is not.
        ctx.faults.add(Fault("worker clock skew ±300 s", at, time.time(),
                             note=f"skewed worker pids {pids}", explains=False))  # fmt: skip
        return finish(ctx, "worker clock skew ±300 s", prod, w, notes=[
            "workers at +300 s, -300 s and on time; pyasynq's workers keep Redis's time "
            "(TIME, measured at start and every clock_sync_interval), so leases, retries "
            "and scheduled tasks are judged by one clock: 0 duplicates expected, any is "
            "unexpected"])  # fmt: skip
    finally:
        red.stop()


def _move_slot(topo: object, slot: int, src: object, dst: object) -> int:
    """Migrate one slot from ``src`` to ``dst`` the way redis-cli does (IMPORTING and
    MIGRATING, MIGRATE the keys in batches, then SETSLOT NODE everywhere). Returns the
    number of keys moved."""
    s, d = src.client(), dst.client()  # type: ignore[attr-defined]
    sid = s.execute_command("CLUSTER", "MYID").decode()
    did = d.execute_command("CLUSTER", "MYID").decode()
    d.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", sid)
    s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", did)
    moved = 0
    while True:
        batch = s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 200)
        if not batch:
            break
        s.execute_command("MIGRATE", "127.0.0.1", dst.port, "", 0, 10000, "REPLACE",  # type: ignore[attr-defined]
                          "KEYS", *batch)  # fmt: skip
        moved += len(batch)
    for n in topo.nodes:  # type: ignore[attr-defined]
        if n.alive() and n.role == "master":
            with contextlib.suppress(redis.RedisError):
                n.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", did)
    return moved


# m. Cluster resharding under load: the slot of the queue's hash tag moves between masters
#    (keys migrated while tasks are enqueued and processed).
def reshard(base: Path, n: int, moves: int) -> Result:
    from topology import ClusterTopology

    ctx = Ctx.make(base, "cluster-reshard")
    (ctx.run_dir / "topo").mkdir(exist_ok=True)
    topo = ClusterTopology(masters=3, replicas=0, dir=ctx.run_dir / "topo")
    key = keys.pending_key("default")
    with topo:
        # 50 ms handlers at 1,500 enqueues/s: a backlog of task hashes to migrate.
        prod = Producer(topo.url(), ctx.run_dir, n, prefix="r", batch=50, rate=1500.0,
                        payload=lambda i: b"50")  # fmt: skip
        w = Workers(ctx.run_dir, topo.url(), 2, TIMINGS)
        w.start()
        w.wait_ready()
        prod.start()
        slot = int(topo.nodes[0].client().execute_command("CLUSTER", "KEYSLOT", key))
        moved: list[int] = []

        def move(k: int) -> None:
            src = topo.master_for_key(key)
            dst = next(m for m in topo.nodes if m.role == "master" and m is not src)
            at = time.time()
            moved.append(_move_slot(topo, slot, src, dst))
            ctx.faults.add(Fault("slot migration", at, time.time(),
                                 note=f"{moved[-1]} keys {src.port}->{dst.port}"))  # fmt: skip

        period = n / 1500 / (moves + 1)
        drain(ctx, prod, 120 + n / 50, Every(period, moves, move))
        return finish(ctx, "Cluster resharding (slot migration)", prod, w, notes=[
            f"the queue's slot moved {moves} times under load, "
            f"{sum(moved)} keys migrated in all"])  # fmt: skip
