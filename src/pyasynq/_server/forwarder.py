"""Forwarder: moves due scheduled and retry tasks to pending (wire spec 3.12)."""

from __future__ import annotations

from collections.abc import Callable

from pyasynq._rdb.ops import processing

from .base import Component, Runtime


class Forwarder(Component):
    name = "forwarder"

    def __init__(self, rt: Runtime, on_forward: Callable[[], None] | None = None) -> None:
        super().__init__(rt, rt.config.seconds("delayed_task_check_interval"))
        self._on_forward = on_forward

    async def exec(self) -> None:
        moved = 0
        for q in self.rt.queues:
            for source in ("scheduled", "retry"):
                while True:
                    op = processing.forward(q, source, self.rt.clock.now_ns())
                    n = processing.count_result(await self.rt.broker.run(op))
                    moved += n
                    if n == 0:
                        break
        if moved and self._on_forward is not None:
            self._on_forward()
