"""Replay the Go-asynq processing fixtures with a real pyasynq Server and compare the
whole keyspace with what Go's server left (issue 3, "Done when", first item).

``ServerReplayer`` extends ``tests/conformance.py``'s Replayer with the server vocabulary:

* ``server_start``: a Server built from the fixture's ``config`` (asynq's other defaults:
  heartbeat 5 s, lease 30 s, ...) running one handler that does what ``handlers_by_type``
  says for the task's exact type (``*`` for any other): succeed, fail, skip_retry,
  revoke or block, after writing ``write_result_*``.
* ``wait_until``: the conditions are prose, so the replayer waits for what they all
  mean: the server is quiescent (no pending task it could take, no active task other
  than blocked ones, no group or aggregation set left when an aggregator runs). When the
  keyspace is dumped while the server runs, it also waits for a heartbeat that lists the
  active tasks, and never ends before Go's ``waited_ms``, so lease and heartbeat times
  line up with Go's.
* ``sleep``: slept (capped at 2 s); ``server_shutdown``: ``Server.shutdown()``;
  ``inspector`` PauseQueue / UnpauseQueue through the pause ops.

Deliberate differences, checked here rather than hidden:

* pyasynq's fencing token, hash field ``attempt``, exists only while a task is active:
  a dump taken while the server runs has it on active tasks (it is removed before the
  comparison); on any other task it is a failure. The crash counter ``crashes`` must not
  appear in these scenarios at all.
* The ``error_msg`` texts are the fixture's ``returned_error_string``: the handler raises
  an exception with that text, chained ``from SkipRetry()`` / ``from RevokeTask()``.
  pyasynq stores the exception's type before its text (``HandlerError: <text>``, issue
  14) where Go stores ``err.Error()``; the prefix is required, then removed, before the
  comparison.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import conformance as cf
import pytest
import redis

from pyasynq import RevokeTask, SkipRetry, Task
from pyasynq._rdb import keys
from pyasynq._rdb.codec import decode_task
from pyasynq._rdb.goopts import parse_go_duration, parse_option_strings
from pyasynq._rdb.ops import state
from pyasynq._sync.broker import Broker
from pyasynq.errors import QueueStateError
from pyasynq.server import Server

from .support import ListLogger

if not cf.fixtures_dir().is_dir():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"conformance fixtures not found at {cf.fixtures_dir()}")
    pytest.skip(f"no conformance fixtures at {cf.fixtures_dir()}", allow_module_level=True)

SCENARIOS = [
    "processed_success",
    "processed_with_retention_and_result",
    "failed_then_retry",
    "skip_retry_to_archive",
    "revoke_task",
    "max_retry_zero_archive",
    "paused_queue",
    "graceful_shutdown_requeue",
    "aggregation",
    "server_running_state",
]
WAIT_TIMEOUT = 15.0
MAX_SLEEP = 2.0


class HandlerError(Exception):
    """What a fixture handler returns; its text is Go's ``err.Error()``."""


def fixture_handler(by_type: Mapping[str, Mapping[str, Any]]) -> Callable[[Task], Any]:
    """One async handler doing what ``handlers_by_type`` says for each exact type."""

    def spec_for(task_type: str) -> Mapping[str, Any]:
        spec = by_type.get(task_type, by_type.get("*"))
        if spec is None:
            raise AssertionError(f"the fixture has no handler for {task_type!r}")
        return spec

    async def handler(task: Task) -> None:
        spec = spec_for(task.type)
        if "write_result_b64" in spec:
            await task.result_writer.write(base64.b64decode(spec["write_result_b64"]))
        action, text = spec["action"], spec.get("returned_error_string", "")
        if action == "succeed":
            return
        if action == "fail":
            raise HandlerError(text)
        if action == "skip_retry":
            raise HandlerError(text) from SkipRetry()
        if action == "revoke":
            raise HandlerError(text) from RevokeTask()
        if action == "block":  # until the task's context ends (shutdown abort, deadline)
            await asyncio.sleep(float(spec.get("block_max_s", 120)))
            return
        raise cf.Unsupported(f"handler action {action!r}")

    return handler


