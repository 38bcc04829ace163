"""Aggregator: turns a group of aggregating tasks into one task with the user's
GroupAggregator when the group is big enough, old enough or quiet enough (wire spec 3.15).
"""

from __future__ import annotations

import asyncio
import uuid

from pyasynq._rdb.ops import aggregation
from pyasynq._rdb.ops.enqueue import enqueue_result, prepare
from pyasynq.options import Options
from pyasynq.task import Task

from .base import Component, Runtime

MAX_CONCURRENT_CHECKS = 3


class Aggregator(Component):
    name = "aggregator"

    def __init__(self, rt: Runtime) -> None:
        grace = rt.config.seconds("group_grace_period")
        super().__init__(rt, min(7.0, grace))
        self._limit = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)

    async def exec(self) -> None:
        rt = self.rt
        if rt.config.group_aggregator is None:
            return
        jobs = []
        for q in rt.queues:
            reply = await rt.broker.run(aggregation.list_groups(q))
            for g in aggregation.list_groups_result(reply):
                jobs.append(self._check(q, g))
        await asyncio.gather(*jobs)

    async def _check(self, q: str, group: str) -> None:
        rt, cfg = self.rt, self.rt.config
        async with self._limit:
            now = rt.clock.now()
            set_id = str(uuid.uuid4())
            op = aggregation.check_group(
                q, group, set_id, now,
                grace_period=int(cfg.seconds("group_grace_period")),
                max_size=cfg.group_max_size,
                max_delay=int(cfg.seconds("group_max_delay")),
            )  # fmt: skip
            if not aggregation.check_group_result(await rt.broker.run(op)):
                return
            found = aggregation.read_aggregation_set_result(
                await rt.broker.run(aggregation.read_aggregation_set(q, group, set_id))
            )
            if found is None:
                return
            tasks = [Task(m.type, m.payload, headers=m.headers or None) for m in found.messages]
            fn = cfg.group_aggregator
            assert fn is not None
            result = fn(group, tasks)
            if asyncio.iscoroutine(result):
                result = await result
            if not isinstance(result, Task):
                rt.log.error("aggregator for group %s returned %r, not a Task", group, result)
                return
            # wake: the new task starts now on idle pyasynq workers, not at their poll
            p = prepare(result, Options(queue=q), rt.clock.now_ns(), wake=True)
            _, reply = await rt.broker.run_many([p.register_queue, p.call])
            if isinstance(reply, BaseException):
                raise reply
            enqueue_result(reply)
            await rt.broker.run(aggregation.delete_aggregation_set(q, group, set_id))
