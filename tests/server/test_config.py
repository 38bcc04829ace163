"""ServerConfig validation: every bad setting fails at construction with a message that
says what to change; queue priorities are GCD-normalised for the processor but reported
as configured (wire spec 2.2, 5.1)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import redis

from pyasynq._rdb import keys
from pyasynq._rdb.codec import decode_server_info
from pyasynq.config import ServerConfig
from pyasynq.server import Server

from .support import Servers, wait_for


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"concurrency": 0}, ValueError, "concurrency must be at least 1, got 0"),
        ({"concurrency": -3}, ValueError, "concurrency must be at least 1"),
        ({"concurrency": 2.5}, TypeError, "concurrency must be an int"),
        ({"concurrency": True}, TypeError, "concurrency must be an int"),
        ({"queues": {}}, ValueError, "queues must be a non-empty mapping"),
        ({"queues": ["default"]}, ValueError, "queues must be a non-empty mapping"),
        ({"queues": {"a": 0, "b": -1}}, ValueError, "at least one queue needs a positive"),
        ({"queues": {"a": "1"}}, TypeError, "priority of queue 'a' must be an int"),
        ({"queues": {"  ": 1}}, ValueError, "queue must not be blank"),
        ({"queues": {"a{b}": 1}}, ValueError, r"queue name 'a\{b\}' holds a brace"),
        ({"queues": {"}": 1}}, ValueError, "holds a brace"),
        ({"group_grace_period": 0.5}, ValueError, "group_grace_period must be at least 1.0"),
        (
            {"group_grace_period": timedelta(milliseconds=999)},
            ValueError,
            "group_grace_period must be at least 1.0",
        ),
        ({"group_max_delay": -1}, ValueError, "group_max_delay must be 0"),
        ({"group_max_size": -1}, ValueError, "group_max_size must be 0"),
        ({"group_max_size": 2.5}, TypeError, "group_max_size must be an int"),
        ({"janitor_batch_size": "100"}, TypeError, "janitor_batch_size must be an int"),
        ({"max_crash_recoveries": True}, TypeError, "max_crash_recoveries must be an int"),
        (
            {"heartbeat_interval": 1, "lease_duration": 1.5},
            ValueError,
            r"lease_duration \(1.5s\) must be at least twice heartbeat_interval \(1.0s\)",
        ),
        ({"lease_duration": 9, "heartbeat_interval": 5}, ValueError, "at least twice"),
        ({"retry_delay_func": 3}, TypeError, "retry_delay_func must be callable"),
        ({"is_failure": None}, TypeError, "is_failure must be callable"),
        ({"error_handler": "x"}, TypeError, "error_handler must be callable or None"),
        ({"health_check_func": 1}, TypeError, "health_check_func must be callable or None"),
        ({"group_aggregator": object()}, TypeError, "group_aggregator must be callable"),
        ({"shutdown_timeout": 0}, ValueError, "shutdown_timeout must be positive"),
        ({"task_check_interval": -1}, ValueError, "task_check_interval must be positive"),
        ({"shutdown_timeout": "8s"}, TypeError, "shutdown_timeout must be seconds"),
        ({"janitor_batch_size": 0}, ValueError, "janitor_batch_size must be at least 1"),
        ({"log_level": "loud"}, ValueError, "log level must be one of debug"),
        ({"max_crash_recoveries": 0}, ValueError, "max_crash_recoveries must be at least 1"),
    ],
)
def test_bad_settings_fail_at_construction(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ServerConfig(**options)
    with pytest.raises(error, match=match):
        Server("redis://localhost:1/0", **options)  # the Server validates the same way


def test_server_rejects_config_and_options_together_and_bad_loggers() -> None:
    with pytest.raises(TypeError, match="either config=ServerConfig"):
        Server("redis://localhost:1/0", config=ServerConfig(), concurrency=2)
    with pytest.raises(TypeError, match="logger must have a debug"):
        Server("redis://localhost:1/0", logger=object())
    with pytest.raises(TypeError, match="unexpected keyword"):
        Server("redis://localhost:1/0", concurency=2)


def test_defaults_are_asynqs() -> None:
    cfg = ServerConfig()
    assert cfg.queues == {"default": 1}
    assert cfg.strict_priority is False
    assert cfg.max_crash_recoveries is None  # asynq has no crash limit: retries rule
    secs = {
        name: cfg.seconds(name)
        for name in (
            "shutdown_timeout",
            "health_check_interval",
            "task_check_interval",
            "delayed_task_check_interval",
            "group_grace_period",
            "group_max_delay",
            "janitor_interval",
            "heartbeat_interval",
            "lease_duration",
            "recoverer_interval",
            "syncer_interval",
        )
    }
    assert secs == {
        "shutdown_timeout": 8,
        "health_check_interval": 15,
        "task_check_interval": 1,
        "delayed_task_check_interval": 5,
        "group_grace_period": 60,
        "group_max_delay": 0,
        "janitor_interval": 8,
        "heartbeat_interval": 5,
        "lease_duration": 30,
        "recoverer_interval": 60,
        "syncer_interval": 5,
    }
    assert cfg.janitor_batch_size == 100
    assert cfg.group_max_size == 0


def test_timedeltas_are_accepted() -> None:
    cfg = ServerConfig(shutdown_timeout=timedelta(seconds=3), group_grace_period=timedelta(1))
    assert cfg.seconds("shutdown_timeout") == 3
    assert cfg.seconds("group_grace_period") == 86400


def test_priorities_are_divided_by_their_gcd_after_dropping_non_positive() -> None:
    cfg = ServerConfig(queues={"critical": 6, "default": 3, "low": 9, "off": 0, "neg": -2})
    assert cfg.normalized_queues() == {"critical": 2, "default": 1, "low": 3}
    assert cfg.positive_queues() == {"critical": 6, "default": 3, "low": 9}
    assert ServerConfig(queues={"a": 4, "b": 4}).normalized_queues() == {"a": 1, "b": 1}
    assert ServerConfig(queues={"a": 5}).normalized_queues() == {"a": 1}


def test_server_info_reports_the_configured_priorities(servers: Servers, r: redis.Redis) -> None:
    srv = servers.start(lambda t: None, queues={"critical": 6, "default": 3, "off": 0})
    rt = srv.runtime
    assert rt is not None
    assert rt.queues == ["critical", "default"]  # what the components walk
    key = keys.server_info_key(rt.identity.host, rt.identity.pid, rt.identity.server_id)
    data = wait_for(lambda: r.get(key), what="the first heartbeat")
    assert decode_server_info(data).queues == {"critical": 6, "default": 3}
