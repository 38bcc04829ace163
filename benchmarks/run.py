"""Benchmark pyasynq against its peers on one private Redis, with the same workloads.

    python -m benchmarks.run [--quick] [--systems pyasynq,celery,...] [--go-bin DIR]

The orchestrator uses the standard library only. It creates the peers' venvs under
benchmarks/.venv-peers/ (from benchmarks/requirements-peers*.txt; pyasynq goes in
editable), starts one redis-server (AOF on, appendfsync everysec) on a free loopback port,
and for each system runs, in order:

1. enqueue/s, single calls (a warm-up first, not timed);
2. enqueue/s, batch (the system's batch API, else concurrency; what it is is reported);
3. drain/s of N no-op tasks: W + N tasks are enqueued, a worker starts against that
   backlog, and the clock runs from the W-th completion to the last; Redis INFO and the
   worker's CPU time are read when the W-th task is seen done and at the end;
4. the same with tasks that sleep 1 ms;
5. enqueue-to-start latency on an idle worker, one task at a time.
Each of 3-5 has a worker of its own. Worker RSS is the peak (VmHWM from /proc) of its
largest process over those steps. Redis is flushed before every step. Every step has a timeout
and every child runs in its own session, killed as a group when the step ends.

The report (markdown) goes to stdout and benchmarks/results/<timestamp>.md, the raw numbers
to <timestamp>.json beside it. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
VENVS = BENCH / ".venv-peers"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _go, _report  # noqa: E402
from benchmarks._resp import Resp, command_calls  # noqa: E402
from benchmarks.systems import SYSTEMS, SystemInfo  # noqa: E402

# pyasynq.embedded is stdlib-only; load it by path so the orchestrator needs no venv.
_spec = importlib.util.spec_from_file_location("_bench_embedded", ROOT / "src/pyasynq/embedded.py")
assert _spec and _spec.loader
_embedded = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _embedded  # its dataclasses look their module up there
_spec.loader.exec_module(_embedded)
EmbeddedRedis = _embedded.EmbeddedRedis

CLK_TCK = os.sysconf("SC_CLK_TCK")
PEER_DISTS = [
    "pyasynq",
    "celery",
    "kombu",
    "rq",
    "arq",
    "dramatiq",
    "saq",
    "taskiq",
    "taskiq-redis",
    "streaq",
    "coredis",
    "huey",
    "redis",
    "hiredis",
    "uvloop",
    "protobuf",
]


class PhaseError(Exception):
    """A step failed or timed out: its metric becomes "n/a (reason)"."""


@dataclass
class Settings:
    n: int
    warmup: int
    batch: int
    lat_samples: int
    lat_max_seconds: float
    concurrency: int
    processes: int
    drain_timeout: float
    step_timeout: float
    systems: list[str]
    go_bin: str | None
    quick: bool
    profile: list[str]
    pythons: dict[str, str]
    out: Path


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- processes

_live: list[subprocess.Popen[Any]] = []  # every child we started; killed on any exit


def _kill_group(p: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, sig)


def _kill_session(sid: int) -> None:
    for pid in session_pids({sid}):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def kill_all() -> None:
    for p in list(_live):
        _kill_group(p)
        _kill_session(p.pid)
        with contextlib.suppress(Exception):
            p.wait(5)
    _live.clear()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    return data[data.rindex(")") + 2 :].split()  # fields from "state" (3rd) on


def session_pids(sids: set[int]) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[3]) in sids and fields[0] != "Z":
                out.append(int(entry))
    return out


def cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK if fields else 0.0


def mem_kib(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) in KiB."""
    hwm = rss = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return hwm, rss


