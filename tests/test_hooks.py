"""Enqueue hooks (pyasynq.hooks): run around each enqueue, may add headers, see the outcome."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

import pyasynq
from pyasynq import Enqueueing, Options, Task


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[tuple[str, Enqueueing]] = []

    @contextlib.contextmanager
    def __call__(self, ev: Enqueueing) -> Iterator[None]:
        self.seen.append(("enter", ev))
        ev.headers["hook"] = self.name
        ev.headers[f"by-{self.name}"] = "1"
        yield
        self.seen.append(("exit", ev))


def test_hooks_add_headers_and_see_the_stored_task(redis_url: str, r) -> None:
    a, b = Recorder("a"), Recorder("b")
    with pyasynq.Client(redis_url, enqueue_hooks=[a, b]) as client:
        task = Task("t", b"x", headers={"hook": "task's", "own": "1"}, queue="q1")
        info = client.enqueue(task)
    with pyasynq.Inspector(redis_url) as inspector:
        stored = inspector.get_task_info("q1", info.id)
    # Hook headers win over the task's; the last hook wins among hooks.
    assert stored.headers == {"hook": "b", "own": "1", "by-a": "1", "by-b": "1"}
    assert [s for s, _ in a.seen] == ["enter", "exit"]
    ev = a.seen[0][1]
    assert ev.queue == "q1" and ev.info == info and ev.error is None


def test_a_failed_enqueue_reaches_the_hook_as_error(redis_url: str, r) -> None:
    rec = Recorder("a")
    with pyasynq.Client(redis_url, enqueue_hooks=[rec]) as client:
        client.enqueue(Task("t"), task_id="same")
        with pytest.raises(pyasynq.TaskIDConflictError):
            client.enqueue(Task("t"), task_id="same")
    ev = rec.seen[-1][1]
    assert ev.info is None and isinstance(ev.error, pyasynq.TaskIDConflictError)


async def test_enqueue_many_gives_each_task_its_own_event(redis_url: str, r) -> None:
    rec = Recorder("a")
    async with pyasynq.AsyncClient(redis_url, enqueue_hooks=[rec]) as client:
        await client.enqueue(Task("t"), task_id="taken")
        results = await client.enqueue_many(
            [Task("t"), (Task("t"), Options(task_id="taken")), (Task("u"), Options(queue="q2"))]
        )
    # One exit per task, in reverse order of entering (an ExitStack).
    events = [ev for step, ev in reversed(rec.seen[2:]) if step == "exit"]
    assert [ev.task.type for ev in events] == ["t", "t", "u"]
    assert events[0].info == results[0].info and events[0].info is not None
    assert isinstance(events[1].error, pyasynq.TaskIDConflictError)
    assert events[2].queue == "q2" and events[2].info is not None
    with pyasynq.Inspector(redis_url) as inspector:
        assert inspector.get_task_info("q2", events[2].info.id).headers["hook"] == "a"


def test_hooks_must_be_callable(redis_url: str) -> None:
    with pytest.raises(TypeError, match="enqueue hooks must be callable"):
        pyasynq.Client(redis_url, enqueue_hooks=["nope"])  # type: ignore[list-item]
