"""Fleet-wide limits measured with real worker processes (issue 17 item 3).

    python -m benchmarks.limits [--processes 4] [--concurrency 50] [--tasks 600]
    make bench-limits

Starts a private redis-server (or uses --redis-url) and ``--processes`` ``pyasynq worker``
processes of ``--concurrency`` each, all serving this module's mux, then runs two steps:

1. cap: ``email:send`` capped at ``--cap`` (5) running fleet-wide; each handler sleeps
   ``--sleep`` (50 ms). The handlers count themselves in Redis while they run, so the
   report gives the most that ever ran at once (must be <= the cap), and the throughput
   against the ideal cap / sleep (100 tasks/s for 5 and 50 ms).
2. rate: ``api:call`` limited to ``--rate`` (100) starts per second; no-op handlers. The
   report gives the starts per second over the run and the most starts seen in any
   one-second window (handler-side clock, so a few ms of dispatch jitter show).

Prints a markdown report. Keep it small on a shared machine: the defaults take ~15 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

import pyasynq  # noqa: E402
from pyasynq.config import ServerConfig  # noqa: E402

P = "{limits-bench}:"
ENTER = """
local n = redis.call("INCR", KEYS[1])
if n > tonumber(redis.call("GET", KEYS[2]) or "0") then redis.call("SET", KEYS[2], n) end
redis.call("RPUSH", KEYS[3], ARGV[1])
return n
"""

# ---------------------------------------------------------------- the workers' app

_conn: aioredis.Redis | None = None


def _redis() -> aioredis.Redis:
    global _conn  # noqa: PLW0603 - one connection per worker process
    if _conn is None:
        _conn = aioredis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _conn


mux = pyasynq.ServeMux()


@mux.handler("email:send")
async def send(task: pyasynq.Task) -> None:
    r = _redis()
    await r.eval(ENTER, 3, P + "running", P + "most", P + "starts", repr(time.time()))  # type: ignore[misc]
    await asyncio.sleep(float(os.environ.get("BENCH_SLEEP", "0.05")))
    await r.decr(P + "running")
    await r.rpush(P + "ends", repr(time.time()))


@mux.handler("api:call")
async def call(task: pyasynq.Task) -> None:
    await _redis().rpush(P + "starts", repr(time.time()))


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


config = ServerConfig(
    concurrency=_env_int("BENCH_CONCURRENCY", 50),
    limits={
        "email:send": pyasynq.Limit(concurrency=_env_int("BENCH_CAP", 5)),
        "api:call": pyasynq.Limit(rate=_env_int("BENCH_RATE", 100), per=1.0),
    },
    task_check_interval=0.1,
)

# ---------------------------------------------------------------- the driver


def _workers(url: str, args: argparse.Namespace) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ, "BENCH_REDIS_URL": url, "BENCH_CONCURRENCY": str(args.concurrency),
        "BENCH_CAP": str(args.cap), "BENCH_RATE": str(args.rate), "BENCH_SLEEP": str(args.sleep),
        "PYTHONPATH": str(ROOT),
    }  # fmt: skip
    cmd = [sys.executable, "-m", "pyasynq", "--redis-url", url, "worker", "benchmarks.limits:mux",
           "--config", "benchmarks.limits:config", "--log-level", "warn"]  # fmt: skip
    return [subprocess.Popen(cmd, cwd=ROOT, env=env) for _ in range(args.processes)]


def _wait(pred: object, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > end:
            raise SystemExit(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _floats(r: redis.Redis, key: str) -> list[float]:
    return sorted(float(x) for x in r.lrange(key, 0, -1))


def _most_in_window(ts: list[float], width: float) -> int:
    most, j = 0, 0
    for i, t in enumerate(ts):
        while ts[j] <= t - width:
            j += 1
        most = max(most, i - j + 1)
    return most


def _per_second(ts: list[float]) -> str:
    counts = [0] * (int(ts[-1] - ts[0]) + 1)
    for t in ts:
        counts[int(t - ts[0])] += 1
    return ", ".join(map(str, counts))


def run(url: str, args: argparse.Namespace) -> str:
    r = redis.Redis.from_url(url)
    r.flushall()
    procs = _workers(url, args)
    lines = [
        f"# Fleet-wide limits: {args.processes} worker processes x concurrency {args.concurrency}",
        "",
    ]
    try:
        _wait(lambda: r.zcard("asynq:servers") == args.processes, 60, "the workers to start")
        with pyasynq.Client(url) as client:
            client.enqueue_many([pyasynq.Task("email:send", b"%d" % i) for i in range(args.tasks)])
            _wait(lambda: r.llen(P + "ends") >= args.tasks, 600, "the capped tasks")
            starts, ends = _floats(r, P + "starts"), _floats(r, P + "ends")
            most = int(r.get(P + "most") or 0)
            secs = ends[-1] - starts[0]
            ideal = args.cap / args.sleep
            lines += [
                f"## Concurrency cap {args.cap}, handler sleeping {args.sleep * 1000:g} ms, "
                f"{args.tasks} tasks",
                "",
                f"- most running at once (handler-side, every start): **{most}** (cap {args.cap})",
                f"- throughput: **{args.tasks / secs:.1f} tasks/s** over {secs:.2f} s "
                f"(ideal {ideal:g}/s: {100 * args.tasks / secs / ideal:.0f}%)",
                "",
            ]
            r.delete(P + "starts")
            n = args.rate * args.rate_seconds
            client.enqueue_many([pyasynq.Task("api:call", b"%d" % i) for i in range(n)])
            _wait(lambda: r.llen(P + "starts") >= n, 600, "the rate-limited tasks")
            starts = _floats(r, P + "starts")
            secs = starts[-1] - starts[0]
            lines += [
                f"## Rate limit {args.rate}/s, no-op handler, {n} tasks",
                "",
                f"- starts per second over the run: **{(n - 1) / secs:.1f}/s** ({secs:.2f} s)",
                f"- starts in each second from the first: {_per_second(starts)}",
                f"- most starts in any 1 s window, handler-side: {_most_in_window(starts, 1.0)} "
                "(the limiter counts at admission; a handler starts a varying few ms later)",
                "",
            ]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        r.close()
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--redis-url", help="use this Redis (it is FLUSHALLed) instead of a private one")
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--cap", type=int, default=5)
    p.add_argument("--sleep", type=float, default=0.05)
    p.add_argument("--tasks", type=int, default=600)
    p.add_argument("--rate", type=int, default=100)
    p.add_argument("--rate-seconds", type=int, default=5)
    args = p.parse_args(argv)
    if args.redis_url:
        print(run(args.redis_url, args))
        return 0
    from pyasynq.embedded import EmbeddedRedis

    with tempfile.TemporaryDirectory() as d:
        server = EmbeddedRedis(Path(d), persistent=False)
        server.start()
        try:
            print(run(server.url, args))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