class Workers:
    """P copies of one system's worker command, each in its own session."""

    def __init__(
        self,
        python: str,
        system: str,
        url: str,
        s: Settings,
        *,
        env: dict[str, str],
        log_path: Path,
    ) -> None:
        self.argv = [
            python,
            "-m",
            "benchmarks._driver",
            system,
            "worker",
            "--url",
            url,
            "--concurrency",
            str(s.concurrency),
        ]
        self.processes = s.processes
        self.env = env
        self.log_path = log_path
        self.procs: list[subprocess.Popen[bytes]] = []
        self.hwm: dict[int, int] = {}
        self.peak_total = 0
        self._stop = threading.Event()
        self._pids: list[int] = []
        self._pids_at = -1e9
        self._sampler: threading.Thread | None = None

    def start(self) -> None:
        logf = open(self.log_path, "ab")  # noqa: SIM115 - closed with the processes
        for _ in range(self.processes):
            p = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.procs.append(p)
            _live.append(p)
        logf.close()
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)
        self._sampler.start()

    @property
    def sids(self) -> set[int]:
        return {p.pid for p in self.procs}

    def pids(self, max_age: float = 0.0) -> list[int]:
        """The live processes of the workers' sessions; a scan of /proc costs a few ms,
        so callers in a loop accept one up to ``max_age`` seconds old."""
        now = time.monotonic()
        if now - self._pids_at > max_age:
            self._pids, self._pids_at = session_pids(self.sids), now
        return self._pids

    def _sample(self) -> None:
        total = 0
        for pid in self.pids(max_age=0.2):
            hwm, rss = mem_kib(pid)
            self.hwm[pid] = max(self.hwm.get(pid, 0), hwm)
            total += rss
        self.peak_total = max(self.peak_total, total)

    def _sample_loop(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids(max_age=0.5))

    def signal(self, sig: int) -> None:
        for p in self.procs:
            _kill_group(p, sig)

    def check_alive(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise PhaseError(f"worker exited with status {p.returncode}: {self.log_tail()}")

    def log_tail(self, n: int = 400) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip()
        except OSError:
            return ""
        return " ".join(text[-n:].split())

    def rss(self) -> dict[str, Any]:
        self._sample()
        if not self.hwm or not max(self.hwm.values()):
            return {}
        return {
            "max_proc_mib": max(self.hwm.values()) / 1024,
            "total_mib": self.peak_total / 1024,
            "procs": len(self.hwm),
        }

    def stop(self, grace: float = 10.0) -> None:
        self._stop.set()
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))
        for p in self.procs:
            _kill_group(p)
            _kill_session(p.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
            if p in _live:
                _live.remove(p)


# ---------------------------------------------------------------------------- the bench


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()


def ensure_venv(name: str, requirements: Path, editable: bool, log_path: Path) -> str:
    """The venv's python, (re)built when its requirements changed; raises PhaseError."""
    vdir = VENVS / name
    python = vdir / "bin" / "python"
    stamp = vdir / ".bench-stamp"
    want = _sha(requirements.read_bytes(), str(editable).encode(), sys.version.encode())
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return str(python)
    log(f"creating {vdir.relative_to(ROOT)} from {requirements.name} (a few minutes at most)")
    base = getattr(sys, "_base_executable", sys.executable)
    cmds = [
        [base, "-m", "venv", "--clear", str(vdir)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            str(requirements),
            *(["-e", f"{ROOT}[hiredis]"] if editable else []),
        ],
    ]
    with open(log_path, "ab") as logf:
        for cmd in cmds:
            try:
                subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, timeout=900, check=True)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise PhaseError(
                    f"installing {requirements.name} failed ({exc}); see {log_path}"
                ) from exc
    stamp.write_text(want)
    return str(python)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


