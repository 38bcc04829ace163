"""A scheduler on a host whose clock is 330 s ahead (libfaketime) fires its minute ticks
at the start of Redis's minute, not 30 s early (issue 19)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from server.support import wait_for

from pyasynq._rdb import keys

pytestmark = [pytest.mark.slow, pytest.mark.single_node("a scheduler process under libfaketime")]

HERE = Path(__file__).parent
LIBFAKETIME = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), None)


def test_a_skewed_scheduler_ticks_by_redis_time(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    if LIBFAKETIME is None:
        pytest.skip("libfaketime is not installed (Debian: apt-get install faketime)")
    log = tmp_path / "scheduler.log"
    env = {**os.environ, "APP_REDIS_URL": redis_url}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["env", f"LD_PRELOAD={LIBFAKETIME}", "FAKETIME=+330s",
             "FAKETIME_DONT_FAKE_MONOTONIC=1", "FAKETIME_FORCE_MONOTONIC_FIX=0",
             sys.executable, str(HERE / "skew_scheduler.py")],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        # Within 75 s a minute starts (by either clock); note Redis's time when it fires.
        wait_for(lambda: r.llen(keys.pending_key("default")) or proc.poll() is not None,
                 timeout=75, what="the first tick")  # fmt: skip
        sec, _ = r.time()
        assert proc.poll() is None, log.read_text()
    finally:
        proc.terminate()
        proc.wait(15)
    # By the host's clock (+330 s) the minute starts 30 s into Redis's.
    assert int(sec) % 60 < 10, f"fired {int(sec) % 60} s into Redis's minute"
    text = log.read_text()
    assert "This host's clock is 330.0 s ahead of Redis's: this pyasynq scheduler" in text
