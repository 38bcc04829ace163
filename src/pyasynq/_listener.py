"""Result listeners: how ``Client.wait_result`` learns that a task finished, without a
connection or a poll loop per waiter.

A client has at most one listener, started by its first ``wait_result``. The listener
holds one Pub/Sub subscription to a channel of its own and routes each message to the
waiters of that task (a dict keyed by task key), so thousands of waiters cost one
connection. A waiter first subscribes (through the listener), then runs the watch script
(``_rdb/ops/results.py``), which reads the task's state and registers the channel with the
task; pyasynq servers publish the final outcome and progress to it. Tasks finished by a Go
server are not announced, and a message sent while the subscription was down is lost, so
each waiter also re-reads the task: every ``poll_interval`` seconds, doubling up to
``max_poll_interval``, and at once after every resubscription.

``AsyncResultListener`` serves ``AsyncClient`` (a listener task on the event loop; the
polls of all waiters go to Redis together in one pipeline). ``ResultListener`` serves the
sync ``Client`` (a daemon thread holds the subscription; each waiting thread polls its
own task). scripts/unasync.py maps the first name to the second.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import queue as stdqueue
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyasynq._rdb import keys
from pyasynq._rdb.ops import Call, results
from pyasynq.errors import BrokerError, ResultTimeoutError, TaskFailedError, TaskNotFoundError
from pyasynq.task import TaskProgress

if TYPE_CHECKING:
    from pyasynq._async.broker import AsyncBroker
    from pyasynq._sync.broker import Broker

logger = logging.getLogger(__name__)

POLL_INTERVAL = 1.0
MAX_POLL_INTERVAL = 5.0
ProgressCallback = Callable[[TaskProgress], Any]
_RESUBSCRIBED = ("resubscribed", b"")
GONE_HINT = (
    "it was deleted, or it completed without retention before the wait began (enqueue "
    "with retention=... to keep its result for wait_result)"
)


class _Tracker:
    """One waiter's view of its task: turns outcomes and notices into a result, an
    error, or a progress event to pass on."""

    def __init__(self, queue: str, task_id: str, timeout: float | None) -> None:
        self.queue = queue
        self.task_id = task_id
        self.timeout = timeout
        self.state = "unknown"
        self.progress: TaskProgress | None = None
        self.interval = POLL_INTERVAL

    def take(self, o: results.Outcome) -> tuple[bool, bytes, TaskProgress | None]:
        """(finished, result, new progress); raises for a failed or vanished task."""
        if o.gone:
            raise TaskNotFoundError(self.queue, self.task_id, GONE_HINT)
        self.state = o.state
        if o.state == results.ARCHIVED:
            msg = o.msg
            raise TaskFailedError(
                self.queue,
                self.task_id,
                msg.error_msg if msg is not None else "",
                msg.retried if msg is not None else 0,
            )
        if o.state == results.COMPLETED:
            return True, o.result, None
        return False, b"", self.moved(o.progress)

    def moved(self, p: TaskProgress | None) -> TaskProgress | None:
        if p is None or p == self.progress:
            return None
        self.progress = p
        return p

    def notice(self, kind: str, data: bytes) -> tuple[bool, bytes, TaskProgress | None]:
        if kind == results.PROGRESS:
            return False, b"", self.moved(results.parse_progress(data))
        return self.take(results.notice_outcome(kind, data))

    def backoff(self) -> None:
        self.interval = min(self.interval * 2, MAX_POLL_INTERVAL)

    def timed_out(self) -> ResultTimeoutError:
        return ResultTimeoutError(
            f"task {self.task_id!r} in queue {self.queue!r} did not finish within "
            f"{self.timeout}s (last seen {self.state}); it goes on: wait again, or see "
            f"`pyasynq task inspect -q {self.queue} -i {self.task_id}`"
        )


def _route(waiters: dict[str, set[Any]], data: bytes) -> tuple[set[Any], tuple[str, bytes]]:
    try:
        kind, key, rest = results.parse_notice(data)
    except ValueError:
        logger.warning("pyasynq result listener: ignored a malformed message %r", data[:80])
        return set(), ("", b"")
    return set(waiters.get(key, ())), (kind, rest)


class AsyncResultListener:
    """Waits for task outcomes for one AsyncClient (see the module docstring)."""

    def __init__(self, broker: AsyncBroker) -> None:
        self._broker = broker
        self.channel = results.channel(uuid.uuid4().hex)
        self._waiters: dict[str, set[asyncio.Queue[tuple[str, bytes]]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._polls: list[tuple[Call, asyncio.Future[object]]] = []
        self._poller: asyncio.Task[None] | None = None

    async def wait(
        self,
        queue: str,
        task_id: str,
        timeout: float | None,
        on_progress: ProgressCallback | None,
    ) -> bytes:
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        t = _Tracker(queue, task_id, timeout)
        if self._listener is None or self._listener.done():
            self._listener = loop.create_task(self._listen(), name="pyasynq-result-listener")
        try:
            await asyncio.wait_for(self._subscribed.wait(), None if end is None else timeout)
        except TimeoutError:
            raise t.timed_out() from None
        key = keys.task_key(queue, task_id)
        events: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._waiters.setdefault(key, set()).add(events)
        call = results.watch(queue, task_id, self.channel)
        try:
            done, result, p = t.take(results.outcome(await self._poll(call)))
            while not done:
                if p is not None and on_progress is not None:
                    await _call(on_progress, p)
                left = t.interval if end is None else min(t.interval, end - loop.time())
                try:
                    kind, data = await asyncio.wait_for(events.get(), max(left, 0))
                except TimeoutError:
                    if end is not None and loop.time() >= end:
                        raise t.timed_out() from None
                    kind, data = _RESUBSCRIBED
                    t.backoff()
                if (kind, data) == _RESUBSCRIBED:
                    try:
                        reply = await self._poll(call)
                        o = results.outcome(reply)
                    except BrokerError as exc:
                        logger.debug("pyasynq: polling task %s failed: %s", task_id, exc)
                        done, p = False, None
                        continue
                    if o.gone:  # a final notice may have come in meanwhile
                        while not events.empty():
                            done, result, p = t.notice(*events.get_nowait())
                            if done:
                                return result
                    done, result, p = t.take(o)
                else:
                    done, result, p = t.notice(kind, data)
            return result
        finally:
            mine = self._waiters.get(key)
            if mine is not None:
                mine.discard(events)
                if not mine:
                    del self._waiters[key]

    async def _poll(self, call: Call) -> object:
        """Run ``call`` in the next pipeline of polls (one round trip for all waiters)."""
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._polls.append((call, fut))
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            while self._polls:
                batch = self._polls[:1000]
                del self._polls[:1000]
                try:
                    replies = await self._broker.run_many([c for c, _ in batch])
                except BrokerError as exc:
                    replies = [exc] * len(batch)
                for (_, fut), reply in zip(batch, replies, strict=True):
                    if not fut.done():
                        fut.set_result(reply)
        finally:
            self._poller = None

    async def _listen(self) -> None:
        delay = 0.1
        first = True

        def subscribed() -> None:
            nonlocal first, delay
            self._subscribed.set()
            delay = 0.1
            if not first:  # messages may have been lost meanwhile: every waiter re-reads
                for waiters in self._waiters.values():
                    for events in waiters:
                        events.put_nowait(_RESUBSCRIBED)
            first = False

        while True:
            try:
                await self._broker.ping()  # a cluster client learns its nodes here
                stream = self._broker.messages(self.channel, on_subscribed=subscribed)
                async for _, data in stream:
                    targets, event = _route(self._waiters, data)
                    for events in targets:
                        events.put_nowait(event)
            except Exception as exc:  # BrokerError, or a client-side failure: same cure
                self._subscribed.clear()
                logger.warning(
                    "pyasynq result listener: %s; resubscribing in %.1fs (waiters poll "
                    "meanwhile)", exc, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_POLL_INTERVAL)

    async def aclose(self) -> None:
        task, self._listener = self._listener, None
        if task is None:
            return
        # redis-py can swallow a cancellation that lands while SUBSCRIBE connects.
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if not task.cancelled():
            with contextlib.suppress(BaseException):
                task.exception()


async def _call(fn: ProgressCallback, p: TaskProgress) -> None:
    res = fn(p)
    if inspect.isawaitable(res):
        await res


class ResultListener:
    """Waits for task outcomes for one sync Client (see the module docstring)."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self.channel = results.channel(uuid.uuid4().hex)
        self._lock = threading.Lock()
        self._waiters: dict[str, set[stdqueue.SimpleQueue[tuple[str, bytes]]]] = {}
        self._thread: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._closed = False

    def wait(
        self,
        queue: str,
        task_id: str,
        timeout: float | None,
        on_progress: ProgressCallback | None,
    ) -> bytes:
        end = None if timeout is None else time.monotonic() + timeout
        t = _Tracker(queue, task_id, timeout)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._closed = False
                self._thread = threading.Thread(
                    target=self._listen, name="pyasynq-result-listener", daemon=True
                )
                self._thread.start()
        if not self._subscribed.wait(timeout):
            raise t.timed_out()
        key = keys.task_key(queue, task_id)
        events: stdqueue.SimpleQueue[tuple[str, bytes]] = stdqueue.SimpleQueue()
        with self._lock:
            self._waiters.setdefault(key, set()).add(events)
        call = results.watch(queue, task_id, self.channel)
        try:
            done, result, p = t.take(results.outcome(self._broker.run(call)))
            while not done:
                if p is not None and on_progress is not None:
                    on_progress(p)
                left = t.interval if end is None else min(t.interval, end - time.monotonic())
                try:
                    kind, data = events.get(timeout=max(left, 0))
                except stdqueue.Empty:
                    if end is not None and time.monotonic() >= end:
                        raise t.timed_out() from None
                    kind, data = _RESUBSCRIBED
                    t.backoff()
                if (kind, data) == _RESUBSCRIBED:
                    try:
                        o = results.outcome(self._broker.run(call))
                    except BrokerError as exc:
                        logger.debug("pyasynq: polling task %s failed: %s", task_id, exc)
                        done, p = False, None
                        continue
                    if o.gone:
                        while not events.empty():
                            done, result, p = t.notice(*events.get_nowait())
                            if done:
                                return result
                    done, result, p = t.take(o)
                else:
                    done, result, p = t.notice(kind, data)
            return result
        finally:
            with self._lock:
                mine = self._waiters.get(key)
                if mine is not None:
                    mine.discard(events)
                    if not mine:
                        del self._waiters[key]

    def _listen(self) -> None:
        delay = 0.1
        first = True

        def subscribed() -> None:
            nonlocal first, delay
            self._subscribed.set()
            delay = 0.1
            if not first:
                with self._lock:
                    for waiters in self._waiters.values():
                        for events in waiters:
                            events.put(_RESUBSCRIBED)
            first = False

        while not self._closed:
            try:
                stream = self._broker.messages(
                    self.channel, on_subscribed=subscribed, until=lambda: self._closed
                )
                for _, data in stream:
                    with self._lock:
                        targets, event = _route(self._waiters, data)
                    for events in targets:
                        events.put(event)
            except Exception as exc:  # BrokerError, or a client-side failure: same cure
                self._subscribed.clear()
                if self._closed:
                    return
                logger.warning(
                    "pyasynq result listener: %s; resubscribing in %.1fs (waiters poll "
                    "meanwhile)", exc, delay,
                )  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, MAX_POLL_INTERVAL)

    def close(self) -> None:
        self._closed = True
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2.0)  # the subscription checks the flag every second
        self._subscribed.clear()
