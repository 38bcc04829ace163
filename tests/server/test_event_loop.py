"""ServerConfig.event_loop: the loop Server.run()/start() create (asyncio or uvloop)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis

import pyasynq
from pyasynq import _eventloop
from pyasynq._rdb import keys
from pyasynq.cli.worker import build_config, register


@pytest.mark.parametrize("name", ["asyncio", "uvloop", "auto"])
def test_the_server_runs_its_tasks_and_heartbeats_on_the_loop_it_was_given(
    redis_url: str, r: redis.Redis, name: str
) -> None:
    if name == "uvloop" and not _eventloop.available():
        pytest.skip("uvloop is not installed")
    loops: dict[str, str] = {}
    ran = threading.Event()
    mux = pyasynq.ServeMux()

    @mux.handler("t")
    async def t(task: pyasynq.Task) -> None:
        loops["handler"] = type(asyncio.get_running_loop()).__module__
        ran.set()

    server = pyasynq.Server(redis_url, concurrency=2, event_loop=name)
    server.start(mux)
    try:
        with pyasynq.Client(redis_url) as client:
            client.enqueue(pyasynq.Task("t"))
        assert ran.wait(10), "the task did not run"
        # The heartbeater's thread runs a loop of the same kind; its first beat
        # registered the server.
        give_up = time.monotonic() + 10
        while r.zcard(keys.ALL_SERVERS) == 0 and time.monotonic() < give_up:
            time.sleep(0.02)
        assert r.zcard(keys.ALL_SERVERS) == 1
    finally:
        server.shutdown()
    uses_uvloop = name == "uvloop" or (name == "auto" and _eventloop.available())
    assert loops["handler"].startswith("uvloop") == uses_uvloop, loops


def test_an_unknown_or_missing_loop_is_refused_with_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="auto, asyncio, uvloop"):
        pyasynq.ServerConfig(event_loop="trio")  # type: ignore[arg-type]
    monkeypatch.setattr(_eventloop, "available", lambda: False)
    with pytest.raises(ValueError, match=r"pip install 'pyasynq\[uvloop\]'"):
        pyasynq.ServerConfig(event_loop="uvloop")
    assert _eventloop.factory("auto") is None  # auto falls back to asyncio's loop


def test_the_worker_command_passes_loop_on() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    sub: Any = parser.add_subparsers()
    register(sub)
    args = parser.parse_args(["worker", "m:mux", "--loop", "asyncio"])
    assert build_config(args).event_loop == "asyncio"
    args = parser.parse_args(["worker", "m:mux"])
    assert build_config(args).event_loop == "auto"


def test_auto_falls_back_to_asyncio_when_uvloop_cannot_be_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # uvloop is a default dependency where it ships wheels; a broken build must not stop
    # a worker that did not ask for it.
    import sys

    monkeypatch.setattr(_eventloop, "available", lambda: True)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import raises ImportError
    assert _eventloop.factory("auto") is None
    with pytest.raises(ImportError):
        _eventloop.factory("uvloop")