class Bench:
    def __init__(self, s: Settings, redis: Any, work: Path, logs: Path) -> None:
        self.s = s
        self.url = redis.url
        self.r = Resp("127.0.0.1", redis.port)
        self.work = work
        self.logs = logs
        self.profiles: list[str] = []

    # -- redis
    def snap(self) -> tuple[dict[str, int], float]:
        calls = command_calls(self.r.info("commandstats"))
        cpu = self.r.info("cpu")
        return calls, float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])

    @staticmethod
    def redis_cost(
        a: tuple[dict[str, int], float], b: tuple[dict[str, int], float], tasks: int
    ) -> dict[str, Any]:
        # INFO is the orchestrator's own; it is left out of the count.
        calls = {k: v - a[0].get(k, 0) for k, v in b[0].items() if k != "info"}
        calls = {k: v for k, v in calls.items() if v > 0}
        return {
            "cmds_per_task": sum(calls.values()) / tasks,
            "cpu_us_per_task": (b[1] - a[1]) / tasks * 1e6,
            "top": sorted(((k, v / tasks) for k, v in calls.items()), key=lambda kv: -kv[1]),
        }

    def flush(self) -> None:
        self.r.call("FLUSHALL")

    def compact_aof(self) -> None:
        """Rewrite the AOF between systems so no rewrite fires inside a measurement."""
        with contextlib.suppress(Exception):
            self.r.call("BGREWRITEAOF")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            p = self.r.info("persistence")
            if p.get("aof_rewrite_in_progress") == "0" and p.get("aof_rewrite_scheduled") == "0":
                return
            time.sleep(0.1)

    # -- children
    def env(self, bench_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
        env.update(
            BENCH_DIR=str(bench_dir),
            BENCH_REDIS_URL=self.url,
            BENCH_CONCURRENCY=str(self.s.concurrency),
            PYTHONPATH=str(ROOT),
            PYTHONDONTWRITEBYTECODE="1",
        )
        if self.s.go_bin:
            env["BENCH_GO_BIN"] = self.s.go_bin
        return env

    def driver(
        self, python: str, system: str, env: dict[str, str], args: list[str], timeout: float
    ) -> dict[str, Any]:
        cmd = [python, "-m", "benchmarks._driver", system, *args, "--url", self.url]
        p = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        _live.append(p)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(p)
            out, err = p.communicate()
            raise PhaseError(f"{args[0]} timed out after {timeout:.0f}s") from None
        finally:
            _kill_group(p)
            _live.remove(p)
        with open(self.logs / f"{system}.log", "a") as f:
            f.write(f"$ {' '.join(cmd)}\n{err}")
        if p.returncode != 0 or not out.strip():
            tail = " ".join(err.strip().splitlines()[-3:])[-400:]
            raise PhaseError(f"{args[0]} failed (status {p.returncode}): {tail}")
        return dict(json.loads(out.strip().splitlines()[-1]))

    # -- phases
    def enqueue_phase(self, python: str, name: str, env: dict[str, str], mode: str) -> Any:
        self.flush()
        s, before = self.s, self.snap()
        res = self.driver(
            python,
            name,
            env,
            [
                "enqueue",
                "--mode",
                mode,
                "--n",
                str(s.n),
                "--warmup",
                str(s.warmup),
                "--batch",
                str(s.batch),
            ],
            s.step_timeout,
        )
        if "na" in res:
            return res
        sent = s.n + (s.warmup if mode == "single" else max(1, s.warmup // s.batch) * s.batch)
        res["redis"] = self.redis_cost(before, self.snap(), sent)
        return res

    def counts(self, bench_dir: Path) -> int:
        total = 0
        with contextlib.suppress(FileNotFoundError):
            for f in (bench_dir / "counts").iterdir():
                if f.name.startswith("."):  # a file being written
                    continue
                with contextlib.suppress(OSError, ValueError):
                    total += int(f.read_text() or 0)
        return total

    def wait_count(self, workers: Workers, bench_dir: Path, target: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            n = self.counts(bench_dir)
            if n >= target:
                return n
            workers.check_alive()
            if time.monotonic() > deadline:
                return n
            time.sleep(0.05)

    def times(self, bench_dir: Path, expected: int) -> list[float]:
        import array

        (bench_dir / "dump").touch()
        deadline = time.monotonic() + 15
        try:
            while True:
                out = array.array("d")
                with contextlib.suppress(FileNotFoundError):
                    for f in (bench_dir / "times").iterdir():
                        if not f.name.startswith("."):
                            with contextlib.suppress(OSError, ValueError):
                                out.frombytes(f.read_bytes())
                if len(out) >= expected or time.monotonic() > deadline:
                    return sorted(out)
                time.sleep(0.05)
        finally:
            (bench_dir / "dump").unlink()

    def new_bench_dir(self, name: str) -> Path:
        d = self.work / f"{name}-{len(list(self.work.iterdir()))}"
        d.mkdir(parents=True)
        return d

    def drain_phase(  # noqa: PLR0915 - one measurement, read top to bottom
        self, python: str, name: str, kind: str, rss: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """W + N tasks are enqueued, then a worker starts against that backlog. The rate
        runs from the W-th completion to the last; the Redis and worker-CPU window opens
        at the first look after the W-th completion (the tasks it covers are counted
        from the exact completion times)."""
        s = self.s
        bench_dir = self.new_bench_dir(name)
        env = self.env(bench_dir)
        self.flush()
        total = s.warmup + s.n
        self.driver(
            python, name, env, ["prefill", "--kind", kind, "--n", str(total)], s.step_timeout
        )
        workers = Workers(
            python, name, self.url, s, env=env, log_path=self.logs / f"{name}-worker.log"
        )
        profiler = None
        at_start = self.snap()
        # (time, Redis, worker CPU) every 25 ms until the W-th completion has surely passed
        readings: collections.deque[tuple[float, tuple[dict[str, int], float], float]]
        readings = collections.deque(maxlen=80)
        try:
            workers.start()
            deadline = time.monotonic() + s.drain_timeout
            warm = False
            while True:
                got = self.counts(bench_dir)
                if got and not warm:
                    readings.append((time.time(), self.snap(), workers.cpu()))
                    if got >= s.warmup:
                        warm = True
                        profiler = self.start_profiler(name, kind, workers)
                if got >= total or time.monotonic() > deadline:
                    break
                workers.check_alive()
                time.sleep(0.025)
            closed = (self.snap(), workers.cpu())
            self.stop_profiler(profiler)
            profiler = None
            every = self.times(bench_dir, got)
            rss.append(workers.rss())
        finally:
            self.stop_profiler(profiler)
            workers.stop()
        if len(every) <= s.warmup:
            raise PhaseError(
                f"only {len(every)} of {total} {kind} tasks ran in {s.drain_timeout:.0f}s"
            )
        n = len(every) - s.warmup
        t_w = every[s.warmup - 1] if s.warmup else every[0]
        res: dict[str, Any] = {"n": n, "seconds": every[-1] - t_w, "rate": n / (every[-1] - t_w)}
        if len(every) < total:
            res["partial"] = f"{n}/{s.n} done in {s.drain_timeout:.0f}s"
        opened = next((r for r in readings if r[0] > t_w), None)
        in_window = sum(1 for t in every if t > opened[0]) if opened else 0
        if opened and in_window >= max(1, s.n // 10):
            res["window_tasks"] = in_window
            res["redis"] = self.redis_cost(opened[1], closed[0], in_window)
            res["worker_cpu_us_per_task"] = (closed[1] - opened[2]) / in_window * 1e6
        else:  # too fast to look in between: the whole run, worker start-up included
            res["window_tasks"] = len(every)
            res["window"] = "whole run, worker start-up included"
            res["redis"] = self.redis_cost(at_start, closed[0], len(every))
            res["worker_cpu_us_per_task"] = closed[1] / len(every) * 1e6
        return res

    def latency_phase(self, python: str, name: str, rss: list[dict[str, Any]]) -> dict[str, Any]:
        s = self.s
        bench_dir = self.new_bench_dir(name)
        env = self.env(bench_dir)
        self.flush()
        workers = Workers(
            python, name, self.url, s, env=env, log_path=self.logs / f"{name}-worker.log"
        )
        try:
            workers.start()
            res = self.driver(
                python,
                name,
                env,
                [
                    "latency",
                    "--samples",
                    str(s.lat_samples),
                    "--warmup",
                    "5",
                    "--max-seconds",
                    str(s.lat_max_seconds),
                ],
                s.step_timeout + s.lat_max_seconds + 60,
            )
            rss.append(workers.rss())
        finally:
            workers.stop()
        ms = res.pop("samples_ms")
        if not ms:
            raise PhaseError(f"no latency sample ({res.get('lost')} lost)")
        res.update(
            samples=len(ms),
            p50_ms=percentile(ms, 50),
            p99_ms=percentile(ms, 99),
            mean_ms=sum(ms) / len(ms),
            max_ms=max(ms),
        )
        return res

    # -- profiling (optional): py-spy on the worker during the drains
    def start_profiler(self, name: str, kind: str, workers: Workers) -> Any:
        if name not in self.s.profile:
            return None
        spy = shutil.which("py-spy", path=str(VENVS / "main" / "bin"))
        if not spy:
            log("py-spy not found in the main peers venv; no profile")
            return None
        pid = max(workers.pids(), key=lambda p: mem_kib(p)[1])  # the busiest-looking process
        out = BENCH / "profiles" / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}-{kind}.txt"
        out.parent.mkdir(exist_ok=True)
        p = subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                str(pid),
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _live.append(p)
        return p, out

    def stop_profiler(self, prof: Any) -> None:
        if prof is None:
            return
        p, out = prof
        _kill_group(p, signal.SIGINT)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            _kill_group(p)
        _live.remove(p)
        log(f"profile: {out.relative_to(ROOT)}")
        self.profiles.append(str(out))

    # -- one system
    def run_system(self, info: SystemInfo, python: str) -> dict[str, Any]:
        s, name = self.s, info.name
        env = self.env(self.new_bench_dir(name))
        out: dict[str, Any] = {}
        rss: list[dict[str, Any]] = []
        budget_end = time.monotonic() + (400 if s.quick else 1200)

        def step(key: str, fn: Any, *args: Any) -> None:
            if time.monotonic() > budget_end:
                out[key] = {"na": "the system's time budget was used up"}
                return
            t = time.monotonic()
            try:
                out[key] = fn(*args)
            except PhaseError as exc:
                out[key] = {"na": str(exc)}
            log(f"{name}: {key} {_report.brief(out[key])} ({time.monotonic() - t:.1f}s)")

        step("enqueue_single", self.enqueue_phase, python, name, env, "single")
        step("enqueue_batch", self.enqueue_phase, python, name, env, "batch")
        step("drain_noop", self.drain_phase, python, name, "noop", rss)
        step("drain_sleep", self.drain_phase, python, name, "sleep", rss)
        if info.io:
            step("drain_io", self.drain_phase, python, name, "io", rss)
        else:
            out["drain_io"] = {"na": "no Redis I/O handler in its adapter"}
        if info.io_lent:
            step("drain_io_lent", self.drain_phase, python, name, "io-lent", rss)
        else:
            out["drain_io_lent"] = {"na": "no client lent to handlers"}
        step("latency", self.latency_phase, python, name, rss)
        rss = [r for r in rss if r]
        if rss:
            out["rss"] = max(rss, key=lambda r: r["max_proc_mib"])
        else:
            out["rss"] = {"na": "no worker ran"}
        self.flush()
        return out


# ---------------------------------------------------------------------------- machine


def machine_info(redis_version: str, pythons: dict[str, str]) -> dict[str, Any]:
    def read(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in read("/proc/cpuinfo").splitlines()
            if ln.startswith("model name")
        ),
        "unknown",
    )
    mem = next(
        (
            int(ln.split()[1])
            for ln in read("/proc/meminfo").splitlines()
            if ln.startswith("MemTotal")
        ),
        0,
    )
    versions: dict[str, str] = {}
    py_version = ""
    for python in pythons.values():
        code = (
            "import importlib.metadata as m, json, sys\nout = {'python': sys.version.split()[0]}\n"
            f"for d in {PEER_DISTS!r}:\n    try: out[d] = m.version(d)\n"
            "    except m.PackageNotFoundError: pass\nprint(json.dumps(out))"
        )
        with contextlib.suppress(Exception):
            found = json.loads(
                subprocess.run(
                    [python, "-c", code], capture_output=True, text=True, timeout=60, check=False
                ).stdout
            )
            py_version = found.pop("python")
            for k, v in found.items():
                if k in versions and versions[k] != v:
                    versions[k] = f"{versions[k]} / {v}"
                else:
                    versions.setdefault(k, v)
    return {
        "nproc": os.cpu_count(),
        "mem_gib": round(mem / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": os.uname().release,
        "redis": redis_version,
        "python": py_version,
        "versions": versions,
    }


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> Settings:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small run: N=2,000, fewer samples")
    p.add_argument("--n", type=int, help="tasks per throughput step (default 20,000; quick 2,000)")
    p.add_argument("--warmup", type=int, help="warm-up tasks per step (default 1,000; quick 200)")
    p.add_argument("--batch", type=int, default=1000, help="tasks per batch call (default 1,000)")
    p.add_argument("--samples", type=int, help="latency samples (default 1,000; quick 200)")
    p.add_argument(
        "--latency-seconds",
        type=float,
        help="cap on the latency step per system (default 30; quick 10)",
    )
    p.add_argument(
        "--concurrency",
        "-c",
        type=int,
        default=32,
        help="tasks in flight per worker process, every system (default 32)",
    )
    p.add_argument(
        "--processes", "-p", type=int, default=1, help="worker processes per system (default 1)"
    )
    p.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help="comma-separated subset, in this order (default: all)",
    )
    p.add_argument(
        "--go-bin",
        help="directory with prebuilt Go asynq bench binaries `client` and `worker`; by "
        "default they are built from benchmarks/go with the Go on this machine (Go asynq "
        "is reported n/a when there is none)",
    )
    p.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="VENV=PATH",
        help="use this interpreter for venv 'main' or 'redis5' instead of "
        "creating it (e.g. main=.venv/bin/python to run pyasynq alone)",
    )
    p.add_argument(
        "--out",
        default=str(BENCH / "results"),
        help="directory for the report (default benchmarks/results)",
    )
    p.add_argument(
        "--profile",
        default="",
        help="comma-separated systems to profile with py-spy during the drains "
        "(the profiled numbers are then not clean)",
    )
    a = p.parse_args(argv)
    quick = a.quick
    systems = [x.strip() for x in a.systems.split(",") if x.strip()]
    unknown = [x for x in systems if x not in SYSTEMS]
    if unknown:
        p.error(f"unknown systems {unknown}; known: {', '.join(SYSTEMS)}")
    return Settings(
        n=a.n or (2000 if quick else 20000),
        warmup=a.warmup if a.warmup is not None else (200 if quick else 1000),
        batch=a.batch,
        lat_samples=a.samples or (200 if quick else 1000),
        lat_max_seconds=a.latency_seconds or (10.0 if quick else 30.0),
        concurrency=a.concurrency,
        processes=a.processes,
        drain_timeout=120.0 if quick else 180.0,
        step_timeout=120.0 if quick else 300.0,
        systems=systems,
        go_bin=os.path.abspath(a.go_bin) if a.go_bin else None,
        quick=quick,
        profile=[x.strip() for x in a.profile.split(",") if x.strip()],
        pythons=dict(x.split("=", 1) for x in a.python),
        out=Path(a.out),
    )


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915
    s = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    results_dir = s.out
    results_dir.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="pyasynq-bench-logs-"))
    # Handlers' recorder files and the latency socket live on tmpfs: a write there costs
    # ~30 µs, on this disk ~300 µs, and it happens inside the measured worker.
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    work = Path(tempfile.mkdtemp(prefix="pyasynq-bench-", dir=shm))
    results: dict[str, Any] = {}
    pythons: dict[str, str] = {}
    venv_errors: dict[str, str] = {}
    redis = None
    machine: dict[str, Any] = {}
    profiles: list[str] = []
    started = time.monotonic()
    try:
        VENVS.mkdir(exist_ok=True)
        wanted = {SYSTEMS[x].venv for x in s.systems}
        for venv, req, editable in (
            ("main", "requirements-peers.txt", True),
            ("redis5", "requirements-peers-redis5.txt", False),
        ):
            if venv in s.pythons:
                pythons[venv] = s.pythons[venv]
            elif venv in wanted:
                try:
                    pythons[venv] = ensure_venv(venv, BENCH / req, editable, logs / "pip.log")
                except PhaseError as exc:
                    venv_errors[venv] = str(exc)
        redis = EmbeddedRedis(persistent=True).start()
        log(f"private redis-server at {redis.url} (AOF on, appendfsync everysec); logs in {logs}")
        bench = Bench(s, redis, work, logs)
        redis_version = bench.r.info("server").get("redis_version", "?")
        go_na = ""
        if "asynq-go" in s.systems and not s.go_bin:
            s.go_bin, go_na = _go.build(logs / "go-build.log")
            log(f"Go asynq: {s.go_bin or go_na}")
        for name in s.systems:
            info = SYSTEMS[name]
            if name == "asynq-go" and not s.go_bin:
                results[name] = {"na": go_na or "no Go asynq binaries"}
                continue
            if info.venv not in pythons:
                results[name] = {"na": venv_errors.get(info.venv, "venv missing")}
                continue
            log(f"--- {name}")
            bench.compact_aof()
            load0 = os.getloadavg()[0]
            try:
                results[name] = bench.run_system(info, pythons[info.venv])
                results[name]["load"] = [load0, os.getloadavg()[0]]
            except Exception as exc:  # one system's breakage must not end the run
                log(f"{name}: {exc!r}")
                results[name] = {"na": f"{type(exc).__name__}: {exc}"}
        profiles = bench.profiles
        machine = machine_info(redis_version, pythons)
        if s.go_bin:
            machine["versions"]["asynq-go"] = _go.version()
    finally:
        kill_all()
        if redis is not None:
            redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    report = _report.render(results, s, machine, stamp, time.monotonic() - started)
    if profiles:
        from benchmarks.profile_summary import summarize

        report += "\n## Profiles (py-spy, main thread of the worker; these runs are slowed)\n\n"
        report += "\n\n".join(summarize(Path(p), top=15) for p in profiles) + "\n"
    payload = {"machine": machine, "results": results, "profiles": profiles}
    save_report(results_dir / stamp, report, s, payload, logs)
    return 0


def save_report(
    base: Path, report: str, settings: Any, payload: dict[str, Any], logs: Path
) -> None:
    """Write ``base``.md and ``base``.json (the settings and ``payload``), print the
    report and say where it went."""
    md = base.with_name(base.name + ".md")
    md.write_text(report)
    opts = {k: str(v) if isinstance(v, Path) else v for k, v in settings.__dict__.items()}
    base.with_name(base.name + ".json").write_text(
        json.dumps({"settings": opts, **payload}, indent=1)
    )
    print(report)
    log(f"report: {md}; logs: {logs}")


if __name__ == "__main__":
    sys.exit(main())