def retry_delay_from(table: Mapping[str, float]) -> Callable[[int, BaseException, Task], float]:
    def delay(n: int, err: BaseException, task: Task) -> float:
        value = table.get(str(n), table.get("default"))
        if value is None:
            raise AssertionError(f"no retry delay for retried={n} in {table}")
        return float(value)

    return delay


def aggregator_from(spec: Mapping[str, Any]) -> Callable[[str, list[Task]], Task]:
    """The fixture's GroupAggregator: a type, Go option strings with ``<group>`` in them,
    and a payload recipe (only the JSON-array one the fixtures use is known)."""
    payload_rule = spec["returns_payload"]
    if not payload_rule.startswith("'[' + member payloads joined by ',' + ']'"):
        raise cf.Unsupported(f"aggregator payload rule {payload_rule!r}")

    def aggregate(group: str, tasks: list[Task]) -> Task:
        strings = []
        for template in spec.get("returns_options", []):
            text = template.replace("<group>", group)
            m = re.fullmatch(r"(TaskID|Queue|Group)\(([^\"].*)\)", text)
            if m:  # the fixture writes these unquoted
                text = f'{m.group(1)}("{m.group(2)}")'
            strings.append(text)
        opts = parse_option_strings(strings)
        kw = {
            f.name: getattr(opts, f.name)
            for f in dataclasses.fields(opts)
            if getattr(opts, f.name) is not None
        }
        payload = b"[" + b",".join(t.payload or b"" for t in tasks) + b"]"
        return Task(spec["returns_type"], payload, **kw)

    return aggregate


def server_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    known = {
        "queues",
        "concurrency",
        "strict_priority",
        "shutdown_timeout_s",
        "task_check_interval_s",
        "delayed_task_check_interval_s",
        "retry_delay_s_by_retried",
        "group_grace_period_s",
        "group_max_size",
        "group_max_delay_s",
        "group_aggregator",
    }
    unknown = set(cfg) - known
    if unknown:
        raise cf.Unsupported(f"server config fields {sorted(unknown)}")
    out: dict[str, Any] = {
        "queues": dict(cfg["queues"]),
        "concurrency": cfg["concurrency"],
        "strict_priority": cfg["strict_priority"],
        "shutdown_timeout": cfg["shutdown_timeout_s"],
        "task_check_interval": cfg["task_check_interval_s"],
    }
    for src, dst in (
        ("delayed_task_check_interval_s", "delayed_task_check_interval"),
        ("group_grace_period_s", "group_grace_period"),
        ("group_max_delay_s", "group_max_delay"),
        ("group_max_size", "group_max_size"),
    ):
        if src in cfg:
            out[dst] = cfg[src]
    if "retry_delay_s_by_retried" in cfg:
        out["retry_delay_func"] = retry_delay_from(cfg["retry_delay_s_by_retried"])
    if "group_aggregator" in cfg:
        out["group_aggregator"] = aggregator_from(cfg["group_aggregator"])
    return out


