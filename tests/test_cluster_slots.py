"""Every key an enqueue script touches hashes to its queue's Redis Cluster slot.

The scripts run on a real one-node Redis Cluster (declared keys in two slots would fail
there with CROSSSLOT), and :func:`slots.assert_single_slot` also checks the keys the
scripts touched without declaring them, from MONITOR. To cover more scripts (processing,
inspector), add ``(name, run)`` pairs to ``SCENARIOS``: ``run(url)`` gets the node's URL.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import slots

import pyasynq
from pyasynq import Options, Task
from pyasynq._rdb import keys
from pyasynq._rdb.codec import TaskMessage
from pyasynq._rdb.ops.enqueue import enqueue_call
from pyasynq._sync.broker import Broker

QUEUES = ["default", "élevé:q", "q:with:colons"]
ENQUEUE_SCRIPTS = {
    "enqueue",
    "enqueue_unique",
    "schedule",
    "schedule_unique",
    "add_to_group",
    "add_to_group_unique",
}


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        with slots.cluster_node(tmp_path_factory.mktemp("cluster")) as url:
            yield url
    except RuntimeError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"no redis-server for a cluster node: {exc}")


@pytest.fixture
def node(cluster_url: str) -> Iterator[str]:
    r = redis.Redis.from_url(cluster_url)
    r.flushall()
    r.close()
    yield cluster_url


def client_run(queue: str, fn: Callable[[pyasynq.Client, str], Any]) -> Callable[[str], None]:
    def run(url: str) -> None:
        with pyasynq.Client(url) as c:
            fn(c, queue)

    return run


def both(first: Callable[..., Any], second: Callable[..., Any]) -> Callable[..., None]:
    def run(c: pyasynq.Client, q: str) -> None:
        first(c, q)
        second(c, q)

    return run


def expect_error(fn: Callable[..., Any], exc: type[Exception]) -> Callable[..., None]:
    def run(c: pyasynq.Client, q: str) -> None:
        with pytest.raises(exc):
            fn(c, q)

    return run


def _plain(c: pyasynq.Client, q: str) -> Any:
    return c.enqueue(Task("t", b"x"), queue=q, task_id="a")


def _unique(c: pyasynq.Client, q: str) -> Any:
    return c.enqueue(Task("t", b"x"), queue=q, task_id="u", unique=60)


def _schedule(c: pyasynq.Client, q: str) -> Any:
    return c.enqueue(Task("t", b"x"), queue=q, task_id="s", process_in=60)


def _schedule_unique(c: pyasynq.Client, q: str) -> Any:
    return c.enqueue(Task("t", b"x"), queue=q, task_id="su", process_in=60, unique=60)


def _group(c: pyasynq.Client, q: str) -> Any:
    return c.enqueue(Task("t", b"x"), queue=q, task_id="g", group="grp")


def _group_unique(c: pyasynq.Client, q: str) -> Any:
    return c.enqueue(Task("t", b"x"), queue=q, task_id="gu", group="grp:é", unique=60)


def _many(c: pyasynq.Client, q: str) -> Any:
    return c.enqueue_many(
        [
            (Task("t", b"1"), Options(queue=q, task_id="m1")),
            (Task("t", b"1"), Options(queue=q, task_id="m1")),
            (Task("t", b"2"), Options(queue=q, task_id="m2", process_in=60)),
            (Task("t", b"3"), Options(queue=q, task_id="m3", group="g")),
        ]
    )


# (name, client action): each runs once per queue in QUEUES.
CLIENT_SCENARIOS: list[tuple[str, Callable[[pyasynq.Client, str], Any]]] = [
    ("enqueue", _plain),
    ("enqueue_unique", _unique),
    ("schedule", _schedule),
    ("schedule_unique", _schedule_unique),
    ("add_to_group", _group),
    ("add_to_group_unique", _group_unique),
    ("enqueue_id_conflict", both(_plain, expect_error(_plain, pyasynq.TaskIDConflictError))),
    ("enqueue_duplicate", both(_unique, expect_error(_unique, pyasynq.DuplicateTaskError))),
    (
        "schedule_unique_duplicate",
        both(_schedule_unique, expect_error(_schedule_unique, pyasynq.DuplicateTaskError)),
    ),
    (
        "add_to_group_duplicate",
        both(_group_unique, expect_error(_group_unique, pyasynq.DuplicateTaskError)),
    ),
    ("enqueue_many", _many),
]


def broker_run(queue: str, script: str) -> Callable[[str], None]:
    """Run one enqueue script straight through the broker (no SADD around it)."""

    def run(url: str) -> None:
        msg = TaskMessage(
            type="t", id="b", queue=queue, group_key="grp" if "group" in script else ""
        )
        unique = "unique" in script
        if unique:
            msg.unique_key = keys.unique_key(queue, "t", None)
        now_ns = 1_700_000_000 * 10**9
        at = 1_700_000_100 if script.startswith("schedule") else 0
        call = enqueue_call(msg, now_ns=now_ns, process_at=at, unique_ttl=60 if unique else 0)
        assert call.script == script
        b = Broker(url)
        try:
            assert b.run(call) == 1
        finally:
            b.close()

    return run


# The generic list: (id, queue or None, run). Later scripts are added here.
SCENARIOS: list[Any] = [
    pytest.param(name, q, client_run(q, fn), id=f"client-{name}-{q}")
    for name, fn in CLIENT_SCENARIOS
    for q in QUEUES
] + [
    pytest.param(s, q, broker_run(q, s), id=f"broker-{s}-{q}")
    for s in sorted(ENQUEUE_SCRIPTS)
    for q in QUEUES
]


@pytest.mark.parametrize(("name", "queue", "run"), SCENARIOS)
def test_every_key_of_a_script_is_in_its_queue_slot(
    node: str, name: str, queue: str | None, run: Callable[[str], None]
) -> None:
    invocations = slots.assert_single_slot(node, run)
    scripted = [inv for inv in invocations if inv.is_script]
    assert scripted, f"{name} ran no script"
    if queue is not None:
        want = slots.keyslot(node, keys.pending_key(queue))
        for inv in scripted:
            assert inv.slots == {want}, inv
    if name in ENQUEUE_SCRIPTS:
        assert name in {inv.script for inv in scripted}
    if name == "enqueue_many":
        assert "enqueue_batch" in {inv.script for inv in scripted}


def test_every_enqueue_script_is_covered(node: str) -> None:
    seen: set[str | None] = set()
    r = redis.Redis.from_url(node)
    for _, fn in CLIENT_SCENARIOS:
        r.flushall()
        seen |= {inv.script for inv in slots.capture(node, client_run("q", fn)) if inv.is_script}
    r.close()
    assert seen >= ENQUEUE_SCRIPTS | {"enqueue_batch"}  # enqueue_batch: by enqueue_many


# ------------------------------------------------------------------ the harness can fail

ROGUE = "redis.call('SET', KEYS[1], '1'); redis.call('SET', 'asynq:{other}:x', '1'); return 1"


def test_harness_catches_an_undeclared_key_in_another_slot(node: str) -> None:
    def rogue(url: str) -> None:
        r = redis.Redis.from_url(url)
        r.eval(ROGUE, 1, "asynq:{mine}:x")
        r.close()

    with pytest.raises(AssertionError, match="more than one slot"):
        slots.assert_single_slot(node, rogue)


def test_cluster_node_rejects_declared_keys_in_two_slots(node: str) -> None:
    r = redis.Redis.from_url(node)
    # Redis says CROSSSLOT; redis-py keeps only the text after the error code.
    with pytest.raises(redis.ResponseError, match="don't hash to the same slot"):
        r.eval("return 1", 2, "asynq:{a}:x", "asynq:{b}:x")
    r.close()


def test_monitor_lines_parse_binary_arguments() -> None:
    source, args = slots.parse_monitor_line(
        b'+1700000000.000001 [0 lua] "HSET" "asynq:{q}:t:a" "msg" "\\x0a\\x01t\\"\\\\ \\r\\n"'
    )
    assert source == "lua"
    assert args == [b"HSET", b"asynq:{q}:t:a", b"msg", b'\x0a\x01t"\\ \r\n']
    source, args = slots.parse_monitor_line(b'+1.0 [0 127.0.0.1:5000] "PING"')
    assert (source, args) == ("127.0.0.1:5000", [b"PING"])
