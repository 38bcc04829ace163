"""The partition scenario made in the kernel: Redis and the workers in a network namespace
of their own (chaos/netns.py), talking over its 127.0.0.1; packets between them delayed,
then dropped at random, then all dropped for 2.5 leases several times, each time healed.
The producer and the harness reach Redis through its unix socket, outside the faults."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from .checker import Result, Skipped
from .ledger import Producer
from .netns import NetNS, missing
from .procs import Fault, Workers, wait_until
from .scenarios import LEASE, TIMINGS, Ctx, drain, finish

PORT = 6379  # the namespace's own: nothing else listens there


class NsRedis:
    """redis-server in the namespace, on its 127.0.0.1:6379 and a unix socket."""

    def __init__(self, ns: NetNS, run_dir: Path) -> None:
        d = run_dir / "redis"
        d.mkdir(parents=True, exist_ok=True)
        self.sock = d / "redis.sock"
        from pyasynq.embedded import find_server_binary

        with (d / "log").open("ab") as log:
            self.proc = subprocess.Popen(
                [*ns.prefix, find_server_binary(), "--bind", "127.0.0.1", "--port", str(PORT),
                 "--unixsocket", str(self.sock), "--unixsocketperm", "700", "--dir", str(d),
                 "--save", "", "--appendonly", "no"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if not wait_until(lambda: self.client().ping(), 20):
            self.stop()
            raise RuntimeError(f"redis-server did not start in {ns.name}; see {d}/log")

    @property
    def url(self) -> str:
        """For the harness and the producer (no packet rule applies to a unix socket)."""
        return f"unix://{self.sock}?db=0"

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.sock), socket_timeout=5)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _server_pids(raw: redis.Redis) -> set[int]:
    members: list[bytes] = raw.zrange("asynq:servers", 0, -1)  # type: ignore[assignment]
    return {int(m.split(b":")[-2]) for m in members}


class Timeline:
    """Runs each ``(seconds from the first tick, action)`` once, in order."""

    def __init__(self, steps: list[tuple[float, Callable[[], None]]]) -> None:
        self.steps = sorted(steps, key=lambda s: s[0])
        self.t0: float | None = None

    def __call__(self) -> None:
        if self.t0 is None:
            self.t0 = time.monotonic()
        while self.steps and time.monotonic() - self.t0 >= self.steps[0][0]:
            self.steps.pop(0)[1]()


def partition_netns(base: Path, rate: float, phase: float, cuts: int) -> Result:
    """Delay (20 ± 5 ms each way) for ``phase`` s, loss (7 % each way) for ``phase`` s,
    then ``cuts`` partitions of 2.5 leases of both workers, then ``cuts`` of one worker
    alone (the other takes its tasks over); tasks at ``rate``/s throughout. Faults are
    ``quiet`` s apart, more than the checker's slack (a lease + 1 s), so each duplicate
    is tied to the fault that caused it, not to the one before."""
    why = missing()
    if why is not None:
        raise Skipped(why)
    ctx = Ctx.make(base, "partition-netns")
    cut_s = LEASE * 2.5
    quiet = LEASE + 2.0
    with NetNS() as ns:
        # Worker 0 in a cgroup of its own, to cut it off alone (none: both cuts only).
        alone = ns.cgroup_prefix("w0")
        total = 2 * (phase + quiet) + (2 if alone else 1) * cuts * (cut_s + quiet)
        n = int(rate * total)
        red = NsRedis(ns, ctx.run_dir)
        w: Workers | None = None
        try:
            w = Workers(ctx.run_dir, f"redis://127.0.0.1:{PORT}/0", 2,
                        {**TIMINGS, "CHAOS_CONCURRENCY": "30"},
                        prefix=[alone or ns.prefix, ns.prefix])  # fmt: skip
            w.start()
            raw = red.client()
            pids = {w.pid(i) for i in range(2)}
            if not wait_until(lambda: pids <= _server_pids(raw), 60):
                raise RuntimeError(f"workers did not start; see {ctx.run_dir}/worker-*.err")
            prod = Producer(red.url, ctx.run_dir, n, prefix="q", batch=20, rate=rate,
                            payload=lambda i: b"150")  # fmt: skip
            prod.start()
            since: dict[str, float] = {}

            def begin(kind: str, act: Callable[[], None]) -> Callable[[], None]:
                def run() -> None:
                    act()
                    since[kind] = time.time()

                return run

            def end(kind: str, note: str = "") -> Callable[[], None]:
                def run() -> None:
                    ns.heal()
                    ctx.faults.add(Fault(kind, since.pop(kind), time.time(), note=note))

                return run

            delay, loss = "delay 20±5 ms each way", "loss 7 % each way"
            steps: list[tuple[float, Callable[[], None]]] = [
                (0.0, begin(delay, lambda: ns.delay(PORT, 20, 5))),
                (phase, end(delay)),
                (phase + quiet, begin(loss, lambda: ns.loss(PORT, 7))),
                (2 * phase + quiet, end(loss)),
            ]
            cut = "partition 2.5 leases (every packet dropped)"
            for k in range(cuts):
                at = 2 * (phase + quiet) + k * (cut_s + quiet)
                steps += [(at, begin(cut, lambda: ns.partition(PORT))), (at + cut_s, end(cut))]
            one, pid0 = "one worker cut off 2.5 leases", f"worker pid {w.pid(0)}"
            for k in range(cuts if alone else 0):
                at = 2 * (phase + quiet) + (cuts + k) * (cut_s + quiet)
                steps += [
                    (at, begin(one, lambda: ns.isolate(PORT, "w0"))),
                    (at + cut_s, end(one, pid0)),
                ]
            drain(ctx, prod, 120 + total * 3, Timeline(steps))
            ns.heal()
            res = finish(ctx, "partition in a netns: delay, loss, cuts", prod, w)
            res.notes.append(
                f"Redis and workers in network namespace {ns.name} (its own 127.0.0.1); "
                f"{delay} ({'tc netem' if ns.netem else 'NFQUEUE delayer, no sch_netem'}) "
                f"{phase:g} s, {loss} (iptables) {phase:g} s, {cuts} partitions of "
                f"{cut_s:g} s (iptables DROP both ways, healed without resetting "
                f"connections){f', {cuts} of worker 0 alone (its cgroup)' if alone else ''}; "
                f"{rate:g} tasks/s of 150 ms (some always running when a cut starts); "
                f"lease {LEASE:g} s"
            )
            return res
        finally:
            if w is not None:  # the workers first, while the namespace still exists
                w.stop(timeout=5)
            red.stop()
