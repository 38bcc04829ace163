"""``pyasynq stats`` says whether Redis itself may lose tasks (issue 14, items 6 and 8):
its eviction policy and persistence, with a warning line when either loses tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyasynq.cli import main
from pyasynq.embedded import EmbeddedRedis

from .support import Cli


def test_stats_shows_persistence_and_warns_when_there_is_none(cli: Cli) -> None:
    # The test server runs with `--save ""` and appendonly no (tests/conftest.py).
    res = cli("stats")
    assert res.code == 0, res.err
    assert "Eviction policy: noeviction" in res.out
    assert "Persistence: none (no RDB snapshots, AOF off)" in res.out
    [warning] = [line for line in res.out.splitlines() if line.startswith("Warning:")]
    assert "no persistence" in warning
    redis = cli("stats", "--json").json()["redis"]
    assert redis["persistence"] == "none" and redis["aof_enabled"] is False
    assert redis["rdb_save"] == "" and redis["maxmemory_policy"] == "noeviction"
    assert len(redis["warnings"]) == 1 and "no persistence" in redis["warnings"][0]


def test_stats_warns_about_an_evicting_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--maxmemory-policy", "allkeys-lru"]
    with EmbeddedRedis(tmp_path, persistent=True, extra_args=args) as srv:
        assert main(["--redis-url", srv.url, "stats"]) == 0
        out = capsys.readouterr().out
        assert "Persistence: AOF" in out
        warnings = [line for line in out.splitlines() if line.startswith("Warning:")]
        assert len(warnings) == 1 and "'allkeys-lru'" in warnings[0]
        assert main(["--redis-url", srv.url, "stats", "--json"]) == 0
        out = capsys.readouterr().out

    redis = json.loads(out)["redis"]
    assert redis["persistence"] == "aof" and redis["maxmemory_policy"] == "allkeys-lru"
    assert ["tasks are lost" in w for w in redis["warnings"]] == [True]
