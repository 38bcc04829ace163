"""Handlers for the fleet test of limits (test_limits_fleet.py), run by real worker
processes: ``python -m pyasynq worker limits_app:mux --config limits_app:config``.

Each handler counts itself in Redis while it runs (``{meter}:running``) and keeps the
most seen at once (``{meter}:most``), atomically, so the test reads the fleet-wide peak.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: targets

from targets import async_client

import pyasynq
from pyasynq.config import ServerConfig

RUNNING, MOST, DONE, STARTS = "{meter}:running", "{meter}:most", "{meter}:done", "{meter}:starts"
ENTER = """
local n = redis.call("INCR", KEYS[1])
if n > tonumber(redis.call("GET", KEYS[2]) or "0") then redis.call("SET", KEYS[2], n) end
redis.call("RPUSH", KEYS[3], ARGV[1])
return n
"""

_conn = None


def _redis():  # type: ignore[no-untyped-def]
    global _conn  # noqa: PLW0603 - one connection per worker process
    if _conn is None:
        _conn = async_client(os.environ["APP_REDIS_URL"])
    return _conn


mux = pyasynq.ServeMux()


@mux.handler("email:send")
async def send(task: pyasynq.Task) -> None:
    r = _redis()
    await r.eval(ENTER, 3, RUNNING, MOST, STARTS, repr(time.time()))
    slow = task.payload.startswith(b"slow")  # held until its worker is killed
    await asyncio.sleep(60 if slow else float(os.environ.get("APP_SLEEP", "0.02")))
    await r.decr(RUNNING)
    await r.incr(DONE)


config = ServerConfig(
    concurrency=int(os.environ.get("APP_CONCURRENCY", "50")),
    limits={"email:send": pyasynq.Limit(concurrency=int(os.environ.get("APP_CAP", "5")))},
    heartbeat_interval=0.3,
    lease_duration=2,
    recoverer_interval=0.5,
    task_check_interval=0.1,
    delayed_task_check_interval=0.2,
    shutdown_timeout=2,
)
