"""Fixtures for the server tests: real Servers in-process against the test Redis, with
timings shortened so that leases, heartbeats and shutdowns play out in about a second."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from pyasynq import Client
from pyasynq._sync.broker import Broker

from .support import ListLogger, Servers


@pytest.fixture
def client(redis_url: str, r: redis.Redis) -> Iterator[Client]:
    c = Client(redis_url)
    yield c
    c.close()


@pytest.fixture
def broker(redis_url: str, r: redis.Redis) -> Iterator[Broker]:
    b = Broker(redis_url)
    yield b
    b.close()


@pytest.fixture
def log() -> ListLogger:
    return ListLogger()


@pytest.fixture
def servers(redis_url: str, r: redis.Redis, log: ListLogger) -> Iterator[Servers]:
    """Start servers with ``servers.start(handler, **options)``; all are shut down at the
    end of the test, so none outlives it."""
    s = Servers(redis_url, log)
    yield s
    s.close()
