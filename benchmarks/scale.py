"""Scale benchmarks for pyasynq alone (issue 8): does Redis' work per task stay flat?

    python -m benchmarks.scale [--quick] [--steps idle,backlog,inflight,cpu] [--python PATH]

Stdlib only, like benchmarks/run.py, whose Redis start, venv, workers, timeouts, cleanup,
/proc readings and INFO helpers it reuses. Children run in benchmarks/.venv-peers/main.
One private redis-server (AOF on, appendfsync everysec); each step flushes it, rewrites
the AOF (so no rewrite fires inside a measurement), pre-fills the queue through
pyasynq's own ``Client.enqueue_many`` (1,000 per call), starts a worker against it and
reads Redis INFO, the worker's CPU and the handlers' completion times over a window of
tasks after a warm-up:

0. idle: Redis CPU per second alone, then with a worker waiting on an empty queue (the
   floor that slow steps pay per task);
1. backlog: N no-op tasks drained from a small backlog (about 1.5 N) and from a
   backlog of 1,000,000 (quick: 200,000); how long that fill took;
2. in flight: tasks that ``await asyncio.sleep(0.5)`` with concurrency 32 and 1,000, so
   that many ids sit in ``asynq:{default}:active``; INFO ``commandstats`` usec_per_call
   of EVALSHA and of the LREM the completion script runs on that list;
3. cpu: a sync handler burning ~2 ms of pure-Python CPU, drained by
   ``pyasynq worker --processes 1`` and ``--processes 2``.

The report (markdown) goes to stdout and benchmarks/results/scale-<timestamp>.md, the raw
numbers to scale-<timestamp>.json. See docs/benchmarks.md, "Scale".
"""

# ruff: noqa: RUF001 - the report prints multiplication and micro signs on purpose

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import run as harness  # noqa: E402
from benchmarks._driver import burn  # noqa: E402
from benchmarks._report import _f1, _f2, _int, _ratio, _table  # noqa: E402
from benchmarks._resp import command_calls  # noqa: E402

PhaseError = harness.PhaseError
log = harness.log
QUEUE = "default"
PENDING = f"asynq:{{{QUEUE}}}:pending"
ACTIVE = f"asynq:{{{QUEUE}}}:active"
FLAT = 1.25  # a large/small ratio up to this is read as flat (the machine is noisy)


@dataclass
class ScaleSettings:
    backlog: int
    n: int
    warmup: int
    concurrency: int
    inflight: list[int]
    hold: float
    rounds: int
    cpu_ms: float
    cpu_n: int
    processes: list[int]
    idle_seconds: float
    steps: list[str]
    quick: bool
    python: str | None
    src: str | None
    out: Path


@dataclass
class Snap:
    t: float  # time.time(), the clock the handlers' completion times use
    calls: dict[str, int]
    usec: dict[str, int]
    cpu: float  # Redis used_cpu_sys + used_cpu_user, seconds