class ServerReplayer(cf.Replayer):
    def __init__(self, fixture: Mapping[str, Any], redis_url: str, r: redis.Redis) -> None:
        super().__init__(fixture, redis_url, r)
        self.broker = Broker(redis_url)
        self.log = ListLogger()
        self.server: Server | None = None
        self.start_op: Mapping[str, Any] | None = None
        self.started_at = 0.0
        self.index = 0
        self._use_our_host()

    def _use_our_host(self) -> None:
        self.actual_side = cf.Normaliser.for_now(self.now, socket.gethostname(), os.getpid())

    def run(self) -> list[str]:
        try:
            for i, op in enumerate(self.fixture["operations"]):
                self.index = i
                handler = getattr(self, f"op_{op['op']}", None)
                if handler is None:
                    raise cf.Unsupported(f"operation {op['op']!r} cannot be replayed yet")
                handler(f"operations[{i}] {op['op']}", op)
        finally:
            self.close()
        return self.problems

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None
        self.client.close()
        self.broker.close()

    # -- operations

    def op_flushall(self, where: str, op: Mapping[str, Any]) -> None:
        super().op_flushall(where, op)
        self._use_our_host()

    def op_inspector(self, where: str, op: Mapping[str, Any]) -> None:
        method, q = op["method"], op["args"].get("queue")
        try:
            if method == "PauseQueue":
                state.pause_result(q, self.broker.run(state.pause(q, time.time())))
            elif method == "UnpauseQueue":
                state.unpause_result(q, self.broker.run(state.unpause(q)))
            else:
                raise cf.Unsupported(f"inspector {method}")
        except QueueStateError as exc:
            self.check_error(where, op["result"], exc)
            if not op["result"]["ok"] and str(exc) != op["result"]["error"]:
                self.problems.append(f"{where}: {str(exc)!r} != Go's {op['result']['error']!r}")
            return
        self.check_ok(where, op["result"])

    def op_server_start(self, where: str, op: Mapping[str, Any]) -> None:
        assert self.server is None, "one server at a time"
        self.start_op = op
        self.server = Server(
            self.redis_url, logger=self.log, **server_config(op["config"])
        )  # asynq's defaults for everything else
        self.started_at = time.monotonic()
        self.server.start(fixture_handler(op["handlers_by_type"]))

    def op_wait_until(self, where: str, op: Mapping[str, Any]) -> None:
        not_before = self.started_at + op.get("waited_ms", 0) / 1000 + 0.05
        end = time.monotonic() + WAIT_TIMEOUT
        while not (time.monotonic() >= not_before and self.quiescent()):
            if time.monotonic() > end:
                self.problems.append(f"{where}: never reached {op['condition']!r}")
                return
            time.sleep(0.02)

    def op_sleep(self, where: str, op: Mapping[str, Any]) -> None:
        time.sleep(min(float(op["seconds"]), MAX_SLEEP))

    def op_server_shutdown(self, where: str, op: Mapping[str, Any]) -> None:
        assert self.server is not None
        timeout = float(self.start_op["config"]["shutdown_timeout_s"]) if self.start_op else 8
        t = time.monotonic()
        self.server.shutdown()
        self.server = None
        if time.monotonic() - t > timeout + 1:
            self.problems.append(f"{where}: shutdown took {time.monotonic() - t:.1f}s")

    def op_dump(self, where: str, op: Mapping[str, Any]) -> None:
        self.dump = cf.dump_keyspace(self.r)
        self.problems += [f"{where} {p}" for p in strip_pyasynq_fields(self.dump)]
        self.problems += [
            f"{where} keys{p}"
            for p in cf.compare_keys(
                self.fixture["keys"], self.expected_side, self.dump, self.actual_side
            )
        ]

    # -- waiting

    def quiescent(self) -> bool:
        assert self.start_op is not None
        cfg, by_type = self.start_op["config"], self.start_op["handlers_by_type"]
        r = self.r
        active: list[str] = []
        for q in cfg["queues"]:
            for raw in r.lrange(keys.active_key(q), 0, -1):
                tid = raw.decode()
                data = r.hget(keys.task_key(q, tid), "msg")
                if data is None:
                    return False  # being written right now
                spec = by_type.get(decode_task(data).type, by_type.get("*", {}))
                if spec.get("action") != "block":
                    return False  # in flight: its outcome is not written yet
                active.append(tid)
        for q in cfg["queues"]:
            if r.exists(keys.paused_key(q)):
                continue
            if r.llen(keys.pending_key(q)) and len(active) < cfg["concurrency"]:
                return False
            if "group_aggregator" in cfg and (
                r.scard(keys.groups_key(q)) or r.zcard(keys.all_aggregation_sets_key(q))
            ):
                return False
        if self.dumps_while_running():
            listed: set[bytes] = set()
            for wkey in r.zrange(keys.ALL_WORKERS, 0, -1):
                listed |= set(r.hkeys(wkey))
            if not {a.encode() for a in active} <= listed:
                return False
        return True

    def dumps_while_running(self) -> bool:
        for op in self.fixture["operations"][self.index + 1 :]:
            if op["op"] == "dump":
                return True
            if op["op"] == "server_shutdown":
                return False
        return False


