"""Syncer: retries post-processing writes that failed (Redis unreachable) until the task's
lease ends; after that the recoverer owns the task (wire spec 5.4)."""

from __future__ import annotations

from pyasynq._rdb.ops import Op, processing
from pyasynq.errors import BrokerError

from .base import Component, Runtime, run_write


class Syncer(Component):
    name = "syncer"

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt, rt.config.seconds("syncer_interval"))
        self._pending: list[tuple[Op, float]] = []

    def add(self, op: Op, until: float) -> None:
        self._pending.append((op, until))

    def __len__(self) -> int:
        return len(self._pending)

    async def exec(self) -> None:
        todo, self._pending = self._pending, []
        now = self.rt.clock.now()
        for op, until in todo:
            if now >= until:
                self.rt.log.warn("syncer: dropped a write whose lease ended; recoverer takes over")
                continue
            try:
                await run_write(self.rt, op)
            except processing.DEFINITIVE_ERRORS as exc:
                self.rt.log.warn("syncer: %s", exc)
            except BrokerError:
                self._pending.append((op, until))
