"""Whatever names, ids, headers and payloads a user gives go through enqueue -> Redis ->
handler byte-exact, and write nothing but the task's own keys: no name can reach another
queue's keys or a global key. Names pyasynq refuses are refused before anything is
written."""

from __future__ import annotations

import time

import pytest
import redis
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pyasynq import Client, Task, current_task
from pyasynq._rdb import keys
from pyasynq._rdb.ops import processing
from pyasynq._sync.broker import Broker
from pyasynq.testing import run_until_idle

from .strategies import examples, headers, name_text, payloads, valid_name, valid_queue

pytestmark = pytest.mark.single_node("snapshots the whole keyspace of one node")


@pytest.fixture(scope="module")
def c(redis_url: str) -> Client:
    client = Client(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def b(redis_url: str) -> Broker:
    broker = Broker(redis_url)
    yield broker
    broker.close()


@pytest.fixture(scope="module")
def rr(redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def keyspace(rr: redis.Redis) -> set[bytes]:
    return set(rr.scan_iter(count=1000))


@settings(max_examples=examples(50))
@given(queue=valid_queue, task_id=valid_name, type_=valid_name, payload=payloads, hdrs=headers)
@example(queue="a:b", task_id="x:t:y", type_="t", payload=b"", hdrs={})
@example(queue="q u e u e", task_id="id}{", type_="{t}", payload=b"\x00\xff", hdrs={"": ""})
@example(
    queue="漢字😀", task_id="asynq:{default}:t:1", type_="é", payload=b"\r\n", hdrs={"k": "\x00"}
)
def test_enqueue_stores_exactly_the_task_and_dequeues_it_byte_exact(  # noqa: PLR0917
    c: Client, b: Broker, rr: redis.Redis,
    queue: str, task_id: str, type_: str, payload: bytes, hdrs: dict[str, str],
) -> None:  # fmt: skip
    rr.flushdb()
    info = c.enqueue(Task(type_, payload, headers=hdrs), queue=queue, task_id=task_id)
    assert (info.id, info.queue, info.type, info.payload) == (task_id, queue, type_, payload)

    expected = {
        keys.ALL_QUEUES.encode(),
        keys.task_key(queue, task_id).encode(),
        keys.pending_key(queue).encode(),
    }
    assert keyspace(rr) == expected
    assert rr.smembers(keys.ALL_QUEUES) == {queue.encode()}
    assert rr.lrange(keys.pending_key(queue), 0, -1) == [task_id.encode()]

    leased = processing.dequeue_result(queue, b.run(processing.dequeue(queue, time.time(), "t")))
    assert leased is not None and leased.problem == "" and leased.msg is not None
    m = leased.msg
    assert (m.id, m.queue, m.type, m.payload, m.headers) == (task_id, queue, type_, payload, hdrs)
    # Dequeuing writes only the queue's own active list and lease.
    assert keyspace(rr) == expected - {keys.pending_key(queue).encode()} | {
        keys.active_key(queue).encode(),
        keys.lease_key(queue).encode(),
    }


def _refused(name: str, *, queue: bool) -> bool:
    if not name.strip() or any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in name):
        return True
    return queue and ("{" in name or "}" in name)


@settings(max_examples=examples(50))
@given(queue=name_text, task_id=name_text, type_=name_text)
@example(queue="{a}", task_id="t", type_="t")
@example(queue="a}:pending", task_id="t", type_="t")
@example(queue="q", task_id="a\nb", type_="t")
@example(queue=" ", task_id="t", type_="t")
def test_a_name_is_either_stored_as_given_or_refused_before_any_write(
    c: Client, rr: redis.Redis, queue: str, task_id: str, type_: str
) -> None:
    rr.flushdb()
    refused = (
        _refused(queue, queue=True)
        or _refused(task_id, queue=False)
        or _refused(type_, queue=False)
    )
    if refused:
        with pytest.raises((ValueError, TypeError)):
            c.enqueue(Task(type_), queue=queue, task_id=task_id)
        assert keyspace(rr) == set()
    else:
        c.enqueue(Task(type_), queue=queue, task_id=task_id)
        assert keys.task_key(queue, task_id).encode() in keyspace(rr)


@pytest.mark.parametrize(
    "where", ["queue", "task_id", "type", "header key", "header value", "group"]
)
def test_a_lone_surrogate_is_refused_at_the_call_and_writes_nothing(
    c: Client, rr: redis.Redis, where: str
) -> None:
    # "\ud800" is a str that no encoding can write: Python lets it through decoding with
    # surrogateescape; it must not reach Redis half-written.
    rr.flushdb()
    bad = "x\ud800"
    kw: dict[str, object] = {}
    type_, hdrs = "t", {}
    if where == "type":
        type_ = bad
    elif where == "header key":
        hdrs = {bad: "v"}
    elif where == "header value":
        hdrs = {"k": bad}
    else:
        kw[where] = bad
    with pytest.raises(ValueError, match="lone surrogate") as err:
        c.enqueue(Task(type_, headers=hdrs), **kw)  # type: ignore[arg-type]
    assert not isinstance(err.value, UnicodeError)  # ours, saying what to do
    assert keyspace(rr) == set()


task_specs = st.lists(
    st.tuples(valid_queue, valid_name, valid_name, payloads, headers),
    min_size=1,
    max_size=6,
    unique_by=lambda t: t[0],  # one task per queue: each queue gets its own id space
)


@settings(max_examples=examples(5))
@given(specs=task_specs)
def test_the_handler_gets_every_task_byte_exact(
    redis_url: str,
    c: Client,
    rr: redis.Redis,
    specs: list[tuple[str, str, str, bytes, dict[str, str]]],
) -> None:
    rr.flushdb()
    for queue, task_id, type_, payload, hdrs in specs:
        c.enqueue(Task(type_, payload, headers=hdrs), queue=queue, task_id=task_id)
    seen: list[tuple[str, str, str, bytes | None, dict[str, str]]] = []

    def handler(task: Task) -> None:
        ctx = current_task()
        seen.append((ctx.queue, ctx.id, task.type, task.payload, dict(task.headers)))

    report = run_until_idle(
        redis_url, handler, queues={q: 1 for q, *_ in specs}, timeout=20, concurrency=2
    )
    assert not report.errors
    assert sorted(seen) == sorted(specs)
    # Nothing but the global registries and each queue's counters is left behind.
    for key in keyspace(rr):
        q = keys.queue_from_key(key.decode("utf-8", "surrogateescape"))
        assert q is None or q in {s[0] for s in specs}, key
