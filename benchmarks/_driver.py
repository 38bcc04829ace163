"""The client side of one system, run inside that system's venv:

    python -m benchmarks._driver SYSTEM worker   --url URL --concurrency C
    python -m benchmarks._driver SYSTEM enqueue  --url URL --mode single|batch --n N ...
    python -m benchmarks._driver SYSTEM prefill  --url URL --kind noop|sleep --n N
    python -m benchmarks._driver SYSTEM latency  --url URL --samples S ...

Each command but ``worker`` prints one JSON object as its last line of stdout.

An adapter (benchmarks/systems/SYSTEM.py) provides ``connect(url)``, ``enqueue(client,
kind, i)``, optionally ``enqueue_batch(client, kind, ids)``, ``close(client)`` and
``run_worker(url, concurrency)``; the first four may be coroutines. ``kind`` is "noop",
"sleep" or "lat"; ``i`` is the latency sample number (0 otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import json
import os
import random
import socket
import sys
import time
from types import ModuleType
from typing import Any

# Concurrent calls in flight for systems whose "batch" is asyncio.gather over single calls.
GATHER_WINDOW = 100


async def _call(fn: Any, *args: Any) -> Any:
    out = fn(*args)
    if inspect.isawaitable(out):
        out = await out
    return out


async def gather_batch(enqueue: Any, client: Any, kind: str, ids: list[int]) -> None:
    """The batch for async systems with no batch API: ``GATHER_WINDOW`` concurrent calls."""
    for start in range(0, len(ids), GATHER_WINDOW):
        await asyncio.gather(
            *(enqueue(client, kind, i) for i in ids[start : start + GATHER_WINDOW])
        )


async def _repeat(fn: Any, count: int, *args: Any) -> float:
    """Seconds for ``count`` calls of ``fn(*args)``; sync adapters get a plain loop so the
    driver adds no coroutine per call."""
    t0 = time.perf_counter()
    if inspect.iscoroutinefunction(fn):
        for _ in range(count):
            await fn(*args)
    else:
        for _ in range(count):
            fn(*args)
    return time.perf_counter() - t0


def burn(loops: int) -> int:
    """Pure-Python CPU work for the CPU-bound handler of benchmarks/scale.py, which
    calibrates ``loops`` with this very function (holds the GIL throughout)."""
    x = 0
    for i in range(loops):
        x = (x * 31 + i) & 0xFFFFFFFF
    return x


async def _enqueue(mod: ModuleType, a: argparse.Namespace) -> dict[str, Any]:
    batch = getattr(mod, "enqueue_batch", None)
    if a.mode == "batch" and batch is None:
        return {"na": getattr(mod, "NO_BATCH", "no batch API")}
    client = await _call(mod.connect, a.url)
    try:
        if a.mode == "single":
            await _repeat(mod.enqueue, a.warmup, client, a.kind, 0)
            seconds = await _repeat(mod.enqueue, a.n, client, a.kind, 0)
        else:
            ids = [0] * a.batch
            await _repeat(batch, max(1, a.warmup // a.batch), client, a.kind, ids)
            seconds = await _repeat(batch, a.n // a.batch, client, a.kind, ids)
            if a.n % a.batch:
                seconds += await _repeat(batch, 1, client, a.kind, ids[: a.n % a.batch])
    finally:
        await _call(mod.close, client)
    return {"n": a.n, "seconds": seconds, "rate": a.n / seconds}


async def _prefill(mod: ModuleType, a: argparse.Namespace) -> dict[str, Any]:
    client = await _call(mod.connect, a.url)
    t0 = time.perf_counter()
    try:
        batch = getattr(mod, "enqueue_batch", None)
        done = 0
        while done < a.n:
            k = min(1000, a.n - done)
            if batch is not None:
                await _call(batch, client, a.kind, [0] * k)
            else:
                for _ in range(k):
                    await _call(mod.enqueue, client, a.kind, 0)
            done += k
    finally:
        await _call(mod.close, client)
    return {"n": a.n, "seconds": time.perf_counter() - t0}


async def _latency(mod: ModuleType, a: argparse.Namespace) -> dict[str, Any]:
    path = os.path.join(os.environ["BENCH_DIR"], "lat.sock")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a socket left by an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    client = await _call(mod.connect, a.url)
    samples: list[float] = []
    lost = 0
    rng = random.Random(8)
    deadline = float("inf")
    try:
        for i in range(a.warmup + a.samples):
            if i == a.warmup:
                deadline = time.monotonic() + a.max_seconds
            elif time.monotonic() > deadline and len(samples) >= min(20, a.samples):
                break
            # A random idle gap: the worker is back to waiting, and a poller's period
            # cannot line up with the enqueues.
            await asyncio.sleep(rng.uniform(0.005, 0.010))
            t0 = time.time_ns()
            await _call(mod.enqueue, client, "lat", i)
            wait = a.first_timeout if i == 0 else a.sample_timeout
            until = time.monotonic() + wait
            got = None
            while got is None:
                left = until - time.monotonic()
                if left <= 0:
                    break
                try:
                    data = await asyncio.wait_for(loop.sock_recv(sock, 256), left)
                except TimeoutError:
                    break
                j, t = (int(x) for x in data.split())
                if j == i:
                    got = t
            if got is None:
                if i == 0:
                    raise RuntimeError(f"no latency task ran within {wait}s: is the worker up?")
                lost += 1
            elif i >= a.warmup:
                samples.append((got - t0) / 1e6)
    finally:
        await _call(mod.close, client)
        sock.close()
        os.unlink(path)
    return {"samples_ms": samples, "lost": lost}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="benchmarks._driver")
    p.add_argument("system")
    p.add_argument("command", choices=["worker", "enqueue", "prefill", "latency"])
    p.add_argument("--url", required=True)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--mode", choices=["single", "batch"], default="single")
    # hold and cpu: the handlers of benchmarks/scale.py (pyasynq's adapter only)
    # io: each handler makes one Redis round trip of its own (the "Redis I/O" drain);
    # io-lent: the same on the client the worker lends to handlers (pyasynq's adapters only)
    kinds = ["noop", "sleep", "lat", "hold", "cpu", "io", "io-lent"]
    p.add_argument("--kind", choices=kinds, default="noop")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--max-seconds", type=float, default=30.0)
    p.add_argument("--first-timeout", type=float, default=60.0)
    p.add_argument("--sample-timeout", type=float, default=5.0)
    a = p.parse_args(argv)
    mod = importlib.import_module(f"benchmarks.systems.{a.system.replace('-', '_')}")
    if a.command == "worker":
        mod.run_worker(a.url, a.concurrency)
        return
    if a.command == "enqueue" and hasattr(mod, "enqueue_benchmark"):
        result = mod.enqueue_benchmark(a)
    else:
        fn = {"enqueue": _enqueue, "prefill": _prefill, "latency": _latency}[a.command]
        result = asyncio.run(fn(mod, a))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
