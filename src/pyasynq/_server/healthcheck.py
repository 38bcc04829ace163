"""Health check: pings Redis every interval and reports to the user's function."""

from __future__ import annotations

import asyncio

from pyasynq.errors import BrokerError

from .base import Component, Runtime


class HealthChecker(Component):
    name = "healthcheck"

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt, rt.config.seconds("health_check_interval"))

    async def exec(self) -> None:
        fn = self.rt.config.health_check_func
        if fn is None:
            return
        err: BaseException | None = None
        try:
            await self.rt.broker.ping()
        except BrokerError as exc:
            err = exc
        res = fn(err)
        if asyncio.iscoroutine(res):
            await res
