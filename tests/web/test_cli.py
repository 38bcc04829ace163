"""``pyasynq web``: refusing unsafe setups in one line, and serving a real dashboard."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

import pyasynq
from pyasynq.cli import main

from .support import wait_for


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["--redis-url", "redis://127.0.0.1:1/0", "web", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "refusing to serve the dashboard without authentication"),
        (("--insecure-open-dashboard", "--host", "0.0.0.0"), "serves on loopback only"),
        (("--insecure-open-dashboard", "--host", "192.168.1.10"), "serves on loopback only"),
        (("--user", "admin"), "--user needs --password-env VAR or --password-file F"),
        (("--password-env", "PYASYNQ_TEST_PW"), "that variable is not set or empty"),
        (("--user", "a", "--password-env", "PYASYNQ_NO_SUCH_VAR"), "not set or empty"),
        (("--user", "a", "--password-file", "/nonexistent/pw"), "cannot read --password-file"),
        (("--user", "a:b", "--password-env", "PYASYNQ_TEST_PW"), "user name must be"),
    ],
)
def test_unsafe_or_incomplete_setups_are_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    message: str,
) -> None:
    monkeypatch.delenv("PYASYNQ_NO_SUCH_VAR", raising=False)
    if "PYASYNQ_TEST_PW" in args and "--user" in args:
        monkeypatch.setenv("PYASYNQ_TEST_PW", "pw")
    else:
        monkeypatch.delenv("PYASYNQ_TEST_PW", raising=False)
    code, err = run_cli(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("pyasynq: "), err
    assert message in err


def test_open_and_password_together_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pw = tmp_path / "pw"
    pw.write_text("")
    code, err = run_cli(capsys, "--user", "a", "--password-file", str(pw))
    assert code == 2 and "the first line is empty" in err
    pw.write_text("hunter2\n")
    code, err = run_cli(
        capsys, "--user", "a", "--password-file", str(pw), "--insecure-open-dashboard"
    )
    assert code == 2 and "not both" in err


@pytest.fixture
def served(redis_url: str, r: redis.Redis) -> Iterator[Callable[..., str]]:
    """Start ``pyasynq web`` as a user would; yield a function that gives its URL."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pyasynq", "--redis-url", redis_url, "web", "--port", "0",
             *args],
            env={**os.environ, **(env or {})},
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        procs.append(proc)
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"dashboard at (http://\S+/)", line)
        assert found, line
        return found.group(1)

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_pyasynq_web_serves_a_dashboard_with_basic_auth(
    served: Callable[..., str], redis_url: str
) -> None:
    with pyasynq.Client(redis_url) as client:
        client.enqueue(pyasynq.Task("report:build", b"{}"), queue="reports")
    url = served("--user", "ops", "--password-env", "PYASYNQ_TEST_PW",
                 env={"PYASYNQ_TEST_PW": "correct horse"})  # fmt: skip
    assert url.startswith("http://127.0.0.1:")
    assert httpx.get(url).status_code == 401
    page = wait_for(lambda: httpx.get(url, auth=("ops", "correct horse")))
    assert page.status_code == 200 and "reports" in page.text
    assert httpx.get(url + "queue?q=reports", auth=("ops", "correct horse")).status_code == 200


def test_pyasynq_web_open_dashboard_on_loopback(served: Callable[..., str]) -> None:
    url = served("--insecure-open-dashboard", "--read-only")
    page = httpx.get(url)
    assert page.status_code == 200 and "read-only" in page.text
    # Loopback only, even by host name: a DNS-rebinding host is refused.
    assert httpx.get(url, headers={"host": "evil.example"}).status_code == 403


def test_sigterm_stops_the_dashboard_and_its_embedded_redis(tmp_path: Path) -> None:
    from pyasynq import embedded

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PYASYNQ_REDIS_URL")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyasynq", "web", "--port", "0", "--insecure-open-dashboard"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        if "using the embedded Redis" not in proc.stderr.readline():
            pytest.skip("no redis-server or embedded Valkey to start")
        server = embedded.status(tmp_path / ".pyasynq" / "redis").pid
        assert server is not None
        url = re.search(r"dashboard at (http://\S+/)", proc.stderr.readline())
        assert url and httpx.get(url.group(1)).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if embedded._start_time(server) is not None:
        os.kill(server, signal.SIGKILL)  # don't leave it running
        pytest.fail("the embedded Redis outlived `pyasynq web` after SIGTERM")
