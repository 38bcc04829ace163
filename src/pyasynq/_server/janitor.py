"""Janitor: deletes completed tasks whose retention ended (wire spec 3.14)."""

from __future__ import annotations

from pyasynq._rdb.ops import processing

from .base import Component, Runtime


class Janitor(Component):
    name = "janitor"

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt, rt.config.seconds("janitor_interval"))

    async def exec(self) -> None:
        batch = self.rt.config.janitor_batch_size
        for q in self.rt.queues:
            while True:
                op = processing.delete_expired_completed(q, self.rt.clock.now(), batch)
                if processing.count_result(await self.rt.broker.run(op)) < batch:
                    break
