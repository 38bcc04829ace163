"""The worker warns at start about Redis settings that lose tasks (issue 14, items 6 and
8): an evicting maxmemory-policy (see also test_components.py) and no persistence."""

from __future__ import annotations

from pathlib import Path

from pyasynq.embedded import EmbeddedRedis

from .support import ListLogger, Servers


def test_warns_at_start_when_redis_has_no_persistence(servers: Servers) -> None:
    # The test server runs with `--save ""` and appendonly no (tests/conftest.py).
    servers.start(lambda t: None)
    [line] = servers.log.find("no persistence", "warn")
    assert "a restart of Redis loses every task" in line and "appendonly yes" in line


def test_no_persistence_warning_with_aof(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, persistent=True) as srv:
        s = Servers(srv.url, ListLogger())
        try:
            s.start(lambda t: None)
            assert s.log.find("Starting processing")
            assert not s.log.find("persistence")
        finally:
            s.close()


def test_volatile_policy_warning_says_what_can_go(tmp_path: Path) -> None:
    args = ["--maxmemory-policy", "volatile-lru"]
    with EmbeddedRedis(tmp_path, persistent=True, extra_args=args) as srv:
        s = Servers(srv.url, ListLogger())
        try:
            s.start(lambda t: None)
            [line] = s.log.find("maxmemory-policy", "warn")
            assert "'volatile-lru'" in line and "Task data has none and is kept" in line
        finally:
            s.close()
