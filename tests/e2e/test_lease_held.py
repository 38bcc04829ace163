"""A CPU-bound sync handler that runs for three times the lease is not delivered twice
while its worker process is alive, even with another worker recovering aggressively."""

from __future__ import annotations

import time

import redis

import pyasynq

from .test_no_task_lost import _start_supervisor, _wait_children

LEASE = 1.5  # e2e_app.config.lease_duration


def test_cpu_bound_handler_keeps_its_lease(redis_url: str, r: redis.Redis) -> None:
    with pyasynq.Client(redis_url) as client:
        info = client.enqueue(pyasynq.Task("e2e:cpu", str(3 * LEASE).encode()), max_retry=5)
    # Two worker processes: one takes the task, the other's recoverer runs every 0.5 s.
    sup = _start_supervisor(redis_url, processes=2)
    try:
        _wait_children(sup, 2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and r.exists(f"asynq:{{default}}:t:{info.id}"):
            time.sleep(0.1)
        assert r.exists(f"asynq:{{default}}:t:{info.id}") == 0, "the task did not finish"
    finally:
        sup.terminate()
        sup.wait(30)
    starts = r.lrange("e2e:cpu-starts", 0, -1)
    assert len(starts) == 1, f"the task ran {len(starts)} times: {starts}"
    assert r.lrange("e2e:cpu-done", 0, -1) == [info.id.encode()]
    assert int(r.get("asynq:{default}:processed") or 0) == 1
    assert r.get("asynq:{default}:failed") is None