def strip_pyasynq_fields(dump: list[dict[str, Any]]) -> list[str]:
    """Remove ``attempt`` from active task hashes (pyasynq's fencing token, Go ignores
    it); report it anywhere else, and any ``crashes`` field."""
    problems = []
    for entry in dump:
        if entry["type"] != "hash" or keys.queue_from_key(entry["key"]) is None:
            continue
        fields = entry["value"]
        if "msg" not in fields:
            continue
        state_blob = fields.get("state", {}).get("text")
        if "attempt" in fields:
            if state_blob == "active":
                del fields["attempt"]
            else:
                problems.append(f"{entry['key']}: field attempt left on a {state_blob} task")
        if "crashes" in fields:
            problems.append(f"{entry['key']}: unexpected field crashes")
        msg = fields["msg"].get("decoded")
        if msg and msg.get("error_msg"):
            text = msg["error_msg"]
            if text.startswith(f"{HandlerError.__name__}: "):
                msg["error_msg"] = text.removeprefix(f"{HandlerError.__name__}: ")
            else:
                problems.append(f"{entry['key']}: error_msg {text!r} lacks the exception type")
    return problems


@pytest.fixture
def replay(redis_url: str, r: redis.Redis) -> Iterator[Callable[[str], list[str]]]:
    replayers: list[ServerReplayer] = []

    def run(name: str) -> list[str]:
        try:
            fixture = cf.load_fixture(name)
        except FileNotFoundError:
            pytest.skip(f"fixture {name} not present")
        rp = ServerReplayer(fixture, redis_url, r)
        replayers.append(rp)
        try:
            return rp.run()
        except cf.Unsupported as exc:
            pytest.fail(f"{name}: {exc}")

    yield run
    for rp in replayers:
        if rp.server is not None:
            rp.server.shutdown()


@pytest.mark.parametrize("name", SCENARIOS)
def test_server_reproduces_go_keyspace(name: str, replay: Callable[[str], list[str]]) -> None:
    problems = replay(name)
    assert problems == [], f"{name} differs from Go asynq:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- the checks bite


def test_a_leftover_attempt_field_is_reported() -> None:
    dump = [
        {"key": "asynq:{q}:t:a", "type": "hash", "value": {"msg": {}, "state": {"text": "active"},
                                                            "attempt": {"text": "x"}}},
        {"key": "asynq:{q}:t:b", "type": "hash", "value": {"msg": {}, "state": {"text": "retry"},
                                                            "attempt": {"text": "y"}}},
        {"key": "asynq:{q}:t:c", "type": "hash", "value": {"msg": {}, "state": {"text": "retry"},
                                                            "crashes": {"text": "1"}}},
    ]  # fmt: skip
    assert strip_pyasynq_fields(dump) == [
        "asynq:{q}:t:b: field attempt left on a retry task",
        "asynq:{q}:t:c: unexpected field crashes",
    ]
    assert "attempt" not in dump[0]["value"]


def test_the_replay_catches_a_wrong_outcome(
    replay: Callable[[str], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that archived instead of retrying must fail the comparison."""
    import pyasynq._server.processor as proc

    monkeypatch.setattr(proc, "wraps", lambda exc, kind: kind is SkipRetry)
    problems = replay("failed_then_retry")
    assert any("archived" in p for p in problems), problems


def test_go_duration_helper_is_what_the_aggregator_spec_uses() -> None:
    assert parse_go_duration("1h0m0s").total_seconds() == 3600
