"""Replay the Go-asynq processing fixtures with the processing ops and compare the whole
keyspace with what Go left.

A minimal in-test "server" stands in for pyasynq's: it dequeues with
:func:`processing.dequeue` and applies the handler outcome each fixture describes with the
ops of wire spec 3.7 to 3.11 and 3.17 (succeed -> done / mark_complete, revoke -> done,
fail -> retry or archive, skip_retry -> archive, block -> requeue at shutdown). It checks
the scripts' end states, not the real server's scheduling.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

import conformance as cf
import pytest
import redis

from pyasynq._rdb.codec import TaskMessage
from pyasynq._rdb.ops import processing as p
from pyasynq._rdb.ops import state
from pyasynq._rdb.ops.enqueue import enqueue_result, prepare
from pyasynq._sync.broker import Broker
from pyasynq.errors import QueueStateError
from pyasynq.options import Options

if not cf.fixtures_dir().is_dir():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"conformance fixtures not found at {cf.fixtures_dir()}")
    pytest.skip(f"no conformance fixtures at {cf.fixtures_dir()}", allow_module_level=True)

SCENARIOS = [
    "processed_success",
    "failed_then_retry",
    "skip_retry_to_archive",
    "revoke_task",
    "max_retry_zero_archive",
    "graceful_shutdown_requeue",
    "processed_with_retention_and_result",
    "paused_queue",
]
PYASYNQ_HASH_FIELDS = ("attempt", "crashes")


@pytest.fixture
def b(redis_url: str, r: redis.Redis) -> Iterator[Broker]:
    broker = Broker(redis_url)
    yield broker
    broker.close()


def enqueue(b: Broker, op: Mapping[str, Any], now: float) -> None:
    task, kw = cf.enqueue_call(op, now)
    prepared = prepare(task, Options(**kw), int(now * 1e9))
    b.run(prepared.register_queue)
    enqueue_result(b.run(prepared.call))


def strip_pyasynq_fields(dump: list[dict[str, Any]]) -> list[str]:
    """Remove pyasynq-only task hash fields (Go ignores them) and return what was there."""
    seen = []
    for entry in dump:
        if entry["type"] == "hash" and ":t:" in entry["key"]:
            for f in PYASYNQ_HASH_FIELDS:
                if entry["value"].pop(f, None) is not None:
                    seen.append(f"{entry['key']}/{f}")
    return seen


def assert_same_keyspace(r: redis.Redis, fixture: Mapping[str, Any], now: float) -> None:
    dump = cf.dump_keyspace(r)
    assert strip_pyasynq_fields(dump) == [], "a finished write left a pyasynq field behind"
    problems = cf.compare_keys(
        fixture["keys"], cf.Normaliser.for_fixture(fixture), dump, cf.Normaliser.for_now(now)
    )
    assert problems == [], f"{fixture['scenario']} differs from Go asynq:\n" + "\n".join(problems)


class MiniServer:
    """Processes the fixture's queues to quiescence with the handler outcomes it gives."""

    def __init__(self, b: Broker, op: Mapping[str, Any], now: float) -> None:
        cfg = op["config"]
        assert "group_aggregator" not in cfg, "aggregation is replayed in test_aggregation"
        self.b = b
        self.now = now
        self.queues = sorted(cfg["queues"], key=lambda q: -cfg["queues"][q])
        self.concurrency = cfg["concurrency"]
        self.delays = cfg.get("retry_delay_s_by_retried", {})
        self.handlers = op["handlers_by_type"]
        self.blocked: list[tuple[TaskMessage, str]] = []
        self.tokens = 0

    def handler(self, task_type: str) -> Mapping[str, Any]:
        h = self.handlers.get(task_type, self.handlers.get("*"))
        assert h is not None, f"no handler for {task_type}"
        return h

    def run(self) -> None:
        progress = True
        while progress and len(self.blocked) < self.concurrency:
            progress = False
            for q in self.queues:
                if len(self.blocked) >= self.concurrency:
                    break
                self.tokens += 1
                token = f"attempt-{self.tokens}"
                got = p.dequeue_result(q, self.b.run(p.dequeue(q, self.now, token)))
                if got is None:
                    continue
                assert got.msg is not None, got.problem
                progress = True
                self.process(got.msg, token)

    def process(self, msg: TaskMessage, token: str) -> None:
        h = self.handler(msg.type)
        if "write_result_b64" in h:
            data = base64.b64decode(h["write_result_b64"])
            self.b.run(p.write_result(msg.queue, msg.id, data))
        action = h["action"]
        if action == "block":
            self.blocked.append((msg, token))
            return
        if action == "succeed":
            op = (
                p.mark_complete(msg, self.now, token)
                if msg.retention
                else p.done(msg, self.now, token)
            )
        elif action == "revoke":
            op = p.done(msg, self.now, token)
        elif action == "skip_retry" or (action == "fail" and msg.retried >= msg.retry):
            op = p.archive(msg, self.now, h["returned_error_string"], token)
        elif action == "fail":
            delay = self.delays.get(str(msg.retried), self.delays.get("default"))
            assert delay is not None, "the fixture's retry delay is random; cannot replay"
            op = p.retry(msg, self.now, self.now + delay, h["returned_error_string"], True, token)
        else:
            raise AssertionError(f"unknown handler action {action}")
        [reply] = self.b.run_many([op])
        p.check_write(reply)

    def shutdown(self) -> None:
        for msg, token in self.blocked:
            p.check_write(self.b.run(p.requeue(msg, token)))
        self.blocked = []


def inspector(b: Broker, op: Mapping[str, Any], now: float) -> None:
    q = op["args"]["queue"]
    try:
        if op["method"] == "PauseQueue":
            state.pause_result(q, b.run(state.pause(q, now)))
        elif op["method"] == "UnpauseQueue":
            state.unpause_result(q, b.run(state.unpause(q)))
        else:
            pytest.skip(f"inspector {op['method']} is not replayed here")
    except QueueStateError as exc:
        assert not op["result"]["ok"], f"{op['method']}: unexpected {exc}"
        assert str(exc) == op["result"]["error"]
        return
    assert op["result"]["ok"], f"{op['method']} should have failed"


@pytest.mark.parametrize("name", SCENARIOS)
def test_processing_fixture(name: str, b: Broker, r: redis.Redis) -> None:
    try:
        fixture = cf.load_fixture(name)
    except FileNotFoundError:
        pytest.skip(f"fixture {name} not present")
    now = float(int(time.time()))
    server: MiniServer | None = None
    for op in fixture["operations"]:
        kind = op["op"]
        if kind == "flushall":
            r.flushdb()
        elif kind == "enqueue":
            enqueue(b, op, now)
        elif kind == "inspector":
            inspector(b, op, now)
        elif kind == "server_start":
            server = MiniServer(b, op, now)
            server.run()
        elif kind == "server_shutdown":
            assert server is not None
            server.shutdown()
        elif kind in ("wait_until", "sleep"):
            continue
        elif kind == "dump":
            assert_same_keyspace(r, fixture, now)
        else:
            raise AssertionError(f"operation {kind} is not replayed here")


def test_the_comparison_catches_a_wrong_counter(b: Broker, r: redis.Redis) -> None:
    fixture = cf.load_fixture("processed_success")
    now = float(int(time.time()))
    for op in fixture["operations"]:
        if op["op"] == "enqueue":
            enqueue(b, op, now)
    MiniServer(b, fixture["operations"][4], now).run()
    r.incr("asynq:{default}:processed")
    with pytest.raises(AssertionError, match="processed"):
        assert_same_keyspace(r, fixture, now)
