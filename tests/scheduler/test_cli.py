"""``pyasynq scheduler module:attr``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from pyasynq._rdb import keys
from pyasynq.cli import main

APP = """
from pyasynq import Task
from pyasynq.scheduler import PeriodicTaskConfig

configs = [PeriodicTaskConfig("@every 1s", Task("cli:tick"), {"queue": "cli"})]
not_a_provider = 42

def broken():
    return [PeriodicTaskConfig("", Task("x"))]
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "cli_app.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "cli_app", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module:configs", "cannot import 'no_such_module'"),
        ("cli_app:missing", "has no attribute 'missing'"),
        ("cli_app", "expected module:attribute"),
        ("cli_app:not_a_provider", "provider must be a callable"),
        ("cli_app:broken", "cronspec must be a non-empty string"),
    ],
)
def test_mistakes_end_with_one_line(
    app: Path, redis_url: str, capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    assert main(["--redis-url", redis_url, "scheduler", target]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_bad_flags(app: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--redis-url", redis_url, "scheduler", "cli_app:configs", "--tz", "Nowhere/X"])
    assert code == 2
    assert "not a known time zone" in capsys.readouterr().err


def test_runs_until_sigterm(app: Path, redis_url: str, r: redis.Redis) -> None:
    argv = [sys.executable, "-m", "pyasynq", "--redis-url", redis_url, "scheduler"]
    argv += ["cli_app:configs", "--heartbeat-interval", "0.3", "--tz", "Europe/Paris"]
    p = subprocess.Popen(argv, cwd=app, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while r.llen(keys.pending_key("cli")) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.llen(keys.pending_key("cli")) >= 1
        assert r.zcard(keys.ALL_SCHEDULERS) == 1
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out.decode()
    text = out.decode()
    assert "Scheduler timezone is set to Europe/Paris" in text
    assert "Successfully registered periodic task" in text
    assert r.zcard(keys.ALL_SCHEDULERS) == 0  # shut down cleanly


def test_bad_log_level(app: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--redis-url", redis_url, "scheduler", "cli_app:configs", "--log-level", "loud"])
    assert code == 2
    assert "log level must be one of" in capsys.readouterr().err
