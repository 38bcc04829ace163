"""Enqueue rates of pyasynq alone (issue 20, items 1 and 2), one or more source trees.

    python -m benchmarks.enqueue_rates [--quick] [--steps single,concurrent]
                                       [--src DIR ...] [--requests 1000] [--repeat K]

Runs in the project's venv (it imports pyasynq). One private redis-server (AOF on,
appendfsync everysec, as benchmarks/run.py); every measurement is a child process with
``PYTHONPATH`` set to the tree under test, so ``--src /tmp/old/src --src src`` compares
two commits in one run, the trees alternating ``--repeat`` times. Each child flushes
Redis, warms up, and reads ``INFO cpu`` / ``INFO commandstats`` around its timed part:

- single: ``Client.enqueue`` (sync) and ``AsyncClient.enqueue`` awaited one by one:
  enqueue/s, Redis CPU µs and commands per enqueue;
- concurrent: rounds of ``--requests`` coroutines that each enqueue one task at once (a
  web server under load), with ``AsyncClient(coalesce=True)`` and ``coalesce=False``:
  tasks/s over the rounds, p50/p99 of each call's time, Redis CPU and round trips.

The report goes to stdout and benchmarks/results/enqueue-<timestamp>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


# ---------------------------------------------------------------------------- child


def _costs(r: Any) -> tuple[float, dict[str, int]]:
    cpu = r.info("cpu")
    stats = r.info("commandstats")
    calls = {k[len("cmdstat_") :]: int(v["calls"]) for k, v in stats.items()}
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]), calls


def _delta(before: Any, after: Any, n: int) -> dict[str, Any]:
    (c0, k0), (c1, k1) = before, after
    diff = {k: v - k0.get(k, 0) for k, v in k1.items() if v - k0.get(k, 0)}
    diff.pop("info", None)  # our own readings
    top = sorted(diff.items(), key=lambda kv: -kv[1])[:6]
    return {
        "redis_cpu_us_per_task": (c1 - c0) / n * 1e6,
        "redis_cmds_per_task": sum(diff.values()) / n,
        "commands": {k: round(v / n, 3) for k, v in top},
    }


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))]


def child(what: str, url: str, n: int, requests: int, rounds: int) -> dict[str, Any]:  # noqa: PLR0915
    import redis

    import pyasynq

    r = redis.Redis.from_url(url)
    r.flushall()
    task = pyasynq.Task("bench:noop", b"")
    out: dict[str, Any] = {"what": what}
    if what == "sync":
        with pyasynq.Client(url) as c:
            for _ in range(min(n, 500)):
                c.enqueue(task)
            before = _costs(r)
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            for _ in range(n):
                c.enqueue(task)
            seconds = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            out.update(
                _delta(before, _costs(r), n),
                rate=n / seconds,
                n=n,
                client_cpu_us_per_task=cpu / n * 1e6,
            )
        return out

    try:
        import uvloop

        runner: Any = uvloop.run
        out["loop"] = "uvloop"
    except ImportError:
        runner = asyncio.run
        out["loop"] = "asyncio"
    coalesce = what != "concurrent-off"
    has_flag = "coalesce" in inspect.signature(pyasynq.AsyncClient).parameters
    kw: dict[str, Any] = {"coalesce": coalesce} if has_flag else {}
    out["coalesce"] = coalesce if has_flag else "n/a (tree without coalescing)"

    async def main() -> None:
        async with pyasynq.AsyncClient(url, **kw) as c:
            if what == "async":
                for _ in range(min(n, 500)):
                    await c.enqueue(task)
                before = _costs(r)
                cpu0 = time.process_time()
                t0 = time.perf_counter()
                for _ in range(n):
                    await c.enqueue(task)
                seconds = time.perf_counter() - t0
                cpu = time.process_time() - cpu0
                out.update(
                    _delta(before, _costs(r), n),
                    rate=n / seconds,
                    n=n,
                    client_cpu_us_per_task=cpu / n * 1e6,
                )
                return
            lat: list[float] = []

            # One by one, 1,000 calls at once would need 1,000 connections: redis-py's
            # asyncio pool holds 100 and raises beyond. A web app would bound them;
            # so does this, at 64 in flight (the wait counts in each call's time).
            gate = asyncio.Semaphore(64 if not coalesce else requests)

            async def one() -> None:
                t = time.perf_counter()
                async with gate:
                    await c.enqueue(task)
                lat.append(time.perf_counter() - t)

            async def burst() -> float:
                t0 = time.perf_counter()
                await asyncio.gather(*(one() for _ in range(requests)))
                return time.perf_counter() - t0

            for _ in range(2):  # warm-up rounds: connections opened, scripts loaded
                await burst()
            lat.clear()
            before = _costs(r)
            cpu0 = time.process_time()
            seconds = sum([await burst() for _ in range(rounds)])
            cpu = time.process_time() - cpu0
            total = requests * rounds
            out.update(
                _delta(before, _costs(r), total),
                rate=total / seconds,
                n=total,
                p50_ms=_pct(lat, 50) * 1e3,
                p99_ms=_pct(lat, 99) * 1e3,
                # the client's own CPU (this process): its rate bound on a core of its own
                client_cpu_us_per_task=cpu / total * 1e6,
                connections=len(r.client_list()) - 1,
            )

    runner(main())
    return out


# ---------------------------------------------------------------------------- parent


def _load() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/loadavg").read_text().split()[0]
    return "?"


def _run_child(
    src: str, what: str, url: str, a: argparse.Namespace, timeout: float
) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, str(ROOT)]))
    argv = [sys.executable, "-m", "benchmarks.enqueue_rates", "--child", what, "--url", url]
    argv += ["--n", str(a.n), "--requests", str(a.requests), "--rounds", str(a.rounds)]
    load0 = _load()
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"what": what, "na": f"failed: {last[:160]}"}
    res: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    res["load"] = f"{load0}→{_load()}"
    return res


def _table(rows: list[list[str]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def report(results: list[tuple[str, dict[str, Any]]], a: argparse.Namespace) -> str:
    out = [
        f"# pyasynq enqueue rates ({time.strftime('%Y-%m-%d %H:%M')}, "
        f"{'quick' if a.quick else 'full'})",
        "",
        f"Load average at start {results[0][1].get('load', '?') if results else '?'}; "
        "each row gives the 1-minute load before→after it. A load above ~1.5 on this "
        "2-core machine means something else competed: compare rows of one run only.",
        "",
    ]
    single = [(s, r) for s, r in results if r["what"] in ("sync", "async")]
    if single:
        rows = [
            [
                s,
                r["what"],
                *(
                    [r["na"], "", "", "", ""]
                    if "na" in r
                    else [
                        f"{r['rate']:,.0f}",
                        f"{r['client_cpu_us_per_task']:.1f}",
                        f"{r['redis_cpu_us_per_task']:.1f}",
                        f"{r['redis_cmds_per_task']:.2f}",
                        ", ".join(f"{k} {v}" for k, v in r["commands"].items()),
                    ]
                ),
                r.get("load", ""),
            ]
            for s, r in single
        ]
        out += [
            f"## Single enqueue, one call at a time (N = {a.n:,})",
            "",
            _table(
                rows,
                [
                    "tree",
                    "client",
                    "enqueue/s",
                    "client CPU µs/call",
                    "Redis CPU µs/task",
                    "cmds/task",
                    "commands",
                    "load",
                ],
            ),
            "",
        ]
    conc = [(s, r) for s, r in results if r["what"].startswith("concurrent")]
    if conc:
        rows = [
            [
                s,
                str(r.get("coalesce", r["what"])),
                *(
                    [r["na"], "", "", "", "", "", ""]
                    if "na" in r
                    else [
                        f"{r['rate']:,.0f}",
                        f"{r['p50_ms']:.2f}",
                        f"{r['p99_ms']:.2f}",
                        f"{r['redis_cpu_us_per_task']:.1f}",
                        f"{r['redis_cmds_per_task']:.2f}",
                        f"{r['client_cpu_us_per_task']:.1f}",
                        str(r["connections"]),
                    ]
                ),
                r.get("load", ""),
            ]
            for s, r in conc
        ]
        out += [
            f"## Concurrent enqueue: {a.requests:,} coroutines at once, {a.rounds} rounds",
            "",
            _table(
                rows,
                [
                    "tree",
                    "coalesce",
                    "tasks/s",
                    "p50 ms per call",
                    "p99 ms per call",
                    "Redis CPU µs/task",
                    "cmds/task",
                    "client CPU µs/task",
                    "connections",
                    "load",
                ],
            ),
            "",
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.enqueue_rates", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    p.add_argument("--steps", default="single,concurrent")
    p.add_argument("--src", action="append", help="a tree's src directory (repeatable)")
    p.add_argument("--n", type=int, default=None, help="single calls timed (20,000; quick 3,000)")
    p.add_argument("--requests", type=int, default=1000, help="concurrent enqueues per round")
    p.add_argument("--rounds", type=int, default=None, help="rounds timed (20; quick 5)")
    p.add_argument("--repeat", type=int, default=None, help="passes over the trees (2; quick 1)")
    p.add_argument("--out", default=str(RESULTS), help="where the report goes")
    p.add_argument("--url", help="(child) Redis URL")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.n = a.n or (3000 if a.quick else 20000)
    a.rounds = a.rounds or (5 if a.quick else 20)
    a.repeat = a.repeat or (1 if a.quick else 2)
    if a.child:
        print(json.dumps(child(a.child, a.url, a.n, a.requests, a.rounds)))
        return 0
    sys.path.insert(0, str(ROOT / "src"))
    from pyasynq.embedded import EmbeddedRedis

    srcs = a.src or [str(ROOT / "src")]
    steps = a.steps.split(",")
    whats = (["sync", "async"] if "single" in steps else []) + (
        ["concurrent-on", "concurrent-off"] if "concurrent" in steps else []
    )
    results: list[tuple[str, dict[str, Any]]] = []
    server = EmbeddedRedis(persistent=True).start()
    try:
        import redis

        # No automatic AOF rewrite inside a measurement (it would land on whichever tree
        # crosses the size threshold); the file just grows for the few minutes of a run.
        with redis.Redis.from_url(server.url) as r:
            r.config_set("auto-aof-rewrite-percentage", 0)
        for _ in range(a.repeat):
            for what in whats:
                for src in srcs:
                    name = os.path.relpath(src, ROOT) if src.startswith(str(ROOT)) else src
                    res = _run_child(src, what, server.url, a, timeout=600)
                    print(f"{name} {what}: {json.dumps(res)}", file=sys.stderr)
                    results.append((name, res))
    finally:
        server.stop()
    text = report(results, a)
    print(text)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"enqueue-{time.strftime('%Y%m%d-%H%M%S')}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
