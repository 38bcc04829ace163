"""The pytest plugin (pyasynq.testing) as a user's test suite sees it: the fixtures are
there without any conftest, the worker drains the queues, retries included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pyasynq
from pyasynq.testing import IdleReport, Worker, run_until_idle

USER_TESTS = """
import pyasynq

mux = pyasynq.ServeMux()
seen = []

@mux.handler("email:welcome")
def welcome(task):
    seen.append(task.payload)

def test_welcome(pyasynq_client, pyasynq_worker):
    pyasynq_client.enqueue(pyasynq.Task("email:welcome", b"ada"))
    pyasynq_client.enqueue(pyasynq.Task("email:welcome", b"bob"))
    report = pyasynq_worker.run_until_idle(mux)
    assert report.processed == 2 and not report.errors
    assert sorted(seen) == [b"ada", b"bob"]

def test_each_test_starts_empty(pyasynq_redis_url):
    with pyasynq.Inspector(pyasynq_redis_url) as inspector:
        assert inspector.queues() == []
"""


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pytest_plugin"
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def _run_pytest(folder: Path, *args: str) -> str:
    """pytest in ``folder`` in a fresh process, as a user runs it; its output."""
    (folder / "pytest.ini").write_text(INI)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_example_suite_passes_as_a_user_runs_it(tmp_path: Path) -> None:
    # examples/pytest_plugin copied into a fresh folder: no conftest, a private Redis.
    for name in ("tasks.py", "test_tasks.py"):
        (tmp_path / name).write_text((EXAMPLE / name).read_text())
    assert "1 passed" in _run_pytest(tmp_path)


def test_plugin_fixtures_in_a_user_suite_on_a_private_redis(tmp_path: Path) -> None:
    # No --pyasynq-redis-url: the plugin starts (and stops) its own redis-server.
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    assert "2 passed" in _run_pytest(tmp_path)


def test_plugin_uses_the_given_redis(tmp_path: Path, redis_url: str, r) -> None:
    r.set("left-by-an-earlier-test", 1)
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    assert "2 passed" in _run_pytest(tmp_path, f"--pyasynq-redis-url={redis_url}")
    assert r.get("left-by-an-earlier-test") is None  # flushed before each test


def test_run_until_idle_waits_through_retries(
    pyasynq_client: pyasynq.Client, pyasynq_worker: Worker
) -> None:
    mux = pyasynq.ServeMux()
    attempts: list[int] = []

    @mux.handler("flaky")
    def flaky(task: pyasynq.Task) -> None:
        attempts.append(pyasynq.current_task().retry_count)
        if len(attempts) < 3:
            raise RuntimeError(f"attempt {len(attempts)} fails")

    info = pyasynq_client.enqueue(pyasynq.Task("flaky"), max_retry=5)
    report = pyasynq_worker.run_until_idle(mux)
    assert attempts == [0, 1, 2]
    assert report.processed == 3
    assert str(report.errors[info.id]) == "attempt 2 fails"


def test_run_until_idle_says_what_is_left_at_timeout(
    pyasynq_client: pyasynq.Client, pyasynq_redis_url: str
) -> None:
    pyasynq_client.enqueue(pyasynq.Task("never"), max_retry=5)

    def fail(task: pyasynq.Task) -> None:
        raise RuntimeError("no")

    with pytest.raises(TimeoutError, match=r"default/retry"):
        run_until_idle(pyasynq_redis_url, fail, timeout=0.5, retry_delay_func=lambda n, e, t: 3600)


def test_scheduled_tasks_count_only_when_asked(
    pyasynq_client: pyasynq.Client, pyasynq_worker: Worker
) -> None:
    pyasynq_client.enqueue(pyasynq.Task("later"), process_in=3600)
    report = pyasynq_worker.run_until_idle(lambda task: None)
    assert report == IdleReport()
    with pytest.raises(TimeoutError, match=r"default/scheduled"):
        pyasynq_worker.run_until_idle(lambda task: None, timeout=0.3, include_scheduled=True)
