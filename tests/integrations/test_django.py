"""The Django integration through the example project, as a Django user runs it: the
project's tests under Django's own test runner on SQLite and PostgreSQL, and the
management commands as processes, against a real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

pytest.importorskip("django", reason="needs the django extra")

import pyasynq

from .conftest import postgres_or_skip

PROJECT = Path(__file__).resolve().parents[2] / "examples" / "django_project"
pytestmark = pytest.mark.single_node  # the example's tests flush one Redis database


def _env(redis_url: str, database_url: str = "", **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYASYNQ_REDIS_URL": redis_url, "EXAMPLE_DATABASE_URL": database_url}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return {**env, **extra}


def _manage(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_django_test_runner_commit_enqueues_once_rollback_nothing(
    backend: str, pyasynq_redis_url: str
) -> None:
    if backend == "sqlite":
        env = _env(pyasynq_redis_url)
    else:
        env = _env(
            pyasynq_redis_url,
            postgres_or_skip(),
            EXAMPLE_TEST_DATABASE=f"test_pyasynq_example_{uuid.uuid4().hex[:8]}",
        )
    done = _manage("test", "shop", "--noinput", "-v", "2", env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Ran 3 tests" in out and "OK" in out
    for name in (
        "test_a_committed_order_enqueues_its_task_once",
        "test_a_rolled_back_order_enqueues_nothing",
        "test_the_worker_confirms_the_committed_order",
    ):
        assert f"{name} (shop.tests.EnqueueOnCommitTests" in out and "ok" in out


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=PROJECT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _wait(check: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _stop(p: subprocess.Popen[str]) -> str:
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=20)
    assert p.returncode == 0, out
    return out


def test_worker_command_processes_the_settings_queues(
    pyasynq_redis_url: str, pyasynq_client: pyasynq.Client, r: redis.Redis, spawn
) -> None:
    info = pyasynq_client.enqueue(pyasynq.Task("orders:sweep"), queue="orders", retention=60)
    worker = spawn("pyasynq_worker", "shop.tasks:mux", env=_env(pyasynq_redis_url))
    with pyasynq.Inspector(pyasynq_redis_url) as inspector:
        _wait(
            lambda: inspector.get_task_info("orders", info.id).state == "completed",
            "the worker to complete the task",
        )
        (server,) = inspector.servers()
    assert server.queues == {"orders": 1} and server.concurrency == 4  # PYASYNQ["WORKER"]
    _stop(worker)


def test_scheduler_command_enqueues_the_settings_schedule(
    pyasynq_redis_url: str, r: redis.Redis, spawn
) -> None:
    scheduler = spawn("pyasynq_scheduler", env=_env(pyasynq_redis_url))
    _wait(lambda: r.llen("asynq:{orders}:pending") > 0, "the @every 1s entry to fire")
    with pyasynq.Inspector(pyasynq_redis_url) as inspector:
        (task,) = inspector.list_tasks("orders", "pending")[:1]
    assert task.type == "orders:sweep"
    _stop(scheduler)


def test_worker_command_says_what_it_cannot_import(pyasynq_redis_url: str) -> None:
    done = _manage("pyasynq_worker", "shop.nowhere:mux", env=_env(pyasynq_redis_url))
    assert done.returncode != 0
    assert "cannot import 'shop.nowhere:mux'" in done.stderr
