"""Fixtures for the scheduler tests: schedulers whose engine is driven step by step with
a FakeClock, against the test Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from pyasynq._async.broker import AsyncBroker
from pyasynq._scheduler.engine import Engine
from pyasynq.clock import FakeClock
from pyasynq.scheduler import Scheduler

# The scheduler_entries fixture's start (Go asynq's clock when the scheduler started).
FIXTURE_START = 1795846614.295457


class Driven:
    """A Scheduler and its Engine, run by hand: ``await d.at(t)`` moves the clock to ``t``
    (Unix s), runs one step and waits for what it started."""

    def __init__(self, scheduler: Scheduler, engine: Engine, clock: FakeClock) -> None:
        self.scheduler = scheduler
        self.engine = engine
        self.clock = clock

    def register(self, spec: str, task: Any, **options: Any) -> str:
        return self.scheduler.register(spec, task, **options)

    async def at(self, t: float) -> float:
        self.clock.set(t)
        delay = await self.engine.step()
        await self.engine.drain()
        return delay


class Harness:
    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.brokers: list[AsyncBroker] = []

    def make(
        self, start: float = FIXTURE_START, clock: FakeClock | None = None, **config: Any
    ) -> Driven:
        clock = clock or FakeClock(start)
        config.setdefault("heartbeat_interval", 3)
        s = Scheduler(self.redis_url, clock=clock, **config)
        broker = AsyncBroker(self.redis_url)
        self.brokers.append(broker)
        engine = Engine(
            s.id, table=s._table, broker=broker, config=s.config, clock=clock, log=s.log
        )
        return Driven(s, engine, clock)


@pytest.fixture
async def harness(redis_url: str, r: redis.Redis) -> AsyncIterator[Harness]:
    h = Harness(redis_url)
    yield h
    for b in h.brokers:
        await b.aclose()
