"""Scale-out on Redis Cluster (issue 20, item 4): does adding masters add throughput?

    python -m benchmarks.cluster_scale [--quick] [--n N] [--processes P] [--concurrency C]

Runs in the project's venv. Starts a real 3-master Redis Cluster on loopback (no
replicas, AOF on, appendfsync everysec; tests/topology.py's ClusterTopology), picks three
queue names whose hash slots land on three different masters, and drains no-op tasks with
P worker processes (``python -m pyasynq worker``, C handlers each) in two layouts:

- one master: every process serves one queue, so all the work is on one master;
- three masters: process i serves queue i mod 3, one queue per master.

Each layout is pre-filled through ``Client.enqueue_many`` (not timed), then the workers
start; the window opens once W tasks are done and closes at N more, read from the queues'
all-time ``processed`` counters. In the window it reads ``INFO cpu`` and ``INFO
commandstats`` of every master and /proc CPU of every worker: tasks/s, Redis CPU µs per
task per master, the busiest master's CPU share, the rate per worker process, and the
projection (below). The report goes to stdout and benchmarks/results/cluster-<ts>.md.

Projection: a master saturates at 1e6 / (its Redis CPU µs per task) tasks/s (one core,
Redis runs commands on one thread); a worker process at 1e6 / (its CPU µs per task).
With k masters and enough worker processes (one core each), throughput ≈ k × the
one-master bound. On a 2-core machine the measured rates are bounded by the cores, not
by Redis: that is why the per-task CPU figures, not the rates, carry the argument.
"""

# ruff: noqa: RUF001, RUF002 - the report prints multiplication and micro signs on purpose

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import redis  # noqa: E402
from redis.cluster import RedisCluster  # noqa: E402
from topology import ClusterTopology  # type: ignore[import-not-found]  # noqa: E402

import pyasynq  # noqa: E402
from benchmarks.run import cpu_seconds, log  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def pick_queues(topo: ClusterTopology) -> list[tuple[str, int]]:
    """One queue name per master: (name, port of the master owning its slot)."""
    found: dict[int, str] = {}
    for i in range(1000):
        name = f"q{i}"
        port = topo.master_for_key(f"asynq:{{{name}}}:pending").port
        found.setdefault(port, name)
        if len(found) == len(topo.nodes):
            break
    return [(q, p) for p, q in sorted(found.items())]


def node_costs(ports: list[int]) -> dict[int, tuple[float, int]]:
    """Per master: (CPU seconds, commands executed), our INFO calls excluded."""
    out: dict[int, tuple[float, int]] = {}
    for port in ports:
        c = redis.Redis(port=port)
        cpu = c.info("cpu")
        stats = c.info("commandstats")
        calls = sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info",))
        out[port] = (float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), calls)
        c.close()
    return out


def processed(cluster: RedisCluster, queues: list[str]) -> int:
    return sum(int(cluster.get(f"asynq:{{{q}}}:processed") or 0) for q in queues)


def layout(  # noqa: PLR0917
    name: str,
    url: str,
    cluster: RedisCluster,
    ports: list[int],
    assign: list[str],
    a: argparse.Namespace,
    work: Path,
) -> dict[str, Any]:
    """Drain with one worker process per entry of ``assign`` (its queue)."""
    for port in ports:
        redis.Redis(port=port).flushall()
    queues = sorted(set(assign))
    total = a.warmup + a.n
    with pyasynq.Client(url) as c:
        per = total // len(queues)
        for q in queues:
            left = per + (total - per * len(queues) if q == queues[0] else 0)
            while left:
                k = min(1000, left)
                opts = pyasynq.Options(queue=q)
                for res in c.enqueue_many([(pyasynq.Task("bench:noop"), opts)] * k):
                    if res.error is not None:
                        raise res.error
                left -= k
    env = dict(os.environ, BENCH_DIR=str(work), PYTHONPATH=f"{ROOT / 'src'}:{ROOT}")
    procs: list[subprocess.Popen[bytes]] = []
    log_file = (work / f"{name}-workers.log").open("wb")
    try:
        for q in assign:
            argv = [sys.executable, "-m", "pyasynq", "--redis-url", url, "worker"]
            argv += ["benchmarks.systems.pyasynq:mux", "--concurrency", str(a.concurrency)]
            argv += ["--log-level", "warn", "-q", q]
            procs.append(
                subprocess.Popen(
                    argv, env=env, stdout=log_file, stderr=log_file, start_new_session=True
                )
            )
        deadline = time.monotonic() + a.timeout
        opened: tuple[float, int, dict[int, tuple[float, int]], float] | None = None
        while True:
            done = processed(cluster, queues)
            if opened is None and done >= a.warmup:
                cpu = sum(cpu_seconds(p.pid) for p in procs)
                opened = (time.monotonic(), done, node_costs(ports), cpu)
            if done >= total or time.monotonic() > deadline:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker exited; see {log_file.name}")
            time.sleep(0.05)
        closed_t, costs = time.monotonic(), node_costs(ports)
        worker_cpu = sum(cpu_seconds(p.pid) for p in procs)
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log_file.close()
    if opened is None:
        raise RuntimeError(f"{name}: not even the warm-up finished in {a.timeout}s")
    t0, d0, c0, w0 = opened
    n = done - d0
    secs = closed_t - t0
    masters = []
    for port in ports:
        cpu = costs[port][0] - c0[port][0]
        masters.append(
            {
                "port": port,
                "queues": [q for q in queues if _PORT_OF.get(q) == port],
                "cpu_us_per_task": cpu / n * 1e6,
                "cmds_per_task": (costs[port][1] - c0[port][1]) / n,
                "busy": cpu / secs,  # share of one core
            }
        )
    return {
        "layout": name,
        "processes": len(assign),
        "n": n,
        "seconds": secs,
        "rate": n / secs,
        "rate_per_process": n / secs / len(assign),
        "worker_cpu_us_per_task": (worker_cpu - w0) / n * 1e6,
        "redis_cpu_us_per_task": sum(m["cpu_us_per_task"] for m in masters),
        "masters": masters,
        "partial": done < total,
        "load": Path("/proc/loadavg").read_text().split()[0],
    }


