"""Script flags (issue 14, item 5): the scripts a worker needs to drain a full Redis carry
`#!lua flags=allow-oom`, the enqueue scripts do not, and a server that cannot compile the
flags line (Redis before 7.0) is sent the scripts without it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest
import redis

from pyasynq._rdb import scripts
from pyasynq._rdb.ops import processing as p
from pyasynq._sync.broker import Broker


def test_flagged_scripts_exist_and_enqueue_scripts_are_not_flagged() -> None:
    assert set(scripts.ALLOW_OOM) <= set(scripts.names())
    for name in scripts.names():
        text = scripts.source(name)
        assert text.startswith("#!lua flags=allow-oom\n") == (name in scripts.ALLOW_OOM), name
        assert not scripts.legacy_source(name).startswith("#!")
    refused_when_full = {"enqueue", "enqueue_unique", "enqueue_batch", "schedule",
                         "schedule_unique", "add_to_group", "add_to_group_unique",
                         "scheduler_enqueue", "aggregation_check"}  # fmt: skip
    assert not refused_when_full & scripts.ALLOW_OOM


@pytest.fixture
def pre7(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Scripts whose flags line the server cannot compile, as Redis 6 answers a shebang
    ("Error compiling script ... unexpected symbol near '#'"): Redis 7 cannot compile this
    first line either."""

    def source(name: str) -> str:
        text = scripts.legacy_source(name)
        return "@ no flags before Redis 7\n" + text if name in scripts.ALLOW_OOM else text

    def sha(name: str, *, legacy: bool = False) -> str:
        text = scripts.legacy_source(name) if legacy else source(name)
        return hashlib.sha1(text.encode()).hexdigest()

    monkeypatch.setattr(scripts, "source", source)
    monkeypatch.setattr(scripts, "sha", sha)
    yield


@pytest.mark.usefixtures("pre7")
def test_a_server_that_cannot_compile_flags_gets_the_plain_scripts(
    redis_url: str, r: redis.Redis
) -> None:
    now = time.time()
    one = Broker(redis_url)
    many = Broker(redis_url)
    try:
        assert one.run(p.dequeue("default", now, "tok")) is None  # EVALSHA, NOSCRIPT, load
        assert one._legacy
        assert many.run_many([p.dequeue_many("default", now, "tok", 5)]) == [[0]]  # pipeline
        assert many._legacy
    finally:
        one.close()
        many.close()
