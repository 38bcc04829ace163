"""RedisClock: the offset to Redis's clock from TIME samples (best round trip), and how a
Server, Scheduler and Client keep it."""

from __future__ import annotations

import time

import pytest
import redis
from server.support import ListLogger

from pyasynq import Client, RealClock, RedisClock, Scheduler, Server, Task
from pyasynq._async.broker import AsyncBroker
from pyasynq._clocksync import refresh, start
from pyasynq.clock import estimate_offset
from pyasynq.log import Logger

S = 1_000_000_000


def test_the_sample_with_the_shortest_round_trip_wins() -> None:
    # (sent, redis, received): Redis is 100 s ahead. The slow sample was delayed on its
    # way back only (its midpoint is 2 s late); the fast one is symmetric.
    slow = (10 * S, 110 * S, 14 * S)
    fast = (20 * S, 120 * S + 5_000, 20 * S + 10_000)
    offset, rtt = estimate_offset([slow, fast, (30 * S, 130 * S, 31 * S)])
    assert (offset, rtt) == (100 * S, 10_000)
    assert estimate_offset([slow]) == (98 * S, 4 * S)  # the middle of the round trip
    with pytest.raises(ValueError, match="at least one"):
        estimate_offset([])


def test_a_redis_clock_reads_monotonic_time_plus_the_offset() -> None:
    c = RedisClock()
    assert abs(c.now() - time.time()) < 0.5  # before any sample: the host's clock
    assert c.due(10.0)
    mono = time.monotonic_ns()
    wall = time.time_ns()
    moved = c.update([(mono, wall + 300 * S, mono)])  # Redis 300 s ahead of this host
    assert moved == 0.0  # the first update is not a move
    assert abs(c.now() - (time.time() + 300)) < 0.5
    assert abs(c.now_ns() / S - c.now()) < 0.5
    assert abs(c.skew - 300) < 0.5 and not c.due(10.0) and c.due(0.0)
    mono = time.monotonic_ns()
    assert abs(c.update([(mono, time.time_ns(), mono)]) + 300) < 0.5  # back by 300 s


async def test_the_offset_is_measured_against_redis_time(redis_url: str, r: redis.Redis) -> None:
    broker = AsyncBroker(redis_url)
    try:
        samples = await broker.clock_samples(3)
        c = RedisClock()
        c.update(samples)
        sec, usec = r.time()
        assert abs(c.now() - (sec + usec / 1e6)) < 0.1  # same host: one clock
        assert len(samples) == 3 and all(s <= e for s, _, e in samples)
        assert c.rtt == min(e - s for s, _, e in samples) / S
    finally:
        await broker.aclose()


async def test_skew_and_later_moves_are_logged_once(redis_url: str, r: redis.Redis) -> None:
    log = ListLogger()
    broker = AsyncBroker(redis_url)
    try:
        c = RedisClock()
        await start(c, broker, Logger(log), "worker")
        assert not log.lines  # this host's clock is Redis's
        mono = time.monotonic_ns()
        c.update([(mono, time.time_ns() + 5 * S, mono)])  # as if Redis was 5 s ahead
        await refresh(c, broker, Logger(log), jump=2.0)  # and is now back on time
        await refresh(c, broker, Logger(log), jump=2.0)
        [(level, line)] = log.lines
        assert level == "warn" and "Redis's clock moved -5.0 s" in line and "NTP" in line
    finally:
        await broker.aclose()


def test_a_given_clock_or_none_interval_keeps_the_host_clock(redis_url: str) -> None:
    assert isinstance(Server(redis_url)._clock, RedisClock)
    assert isinstance(Server(redis_url, clock_sync_interval=None)._clock, RealClock)
    assert isinstance(Scheduler(redis_url)._clock, RedisClock)
    assert isinstance(Scheduler(redis_url, clock_sync_interval=None)._clock, RealClock)
    with pytest.raises(ValueError, match="clock_sync_interval"):
        Server(redis_url, clock_sync_interval=0)
    with Client(redis_url, clock_sync_interval=None) as c:
        assert isinstance(c._clock, RealClock)


def test_the_client_reads_redis_time_once_per_interval(redis_url: str, r: redis.Redis) -> None:
    with Client(redis_url, clock_sync_interval=3600) as c:
        rc = c._redis_clock
        assert rc is not None and rc.synced_at is None
        c.enqueue(Task("t"), process_in=60)
        first = rc.synced_at
        assert first is not None
        c.enqueue(Task("t"), process_in=60)
        c.enqueue_many([Task("t")])
        assert rc.synced_at == first
