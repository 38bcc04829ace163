"""Helpers for the command-line tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from pyasynq._rdb import codec, keys
from pyasynq._rdb.codec import TaskMessage


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Result]


def seed_many(
    r: redis.Redis, queue: str, state: str, n: int, *, prefix: str = "b", chunk: int = 10_000
) -> None:
    """``n`` tasks in ``state`` (pending or a zset state), written with pipelined raw
    commands the way Go asynq leaves them (hash with msg and state, id in the container),
    ``chunk`` at a time so the seeding itself stays small in memory."""
    now = time.time()
    container = keys.queue_prefix(queue) + state
    for start in range(0, n, chunk):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(n, start + chunk)):
            tid = f"{prefix}{i:06d}"
            msg = TaskMessage(type="bulk:t", payload=b"x", id=tid, queue=queue, retry=25,
                              timeout=1800)  # fmt: skip
            pipe.hset(keys.task_key(queue, tid), mapping={"msg": codec.encode_task(msg),
                                                          "state": state})  # fmt: skip
            if state == "pending":
                pipe.lpush(container, tid)
            else:
                pipe.zadd(container, {tid: now - n + i})
        pipe.execute()
    r.sadd(keys.ALL_QUEUES, queue)