def tree_state() -> str:
    """The commit the working tree is at, and whether src/ differs from it (read only)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "the working tree"
    return f"the working tree at {head}" + (", src/ modified" if dirty else "")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return (total - idle) / harness.CLK_TCK, total / harness.CLK_TCK


def _busy_procs(bench_dir: Path) -> int:
    """Worker processes that have finished a task (one count file each, see _rec.py)."""
    busy = 0
    with contextlib.suppress(FileNotFoundError):
        for f in (bench_dir / "counts").iterdir():
            with contextlib.suppress(OSError, ValueError):
                busy += not f.name.startswith(".") and int(f.read_text() or 0) > 0
    return busy


def command_usec(info: dict[str, str]) -> dict[str, int]:
    """``INFO commandstats`` as {command: total usec} (calls are in command_calls)."""
    out: dict[str, int] = {}
    for key, value in info.items():
        if key.startswith("cmdstat_"):
            fields = dict(part.split("=", 1) for part in value.split(","))
            out[key[len("cmdstat_") :]] = int(fields["usec"])
    return out


def calibrate(ms: float) -> tuple[int, float]:
    """Loops of ``burn`` worth ``ms`` of this thread's CPU (best of five probes: the CPU
    time of an uncontended run), and the CPU ms those loops took."""
    probe = 200_000
    best = float("inf")
    for _ in range(5):
        t0 = time.thread_time()
        burn(probe)
        best = min(best, time.thread_time() - t0)
    loops = max(1, round(probe * ms / 1000 / best))
    return loops, best / probe * loops * 1000


class Scale:
    def __init__(self, s: ScaleSettings, python: str, redis: Any, work: Path, logs: Path):
        self.s = s
        self.python = python
        self.logs = logs
        # run.py's Bench gives Redis access, flush/AOF rewrite, drivers, counts and times
        self.base = harness.Settings(
            n=s.n,
            warmup=s.warmup,
            batch=1000,
            lat_samples=0,
            lat_max_seconds=0.0,
            concurrency=s.concurrency,
            processes=1,
            drain_timeout=0.0,
            step_timeout=0.0,
            systems=["pyasynq"],
            go_bin=None,
            quick=s.quick,
            profile=[],
            pythons={"main": python},
            out=s.out,
        )
        self.bench = harness.Bench(self.base, redis, work, logs)
        self.r = self.bench.r
        self.cpu_loops, self.cpu_task_ms = calibrate(s.cpu_ms)
        self.idle_us: float | None = None  # Redis CPU µs/s with an idle worker

    # -- readings
    def snap(self) -> Snap:
        stats = self.r.info("commandstats")
        cpu = self.r.info("cpu")
        return Snap(
            time.time(),
            command_calls(stats),
            command_usec(stats),
            float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
        )

    @staticmethod
    def cost(a: Snap, b: Snap, per: int, own: dict[str, int] | None = None) -> dict[str, Any]:
        """Redis work between two snapshots per task (or per second), less the harness'
        own commands (``own``: LLEN probes; INFO is left out by redis_cost)."""
        calls = dict(b.calls)
        for k, v in (own or {}).items():
            calls[k] = calls.get(k, 0) - v
        res = harness.Bench.redis_cost((a.calls, a.cpu), (calls, b.cpu), per)
        usec: dict[str, float] = {}
        for k, v in b.calls.items():
            n = v - a.calls.get(k, 0)
            if n > 0 and k != "info":
                usec[k] = (b.usec.get(k, 0) - a.usec.get(k, 0)) / n
        res["usec_per_call"] = usec
        # one EVALSHA serves many tasks (batched dequeues and acknowledgements)
        res["evalsha_usec_per_task"] = (b.usec.get("evalsha", 0) - a.usec.get("evalsha", 0)) / per
        return res

    # -- children
    def env(self, bench_dir: Path, processes: int | None = None) -> dict[str, str]:
        env = self.bench.env(bench_dir)
        if self.s.src:  # before the editable install's path: another tree's pyasynq
            env["PYTHONPATH"] = os.pathsep.join([self.s.src, env["PYTHONPATH"]])
        env.update(BENCH_HOLD_SECONDS=str(self.s.hold), BENCH_CPU_LOOPS=str(self.cpu_loops))
        if processes is not None:
            env["BENCH_PYASYNQ_PROCESSES"] = str(processes)
        return env

    def workers(self, concurrency: int, env: dict[str, str]) -> harness.Workers:
        s = dataclasses.replace(self.base, concurrency=concurrency, processes=1)
        return harness.Workers(
            self.python, "pyasynq", self.bench.url, s, env=env, log_path=self.logs / "worker.log"
        )

    def fresh(self) -> Path:
        """An empty Redis with a compacted AOF, and a new directory for the handlers."""
        self.bench.flush()
        self.bench.compact_aof()
        return self.bench.new_bench_dir("pyasynq")

    def fill(self, env: dict[str, str], kind: str, n: int) -> dict[str, Any]:
        a = self.snap()
        res = self.bench.driver(
            self.python,
            "pyasynq",
            env,
            ["prefill", "--kind", kind, "--n", str(n)],
            120 + n / 2000,  # 28,000-100,000/s here; at 2,000/s something is broken
        )
        res["rate"] = n / res["seconds"]
        res["redis"] = self.cost(a, self.snap(), n)
        res["used_memory_mib"] = int(self.r.info("memory")["used_memory"]) / 2**20
        return res

    def window(
        self,
        workers: harness.Workers,
        bench_dir: Path,
        warm: int,
        n: int,
        *,
        timeout: float,
        procs: int = 1,
    ) -> dict[str, Any]:
        """Read Redis, the worker's CPU and the queue lists from the first look after the
        ``warm``-th completion (and after each of ``procs`` worker processes has finished a
        task) to the first look ``n`` completions later; the tasks measured are counted
        from the handlers' exact completion times."""
        deadline = time.monotonic() + timeout
        opened: Snap | None = None
        cpu0 = 0.0
        machine0 = (0.0, 0.0)
        own_cpu0 = 0.0
        pending0 = 0
        own = 0  # LLEN probes between the two snapshots
        active: list[int] = []
        next_probe = 0.0
        got = until = 0
        while True:
            got = self.bench.counts(bench_dir)
            now = time.monotonic()
            if opened is None and got >= warm and _busy_procs(bench_dir) >= procs:
                opened, cpu0, until = self.snap(), workers.cpu(), got + n
                machine0, own_cpu0 = machine_cpu(), time.process_time()
                pending0, own = self.r.call("LLEN", PENDING), own + 1
            elif opened is not None:
                if got >= until:
                    break
                if now >= next_probe:
                    active.append(self.r.call("LLEN", ACTIVE))
                    own, next_probe = own + 1, now + 0.2
            if now > deadline:
                break
            workers.check_alive()
            time.sleep(0.025)
        if opened is None:
            raise PhaseError(
                f"{got} tasks ran in {timeout:.0f}s ({_busy_procs(bench_dir)} of {procs} "
                f"processes busy); the window opens after {warm}"
            )
        closed, cpu1, machine1 = self.snap(), workers.cpu(), machine_cpu()
        own_cpu1 = time.process_time()
        pending1 = self.r.call("LLEN", PENDING)
        every = self.bench.times(bench_dir, got)
        tasks = sum(1 for t in every if opened.t < t <= closed.t)
        if not tasks:
            raise PhaseError("no task completed inside the window")
        seconds = closed.t - opened.t
        busy, worker_cpu, redis_cpu = (
            machine1[0] - machine0[0],
            cpu1 - cpu0,
            closed.cpu - opened.cpu,
        )
        res: dict[str, Any] = {
            "tasks": tasks,
            "seconds": seconds,
            "rate": tasks / seconds,
            "redis": self.cost(opened, closed, tasks, {"llen": own}),
            "worker_cpu_us_per_task": worker_cpu / tasks * 1e6,
            # every process on the machine: are the cores saturated, and by whom?
            "machine_busy_cores": busy / seconds,
            "orchestrator_cores": (own_cpu1 - own_cpu0) / seconds,
            "others_busy_cores": (busy - worker_cpu - redis_cpu - (own_cpu1 - own_cpu0)) / seconds,
            "pending": [pending0, pending1],
        }
        if active:
            res["active"] = {
                "mean": sum(active) / len(active),
                "max": max(active),
                "samples": len(active),
            }
        if got < until:
            res["partial"] = f"{n - (until - got)}/{n} in {timeout:.0f}s"
        return res

    def drain(
        self,
        kind: str,
        *,
        total: int,
        warm: int,
        n: int,
        concurrency: int,
        timeout: float,
        processes: int | None = None,
    ) -> dict[str, Any]:
        """Fill the queue with ``total`` tasks, then measure a worker draining it."""
        bench_dir = self.fresh()
        env = self.env(bench_dir, processes)
        fill = self.fill(env, kind, total)
        self.bench.compact_aof()  # the fill's AOF growth must not trigger a rewrite later
        workers = self.workers(concurrency, env)
        try:
            workers.start()
            res = self.window(workers, bench_dir, warm, n, timeout=timeout, procs=processes or 1)
            res["rss_mib"] = workers.rss().get("max_proc_mib")
        finally:
            workers.stop()
        res["fill"] = fill
        return res

    # -- steps
    def idle(self) -> dict[str, Any]:
        env = self.env(self.fresh())
        r0 = self.snap()  # Redis alone first: its own housekeeping (cron, AOF)
        time.sleep(self.s.idle_seconds)
        alone = (self.snap().cpu - r0.cpu) / (time.time() - r0.t) * 1e6
        workers = self.workers(self.s.concurrency, env)
        try:
            workers.start()
            deadline = time.monotonic() + 60
            while not self.r.call("ZCARD", "asynq:servers"):  # written once it is up
                workers.check_alive()
                if time.monotonic() > deadline:
                    raise PhaseError("the worker registered no server state in 60s")
                time.sleep(0.1)
            time.sleep(1.0)  # let its start-up writes pass
            a = self.snap()
            time.sleep(self.s.idle_seconds)
            b = self.snap()
        finally:
            workers.stop()
        seconds = b.t - a.t
        total = self.cost(a, b, 1)
        self.idle_us = total["cpu_us_per_task"] / seconds
        return {
            "seconds": seconds,
            "redis_alone_cpu_us_per_s": alone,
            "cpu_us_per_s": self.idle_us,
            "cmds_per_s": total["cmds_per_task"] / seconds,
            "top": [(k, v / seconds) for k, v in total["top"]],
        }

    def backlog(self, size: int) -> dict[str, Any]:
        s = self.s
        # Enough beyond the window that the queue is never empty while it is read: the
        # window closes on a count the handlers write every 50 ms, ~1,000 tasks late.
        total = max(size, s.warmup + s.n + max(2000, s.n // 2))
        timeout = 60 + (s.warmup + s.n) / 500
        return self.drain(
            "noop", total=total, warm=s.warmup, n=s.n, concurrency=s.concurrency, timeout=timeout
        )

    def inflight(self, concurrency: int) -> dict[str, Any]:
        s = self.s
        warm, n = 2 * concurrency, s.rounds * concurrency
        bound = concurrency / s.hold
        res = self.drain(
            "hold",
            total=warm + n + 2 * concurrency,
            warm=warm,
            n=n,
            concurrency=concurrency,
            timeout=60 + 3 * (warm + n) / bound,
        )
        res["bound"] = bound
        if self.idle_us is not None:  # what is left after the idle floor's share per task
            res["net_cpu_us_per_task"] = (
                res["redis"]["cpu_us_per_task"] - self.idle_us / res["rate"]
            )
        return res

    def cpu(self, processes: int) -> dict[str, Any]:
        s = self.s
        warm = max(50, s.cpu_n // 10)
        timeout = 60 + 3 * (warm + s.cpu_n) * self.cpu_task_ms / 1000
        # slack: the window opens only once every process is busy, maybe 1 s late
        total = warm + s.cpu_n + 2000 + 4 * s.concurrency * processes
        return self.drain(
            "cpu",
            total=total,
            warm=warm,
            n=s.cpu_n,
            concurrency=s.concurrency,
            timeout=timeout,
            processes=processes,
        )

    def step(self, where: dict[str, Any], key: str, fn: Callable[..., Any], *args: Any) -> None:
        """One measurement; a failure or timeout becomes {"na": reason} and the run goes on."""
        t, load0 = time.monotonic(), os.getloadavg()[0]
        try:
            where[key] = fn(*args)
        except PhaseError as exc:
            where[key] = {"na": str(exc)}
        where[key]["load"] = [load0, os.getloadavg()[0]]
        log(f"{key}: {json.dumps(where[key], default=str)[:300]} ({time.monotonic() - t:.1f}s)")

    def run_all(self, results: dict[str, Any]) -> None:
        s = self.s
        for name in s.steps:
            log(f"--- {name}")
            if name == "idle":
                self.step(results, "idle", self.idle)
            elif name == "backlog":
                bl = results.setdefault("backlog", {})
                self.step(bl, "small", self.backlog, 0)
                self.step(bl, "large", self.backlog, s.backlog)
            elif name == "inflight":
                for c in s.inflight:
                    self.step(results.setdefault("inflight", {}), str(c), self.inflight, c)
            elif name == "cpu":
                for p in s.processes:
                    self.step(results.setdefault("cpu", {}), str(p), self.cpu, p)


# ---------------------------------------------------------------------------- report


def _g(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _cell(node: Any, *path: str, fmt: Callable[[float], str] = _f1) -> str:
    v = _g(node, *path)
    return "n/a" if v is None else fmt(v)


def _na(node: Any) -> str | None:
    return f"n/a ({node['na']})" if isinstance(node, dict) and "na" in node else None


def _load(node: Any) -> str:
    load = _g(node, "load")
    return f"{load[0]:.1f} → {load[1]:.1f}" if load else "n/a"


def _ratio_row(label: str, a: Any, b: Any, cols: list[tuple[str, ...] | None]) -> list[str]:
    """b ÷ a per column; None is a column left blank."""
    row = [label]
    for path in cols:
        if path is None:
            row.append("")
            continue
        x, y = _g(a, *path), _g(b, *path)
        row.append(_ratio(y / x) if x and y is not None else "n/a")
    return row


def _top(node: Any) -> str:
    top = _g(node, "redis", "top") or []
    return ", ".join(f"{k} {v:.2f}" for k, v in top[:8]) or "n/a"


def _per_call_ratios(a: dict[str, Any], b: dict[str, Any]) -> str:
    """b ÷ a of commandstats' µs per call, for the commands run about once a task or more
    (inside the scripts too), largest first."""
    ua, ub = a["redis"]["usec_per_call"], b["redis"]["usec_per_call"]
    per_task = dict(b["redis"]["top"])
    pairs = [
        (k, ub[k] / ua[k])
        for k in ub
        if k in ua and ua[k] > 0 and per_task.get(k, 0) >= 0.5 and k != "llen"
    ]
    pairs.sort(key=lambda kv: -kv[1])
    return ", ".join(f"{k} {r:.2f}×" for k, r in pairs) or "n/a"


def _verdict(r: float | None) -> str:
    if r is None:
        return "n/a"
    return "flat" if r <= FLAT else f"grows {r:.2f}×"


def _header(
    results: dict[str, Any], s: ScaleSettings, extra: dict[str, Any], machine: dict[str, Any]
) -> list[str]:
    parts = [
        f"# pyasynq at scale {extra['stamp']}{' (quick)' if s.quick else ''}",
        "",
        f"Machine: {machine.get('nproc')} CPUs ({machine.get('cpu')}), "
        f"{machine.get('mem_gib')} GiB, Linux {machine.get('kernel')}; Redis "
        f"{machine.get('redis')} (AOF, appendfsync everysec, flushed and rewritten before "
        f"each step); Python {machine.get('python')}; pyasynq "
        f"{machine.get('versions', {}).get('pyasynq', '?')} "
        f"({extra['tree']}). "
        f"Load average (1 min) {extra['load'][0]:.2f} at the start, {extra['load'][1]:.2f} "
        f"at the end; the run took {extra['elapsed'] / 60:.1f} min. One worker "
        f"(`pyasynq worker`), concurrency {s.concurrency} unless said otherwise.",
        "",
        "Per-task figures are read over a window of tasks after a warm-up: Redis CPU is "
        "INFO `used_cpu_sys + used_cpu_user`, commands are INFO `commandstats` (commands "
        "run by scripts count, as does the EVALSHA), µs/call is commandstats' usec over "
        "calls in the window, worker CPU is /proc utime + stime of every worker process. "
        "The harness' own INFO and LLEN calls are left out.",
        "",
    ]
    idle = results.get("idle")
    if _na(idle):
        parts += [f"Idle worker: {_na(idle)}.", ""]
    elif idle:
        top = ", ".join(f"{k} {v:.1f}" for k, v in idle["top"][:5])
        parts += [
            f"Idle floor: with one worker waiting on an empty queue Redis used "
            f"{_f1(idle['cpu_us_per_s'])} µs of CPU and ran {_f1(idle['cmds_per_s'])} "
            f"commands per second ({top}), over {idle['seconds']:.1f} s; with no client "
            f"at all, {_f1(idle['redis_alone_cpu_us_per_s'])} µs/s (its own cron and AOF). "
            "A step running R tasks/s pays about the floor ÷ R per task on top of the "
            'tasks\' own work; "net of the idle floor" below takes that out.',
            "",
        ]
    return parts


def _backlog_section(results: dict[str, Any]) -> list[str]:
    bl = results.get("backlog", {})
    small, large = bl.get("small"), bl.get("large")
    parts = ["## 1. Backlog: draining no-op tasks from a short and a long pending list", ""]
    rows = []
    for label, node in (("small", small), ("large", large)):
        if node is None:
            continue
        if _na(node):
            rows.append([label, str(_na(node)), *([""] * 8)])
            continue
        rows.append(
            [
                label,
                f"{_int(node['pending'][0])} → {_int(node['pending'][1])}",
                _int(node["tasks"]),
                _int(node["rate"]) + (" (partial)" if "partial" in node else ""),
                _cell(node, "redis", "cpu_us_per_task"),
                _cell(node, "redis", "cmds_per_task", fmt=_f2),
                _cell(node, "redis", "usec_per_call", "evalsha"),
                _cell(node, "redis", "evalsha_usec_per_task"),
                _cell(node, "worker_cpu_us_per_task"),
                _load(node),
            ]
        )
    both = small is not None and large is not None and not _na(small) and not _na(large)
    if both:
        cols: list[tuple[str, ...] | None] = [
            None,
            None,
            ("rate",),
            ("redis", "cpu_us_per_task"),
            ("redis", "cmds_per_task"),
            ("redis", "usec_per_call", "evalsha"),
            ("redis", "evalsha_usec_per_task"),
            ("worker_cpu_us_per_task",),
            None,
        ]
        rows.append(_ratio_row("large ÷ small", small, large, cols))
    if not rows:
        return []
    parts += [
        _table(
            [
                "backlog",
                "pending at window start → end",
                "tasks measured",
                "drain/s",
                "Redis CPU µs/task",
                "Redis cmds/task",
                "EVALSHA µs/call",
                "EVALSHA µs/task",
                "worker CPU µs/task",
                "load avg",
            ],
            rows,
        ),
        "",
    ]
    if both:
        assert small is not None and large is not None
        r_cpu = large["redis"]["cpu_us_per_task"] / small["redis"]["cpu_us_per_task"]
        r_cmd = large["redis"]["cmds_per_task"] / small["redis"]["cmds_per_task"]
        parts += [
            f"Redis work per task at {_int(large['pending'][0])} pending against "
            f"{_int(small['pending'][0])}: CPU {_verdict(r_cpu)} ({r_cpu:.2f}×), "
            f"commands {_verdict(r_cmd)} ({r_cmd:.2f}×); "
            f"{FLAT:.2f}× or less is read as flat on this noisy machine. Time per call, "
            f"large ÷ small, of the commands a task runs: {_per_call_ratios(small, large)}.",
            "",
        ]
    for label, node in (("small", small), ("large", large)):
        fill = _g(node, "fill")
        if fill:
            parts.append(
                f"- {label}: filled {_int(fill['n'])} tasks in {fill['seconds']:.1f} s "
                f"({_int(fill['rate'])}/s; `Client.enqueue_many`, 1,000 per call, one "
                f"process; Redis {_f1(fill['redis']['cpu_us_per_task'])} µs and "
                f"{_f1(fill['redis']['cmds_per_task'])} commands per enqueued task; "
                f"Redis memory after: {_int(fill['used_memory_mib'])} MiB). "
                f"Commands per drained task: {_top(node)}."
            )
    return [*parts, ""]


def _inflight_section(results: dict[str, Any], s: ScaleSettings) -> list[str]:
    inf = results.get("inflight", {})
    parts = [
        f"## 2. In flight: tasks that each `await asyncio.sleep({s.hold:g})`, "
        f"concurrency {s.inflight[0]:,} vs {s.inflight[1]:,}",
        "",
    ]
    rows = []
    for c, node in inf.items():
        if _na(node):
            rows.append([c, str(_na(node)), *([""] * 10)])
            continue
        rows.append(
            [
                f"{int(c):,}",
                f"{_f1(_g(node, 'active', 'mean') or 0)} ({_int(_g(node, 'active', 'max') or 0)})",
                f"{_int(node['rate'])} of {_int(node['bound'])}"
                + (" (partial)" if "partial" in node else ""),
                _int(node["tasks"]),
                _cell(node, "redis", "cpu_us_per_task"),
                _cell(node, "net_cpu_us_per_task"),
                _cell(node, "redis", "cmds_per_task", fmt=_f2),
                _cell(node, "redis", "usec_per_call", "evalsha"),
                _cell(node, "redis", "evalsha_usec_per_task"),
                _cell(node, "redis", "usec_per_call", "lrem", fmt=_f2),
                _cell(node, "worker_cpu_us_per_task"),
                _load(node),
            ]
        )
    ok = [(c, node) for c, node in inf.items() if not _na(node)]
    if len(ok) == 2:
        cols: list[tuple[str, ...] | None] = [
            None,
            ("rate",),
            None,
            ("redis", "cpu_us_per_task"),
            ("net_cpu_us_per_task",),
            ("redis", "cmds_per_task"),
            ("redis", "usec_per_call", "evalsha"),
            ("redis", "evalsha_usec_per_task"),
            ("redis", "usec_per_call", "lrem"),
            ("worker_cpu_us_per_task",),
            None,
        ]
        label = f"{int(ok[1][0]):,} ÷ {int(ok[0][0]):,}"
        rows.append(_ratio_row(label, ok[0][1], ok[1][1], cols))
    if not rows:
        return []
    parts += [
        _table(
            [
                "concurrency",
                "active list mean (max)",
                "tasks/s of the C ÷ sleep bound",
                "tasks measured",
                "Redis CPU µs/task",
                "net of the idle floor",
                "Redis cmds/task",
                "EVALSHA µs/call",
                "EVALSHA µs/task",
                "LREM µs/call",
                "worker CPU µs/task",
                "load avg",
            ],
            rows,
        ),
        "",
        "The active list's length is LLEN sampled every 0.2 s in the window (tasks "
        "prefetched by the worker are in it too). LREM is the completion script's "
        "removal of the task id from that list; its µs/call is the scan the issue "
        "asks to watch.",
        "",
    ]
    parts += [f"- C = {int(c):,}: commands per task: {_top(node)}." for c, node in ok]
    return [*parts, ""]


def _cpu_section(
    results: dict[str, Any], s: ScaleSettings, extra: dict[str, Any], machine: dict[str, Any]
) -> list[str]:
    cp = results.get("cpu", {})
    if not cp:
        return []
    parts = [
        f"## 3. CPU-bound handlers: `pyasynq worker --processes` on {machine.get('nproc')} cores",
        "",
        f"The handler is a plain `def` (pyasynq runs it on one of the worker's "
        f"{s.concurrency} threads per process, holding the GIL): {_int(extra['cpu_loops'])} "
        f"loops of integer arithmetic, {extra['cpu_task_ms']:.2f} ms of CPU when calibrated "
        "in the orchestrator. Redis and the harness need CPU on the same cores. The bound "
        "is min(processes, cores) ÷ that CPU time; cores used is tasks/s × worker CPU per "
        'task; the machine\'s busy cores are from /proc/stat, and "not ours" is what is '
        "left after the workers, Redis and the orchestrator: other work on the machine.",
        "",
    ]
    cores = machine.get("nproc") or os.cpu_count() or 1
    rows = []
    first = next((node["rate"] for node in cp.values() if not _na(node)), None)
    for p, node in cp.items():
        if _na(node) or first is None:
            rows.append([p, str(_na(node)), *([""] * 7)])
            continue
        bound = min(int(p), cores) * 1000 / extra["cpu_task_ms"]
        rows.append(
            [
                p,
                f"{_int(node['rate'])} of {_int(bound)}"
                + (" (partial)" if "partial" in node else ""),
                f"{node['rate'] / first:.2f}×",
                _int(node["tasks"]),
                _cell(node, "worker_cpu_us_per_task"),
                _f2(node["rate"] * node["worker_cpu_us_per_task"] / 1e6),
                f"{_cell(node, 'machine_busy_cores', fmt=_f2)} "
                f"({_cell(node, 'others_busy_cores', fmt=_f2)})",
                _cell(node, "redis", "cpu_us_per_task"),
                _load(node),
            ]
        )
    parts += [
        _table(
            [
                "--processes",
                "tasks/s of the bound",
                "speed-up",
                "tasks measured",
                "worker CPU µs/task (all processes)",
                "cores used by the workers",
                "cores busy, whole machine (not ours)",
                "Redis CPU µs/task",
                "load avg",
            ],
            rows,
        ),
        "",
    ]
    return parts


def render(
    results: dict[str, Any], s: ScaleSettings, extra: dict[str, Any], machine: dict[str, Any]
) -> str:
    return "\n".join(
        [
            *_header(results, s, extra, machine),
            *_backlog_section(results),
            *_inflight_section(results, s),
            *_cpu_section(results, s, extra, machine),
        ]
    )


# ---------------------------------------------------------------------------- main


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> ScaleSettings:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smaller run, under 3 minutes")
    p.add_argument("--backlog", type=int, help="the large backlog (1,000,000; quick 200,000)")
    p.add_argument("--n", type=int, help="no-op tasks measured per backlog (50,000; quick 10,000)")
    p.add_argument("--warmup", type=int, help="warm-up no-op tasks (2,000; quick 1,000)")
    p.add_argument("--concurrency", "-c", type=int, default=32, help="worker concurrency (32)")
    p.add_argument("--inflight", default="32,1000", help="the two in-flight concurrencies")
    p.add_argument("--hold", type=float, default=0.5, help="seconds an in-flight task sleeps")
    p.add_argument(
        "--rounds",
        type=int,
        help="in-flight tasks measured = rounds × concurrency (20; quick 8)",
    )
    p.add_argument("--cpu-ms", type=float, default=2.0, help="CPU per CPU-bound task (2 ms)")
    p.add_argument("--cpu-n", type=int, help="CPU-bound tasks measured (5,000; quick 1,500)")
    p.add_argument("--processes", default="1,2", help="worker --processes to compare")
    p.add_argument("--idle-seconds", type=float, help="idle floor reading (10 s; quick 4 s)")
    p.add_argument("--steps", default="idle,backlog,inflight,cpu", help="subset, in order")
    p.add_argument(
        "--python",
        help="interpreter with pyasynq installed, instead of benchmarks/.venv-peers/main",
    )
    p.add_argument(
        "--src",
        help="import pyasynq from this directory (e.g. an older tree from `git archive`) "
        "instead of the working tree, to compare",
    )
    p.add_argument("--out", default=str(harness.BENCH / "results"), help="report directory")
    a = p.parse_args(argv)
    q = a.quick
    steps = [x.strip() for x in a.steps.split(",") if x.strip()]
    unknown = set(steps) - {"idle", "backlog", "inflight", "cpu"}
    if unknown:
        p.error(f"unknown steps {sorted(unknown)}")
    inflight = _ints(a.inflight)
    if len(inflight) != 2:
        p.error("--inflight takes two concurrencies, e.g. 32,1000")
    return ScaleSettings(
        backlog=a.backlog or (200_000 if q else 1_000_000),
        n=a.n or (10_000 if q else 50_000),
        warmup=a.warmup if a.warmup is not None else (1_000 if q else 2_000),
        concurrency=a.concurrency,
        inflight=inflight,
        hold=a.hold,
        rounds=a.rounds or (8 if q else 20),
        cpu_ms=a.cpu_ms,
        cpu_n=a.cpu_n or (1_500 if q else 5_000),
        processes=_ints(a.processes),
        idle_seconds=a.idle_seconds or (4.0 if q else 10.0),
        steps=steps,
        quick=q,
        python=a.python,
        src=os.path.abspath(a.src) if a.src else None,
        out=Path(a.out),
    )


def main(argv: list[str] | None = None) -> int:
    s = parse_args(argv)
    signal.signal(signal.SIGTERM, harness._on_signal)
    signal.signal(signal.SIGHUP, harness._on_signal)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    s.out.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="pyasynq-scale-logs-"))
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # see run.py
    work = Path(tempfile.mkdtemp(prefix="pyasynq-scale-", dir=shm))
    results: dict[str, Any] = {}
    extra: dict[str, Any] = {
        "stamp": stamp,
        "load": [os.getloadavg()[0], 0.0],
        "tree": f"from {s.src}" if s.src else tree_state(),
    }
    machine: dict[str, Any] = {}
    redis = None
    started = time.monotonic()
    try:
        python = s.python or harness.ensure_venv(
            "main", harness.BENCH / "requirements-peers.txt", True, logs / "pip.log"
        )
        redis = harness.EmbeddedRedis(persistent=True).start()
        log(f"private redis-server at {redis.url}; logs in {logs}")
        sc = Scale(s, python, redis, work, logs)
        extra.update(cpu_loops=sc.cpu_loops, cpu_task_ms=sc.cpu_task_ms)
        redis_version = sc.r.info("server").get("redis_version", "?")
        sc.run_all(results)
        with contextlib.suppress(Exception):
            sc.bench.flush()  # a million keys less before Redis stops
        machine = harness.machine_info(redis_version, {"main": python})
    finally:
        harness.kill_all()
        if redis is not None:
            redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    extra["load"][1] = os.getloadavg()[0]
    extra["elapsed"] = time.monotonic() - started
    report = render(results, s, extra, machine)
    payload = {"machine": machine, "run": extra, "results": results}
    harness.save_report(s.out / f"scale-{stamp}", report, s, payload, logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
