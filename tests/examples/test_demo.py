"""``python -m pyasynq.demo`` (what ``make demo`` runs), end to end in a subprocess with a
small batch: it prints its summary, and it stops everything it started, on Ctrl-C too."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]


def _env(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYASYNQ_")}
    env["REDIS_URL"] = redis_url
    return env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def _pids(out: str) -> list[int]:
    m = re.search(r"workers\s+\d+ processes, pids ([\d ]+),", out)
    assert m, out
    return [int(p) for p in m.group(1).split()]


def test_demo_runs_to_its_summary(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    run_dir = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "pyasynq.demo", "--users", "8", "--refuse-for", "1",
         "--run-dir", str(run_dir)],
        cwd=ROOT, env=_env(redis_url), capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    out = proc.stdout
    print(out)
    assert proc.returncode == 0, out + proc.stderr
    assert "process_in=1s" in out and "the seed delays it 10 s" in out
    assert re.search(r"users signed up\s+8\n", out)
    assert re.search(r"emails delivered\s+8 to 8 users \(no duplicates\)", out)
    retries = re.search(r"\n  retries\s+(\d+) \(deliveries the SMTP sink refused", out)
    assert retries and int(retries.group(1)) >= 1, "the refusing sink caused no retry"
    assert re.search(r"archived\s+0\n", out)
    assert re.search(r"time taken\s+[\d.]+s", out)
    assert "Stopped the workers, the API and the SMTP sink." in out
    assert not any(_alive(pid) for pid in _pids(out))
    assert (run_dir / "mail.sqlite").exists() and (run_dir / "worker-1.log").exists()


def test_demo_stops_everything_on_ctrl_c(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    # The sink refuses mail for a minute: the demo is still waiting when interrupted.
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyasynq.demo", "--users", "3", "--refuse-for", "60",
         "--run-dir", str(tmp_path / "demo")],
        cwd=ROOT, env=_env(redis_url), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    out = ""
    deadline = time.monotonic() + 60
    while "signing up" not in out:
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the demo did not get going:\n{out}")
        out += line
    api = re.search(r"API\s+(http://\S+)", out)
    assert api
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    out += rest
    assert proc.returncode == 130, out
    assert "interrupted: stopped everything the demo started" in out
    assert not any(_alive(pid) for pid in _pids(out)), "a worker outlived the demo"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api.group(1)}/healthz", timeout=2)


def test_demo_without_a_redis_url_shares_the_embedded_server_and_leaves_none(
    tmp_path: Path,
) -> None:
    from pyasynq import embedded

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYASYNQ_")}
    env.pop("REDIS_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pyasynq.demo", "--users", "4", "--refuse-for", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "using the embedded Redis in ./.pyasynq/redis" in out
    assert re.search(r"emails delivered\s+4 to 4 users", out)
    assert "Gave back the embedded Redis" in out
    data = tmp_path / ".pyasynq" / "redis"
    assert not embedded.status(data).running
    left = subprocess.run(
        ["pgrep", "-af", str(data.resolve())], capture_output=True, text=True, check=False
    )
    assert left.stdout == "", f"left running: {left.stdout}"
    assert (data / "appendonlydir").is_dir()  # its data stays
