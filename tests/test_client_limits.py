"""A value longer than Redis accepts (proto-max-bulk-len) is refused before it is sent,
with the limit in the message; Redis would drop the connection mid-send instead, which
looked like a network failure and was retried for 25 s. A real redis-server of our own,
its limit lowered to the smallest Redis allows (1 MB) to keep the payloads small."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from topology import SingleServer

import pyasynq
from pyasynq import BrokerError, Options, Task
from pyasynq._rdb.ops import limits

MB = 1024 * 1024

pytestmark = pytest.mark.single_node("runs its own server")


@pytest.fixture(scope="module")
def small() -> Iterator[SingleServer]:
    with SingleServer() as server:
        c = server.nodes[0].client()
        c.config_set("proto-max-bulk-len", "1mb")
        c.close()
        yield server


@pytest.fixture
def direct(small: SingleServer) -> Iterator[redis.Redis]:
    c = small.nodes[0].client()
    c.flushall()
    yield c
    c.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_payload_above_the_limit_is_refused_before_sending(
    small: SingleServer, direct: redis.Redis, kind: str
) -> None:
    big = Task("upload", b"x" * (MB + MB // 2))
    start = time.monotonic()
    with pytest.raises(ValueError) as err:
        if kind == "sync":
            with pyasynq.Client(small.url()) as c:
                c.enqueue(big)
        else:
            async with pyasynq.AsyncClient(small.url()) as ac:
                await ac.enqueue(big)
    assert time.monotonic() - start < 2
    message = str(err.value)
    assert "task 'upload' is 1.5 MB encoded, above the 1 MB" in message
    assert "proto-max-bulk-len" in message and f"127.0.0.1:{small.port}" in message
    assert direct.keys("asynq:*") == []


def test_what_fits_is_stored_and_a_batch_is_checked_too(
    small: SingleServer, direct: redis.Redis
) -> None:
    with pyasynq.Client(small.url()) as c:
        c.enqueue(Task("fits", b"x" * (MB - 4096)))
        assert direct.llen("asynq:{default}:pending") == 1
        too_big = r"a task of the batch is 2\.0 MB encoded, above the 1 MB"
        with pytest.raises(ValueError, match=too_big):
            c.enqueue_many([Task("a"), (Task("b", b"y" * 2 * MB), Options(queue="q"))])
    assert direct.llen("asynq:{default}:pending") == 1


def test_without_config_rights_the_default_limit_is_assumed(
    small: SingleServer, direct: redis.Redis
) -> None:
    direct.config_set("proto-max-bulk-len", "512mb")
    direct.acl_setuser("noconf", enabled=True, passwords=["+pw"], keys=["*"],
                       channels=["*"], commands=["+@all", "-config"])  # fmt: skip
    try:
        with pyasynq.Client(small.url(auth="noconf:pw")) as c:
            c.enqueue(Task("t", b"x" * 2 * MB))  # 2 MB < the assumed 512 MB: sent
        assert direct.llen("asynq:{default}:pending") == 1
    finally:
        direct.acl_deluser("noconf")
        direct.config_set("proto-max-bulk-len", "1mb")


def test_reading_the_limit() -> None:
    assert limits.max_bulk_result({b"proto-max-bulk-len": b"1048576"}) == MB
    assert limits.max_bulk_result([b"proto-max-bulk-len", b"2097152"]) == 2 * MB
    assert limits.max_bulk_result(BrokerError("NOPERM")) == limits.DEFAULT_MAX_BULK
    assert limits.max_bulk_result({}) == limits.DEFAULT_MAX_BULK
    assert limits.max_bulk_result({"proto-max-bulk-len": "junk"}) == limits.DEFAULT_MAX_BULK
