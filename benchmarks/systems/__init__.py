"""The systems the harness knows, with what the report says about each (stdlib only: the
orchestrator reads this before any peer venv exists). Adapters live beside this file,
one module per system, imported only inside that system's venv."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SystemInfo:
    name: str
    venv: str  # "main" or "redis5" (see benchmarks/requirements-peers*.txt)
    dist: str  # distribution whose version the report shows
    batch: str  # what the "batch" column measures
    sleep: str  # how the 1 ms task waits
    concurrency: str  # what C means for it
    notes: str = ""
    # The "Redis I/O" handler: one round trip of its own on a client the benchmark owns
    # ("" = the adapter has none; that column is n/a).
    io: str = ""
    # The same round trip on a client the worker lends to handlers ("" = none: n/a).
    io_lent: str = ""


SYSTEMS: dict[str, SystemInfo] = {
    s.name: s
    for s in [
        SystemInfo(
            "pyasynq",
            "main",
            "pyasynq",
            "Client.enqueue_many: one pipelined round trip per 1,000",
            "await asyncio.sleep(0.001)",
            "C handler coroutines per process",
            "sync Client; `python -m pyasynq worker --concurrency C`, on uvloop "
            "(event_loop auto; uvloop is in the venv)",
            io="await INCR on a redis.asyncio client of the handlers' module",
            io_lent="await current_task().redis.incr(...): the client the worker lends",
        ),
        SystemInfo(
            "pyasynq-asyncio",
            "main",
            "pyasynq",
            "Client.enqueue_many: one pipelined round trip per 1,000",
            "await asyncio.sleep(0.001)",
            "C handler coroutines per process",
            "the same, the worker with `--loop asyncio`: pyasynq without uvloop "
            "(not a peer: left out of the ratios and targets)",
            io="await INCR on a redis.asyncio client of the handlers' module",
            io_lent="await current_task().redis.incr(...): the client the worker lends",
        ),
        SystemInfo(
            "asynq-go",
            "main",
            "asynq-go",
            "n/a: asynq has no batch enqueue API",
            "time.Sleep(1ms) in a goroutine",
            "Config.Concurrency = C goroutines",
            "benchmarks/go built by the harness with the machine's Go (or --go-bin), asynq's "
            "default Config (TaskCheckInterval 1 s: an idle server polls once a second); "
            "pre-fill and latency enqueues use pyasynq's wire-compatible client",
            io="INCR on a go-redis client of the worker (pool size C)",
        ),
        SystemInfo(
            "celery",
            "main",
            "celery,kombu",
            "group(...).apply_async(): no batch API, one publish per task",
            "time.sleep(0.001) in a pool thread",
            "threads pool, C threads",
            "Redis broker, no result backend, --without-gossip/mingle/heartbeat",
        ),
        SystemInfo(
            "rq",
            "main",
            "rq",
            "Queue.enqueue_many: one pipeline per 1,000",
            "time.sleep(0.001)",
            "1 job at a time per process (RQ has no in-process concurrency)",
            "SimpleWorker (the default Worker forks per job)",
        ),
        SystemInfo(
            "arq",
            "redis5",
            "arq",
            "asyncio.gather of 100 concurrent enqueue_job calls (no batch API)",
            "await asyncio.sleep(0.001)",
            "max_jobs = C",
            "defaults: polls every 0.5 s, keeps results 1 h; needs redis-py < 6",
        ),
        SystemInfo(
            "dramatiq",
            "main",
            "dramatiq",
            "group(...).run(): no batch API, one enqueue per task",
            "time.sleep(0.001) in a worker thread",
            "--processes 1 --threads C",
            "Redis broker, default middleware",
        ),
        SystemInfo(
            "saq",
            "redis5",
            "saq",
            "asyncio.gather of 100 concurrent enqueue calls (no batch API)",
            "await asyncio.sleep(0.001)",
            "Worker(concurrency=C)",
            "Redis queue; needs redis-py < 8",
        ),
        SystemInfo(
            "taskiq",
            "main",
            "taskiq,taskiq-redis",
            "asyncio.gather of 100 concurrent kiq() calls (no batch API)",
            "await asyncio.sleep(0.001)",
            "--workers 1 --max-async-tasks C",
            "RedisStreamBroker (acknowledged), no result backend",
        ),
        SystemInfo(
            "streaq",
            "main",
            "streaq,coredis",
            "Worker.enqueue_many: one pipeline per 1,000",
            "await asyncio.sleep(0.001)",
            "Worker(concurrency=C)",
            "Redis streams via coredis, defaults",
        ),
        SystemInfo(
            "huey",
            "main",
            "huey",
            "Task.map(): no batch API, one enqueue per task",
            "time.sleep(0.001) in a worker thread",
            "-k thread -w C",
            "RedisHuey, blocking reads (BRPOP)",
        ),
    ]
}
