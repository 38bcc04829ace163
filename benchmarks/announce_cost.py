"""Redis time per task of the worker's batched success write (done_many), with and
without result waiters: what announcing outcomes to ``wait_result`` costs the hot path.

    python benchmarks/announce_cost.py redis://127.0.0.1:6379/15   # FLUSHES that database

Three cases, batches of 256 tasks, Redis time from INFO commandstats (so the client and
the network are left out): nobody waits on the queue (no ``pyasynq:waiting`` flag),
the flag is set but no task is awaited, and every task is awaited (its hash has
``pyasynq:notify``: two more field reads and one PUBLISH per task).
"""

from __future__ import annotations

import sys
import time

import redis

from pyasynq._rdb import keys, scripts
from pyasynq._rdb.codec import TaskMessage, encode_task
from pyasynq._rdb.ops import Call, processing

Q = "bench"
N = 256
ROUNDS = 100


def seed(r: redis.Redis, flag: bool, awaited: bool) -> Call:
    now = time.time()
    tasks = []
    p = r.pipeline(transaction=False)
    for i in range(N):
        m = TaskMessage(type="t", id=f"id{i}", queue=Q)
        k = keys.task_key(Q, m.id)
        fields = {"msg": encode_task(m), "state": "active", "attempt": f"tok {int(now) + 30}"}
        p.hset(k, mapping={**fields, "result": b"r" * 16})
        if awaited:
            p.hset(k, "pyasynq:notify", "pyasynq:result:nobody")
        p.lpush(keys.active_key(Q), m.id)
        p.zadd(keys.lease_key(Q), {m.id: int(now) + 30})
        tasks.append((m, "tok"))
    if flag:
        p.set(keys.waiting_key(Q), 1, ex=60)
    p.execute()
    return processing.done_many(Q, now, tasks)


def measure(r: redis.Redis, sha: str, flag: bool, awaited: bool) -> float:
    r.flushdb()
    total = 0
    for _ in range(ROUNDS):
        call = seed(r, flag, awaited)
        r.config_resetstat()
        r.evalsha(sha, len(call.keys), *call.keys, *call.args)
        total += r.info("commandstats")["cmdstat_evalsha"]["usec"]
    return total / (ROUNDS * N)


def main() -> None:
    r = redis.Redis.from_url(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/15")
    sha = r.script_load(scripts.legacy_source("done_many"))
    for name, flag, awaited in [
        ("nobody waits", False, False),
        ("a waiter on the queue, not these tasks", True, False),
        ("every task awaited", True, True),
    ]:
        print(f"{name:40s} {measure(r, sha, flag, awaited):6.2f} us of Redis time per task")
    r.flushdb()


if __name__ == "__main__":
    main()