_PORT_OF: dict[str, int] = {}  # queue -> the port of its master


def report(rows: list[dict[str, Any]], a: argparse.Namespace) -> str:
    head = (
        "| layout | worker procs | tasks/s | per process | worker CPU µs/task | Redis CPU µs/task "
        "(all masters) | per master: µs/task, cmds/task, core share | load |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"# Redis Cluster scale-out ({time.strftime('%Y-%m-%d %H:%M')}, "
        f"{'quick' if a.quick else 'full'}; N = {a.n:,}, W = {a.warmup:,}, "
        f"C = {a.concurrency})",
        "",
        head,
    ]
    for r in rows:
        per = "; ".join(
            f"{m['port']} ({','.join(m['queues']) or '-'}): {m['cpu_us_per_task']:.1f}, "
            f"{m['cmds_per_task']:.2f}, {m['busy']:.0%}"
            for m in r["masters"]
        )
        lines.append(
            f"| {r['layout']}{' (partial)' if r['partial'] else ''} | {r['processes']} | "
            f"{r['rate']:,.0f} | {r['rate_per_process']:,.0f} | "
            f"{r['worker_cpu_us_per_task']:.1f} | {r['redis_cpu_us_per_task']:.1f} | {per} | "
            f"{r['load']} |"
        )
    if len(rows) == 2:
        one, three = rows
        busiest = max(m["cpu_us_per_task"] for m in one["masters"])
        spread = max(m["cpu_us_per_task"] for m in three["masters"])
        w = three["worker_cpu_us_per_task"]
        lines += [
            "",
            "Projection (one core per Redis master and per worker process):",
            "",
            f"- one master: Redis spends {busiest:.1f} µs per task on it, so it saturates "
            f"at 1e6 / {busiest:.1f} = {1e6 / busiest:,.0f} tasks/s;",
            f"- three masters: the busiest spends {spread:.1f} µs per task of the whole "
            f"flow, so the cluster saturates at 1e6 / {spread:.1f} = {1e6 / spread:,.0f} "
            f"tasks/s ({busiest / spread:.2f}× one master);",
            f"- a worker process costs {w:.1f} µs of CPU per task: "
            f"1e6 / {w:.1f} = {1e6 / w:,.0f} tasks/s per process on a core of its own, "
            f"so feeding three masters takes about "
            f"{(1e6 / spread) / (1e6 / w):.1f} worker processes.",
            "",
            "Measured rates are bounded by this machine's cores (every Redis and worker "
            "shares them), not by Redis: compare the per-task CPU, not the rates.",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.cluster_scale", description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--n", type=int, help="tasks timed (30,000; quick 6,000)")
    p.add_argument("--warmup", type=int, help="tasks before the window (3,000; quick 1,000)")
    p.add_argument("--processes", type=int, default=3, help="worker processes (3)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds per layout")
    p.add_argument("--out", default=str(RESULTS), help="where the report goes")
    a = p.parse_args(argv)
    a.n = a.n or (6000 if a.quick else 30000)
    a.warmup = a.warmup or (1000 if a.quick else 3000)
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="pyasynq-cluster-bench-") as tmp,
        ClusterTopology(masters=3, replicas=0, appendonly=True) as topo,
    ):
        queues = pick_queues(topo)
        _PORT_OF.update(queues)
        ports = [port for _, port in queues]
        log(f"cluster {topo.url()}; queues per master: {queues}")
        cluster = RedisCluster(host="127.0.0.1", port=ports[0])
        names = [q for q, _ in queues]
        for name, assign in (
            ("one master", [names[0]] * a.processes),
            ("three masters", [names[i % 3] for i in range(a.processes)]),
        ):
            log(f"layout {name}: worker queues {assign}")
            res = layout(name, topo.url(), cluster, ports, assign, a, Path(tmp))
            log(json.dumps(res))
            rows.append(res)
        cluster.close()
    text = report(rows, a)
    print(text)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"cluster-{stamp}.md").write_text(text + "\n")
    (out / f"cluster-{stamp}.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
