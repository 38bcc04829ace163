"""Helpers for the sign-up example's tests (imported by name: tests/examples has no
__init__.py, since a package named ``examples`` there would shadow the repository's)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from pyasynq._rdb import codec, keys


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns a true value (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def task_message(r: redis.Redis, task_id: str, queue: str = "critical") -> codec.TaskMessage:
    raw = r.hget(keys.task_key(queue, task_id), "msg")
    assert raw is not None, f"task {task_id} has no hash"
    return codec.decode_task(raw)


def tasks_left(r: redis.Redis, queue: str = "critical") -> int:
    """Tasks not yet finished: pending, active, scheduled or waiting to retry."""
    return (
        r.llen(keys.pending_key(queue))
        + r.llen(keys.active_key(queue))
        + r.zcard(keys.scheduled_key(queue))
        + r.zcard(keys.retry_key(queue))
    )


def sign_up(api_url: str, username: str, **fields: str) -> httpx.Response:
    body = {
        "username": username,
        "full_name": f"{username.title()} Example",
        "email": f"{username}@example.com",
        "password": "secret123",
        **fields,
    }
    return httpx.post(f"{api_url}/users", json=body, timeout=30)
