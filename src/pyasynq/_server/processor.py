"""The processor: takes tasks from the queues in priority order and runs their handlers.

One dequeue loop holds a semaphore of ``concurrency`` tokens; a token is taken before each
dequeue attempt and given back when the queues were empty or the task's worker finished,
so at most ``concurrency`` tasks are active here (wire spec 5.2). Each task runs in its own
asyncio task that waits for the first of: the handler's result, its deadline, a cancel
request, the loss of its lease, or the shutdown abort (5.3), then writes the outcome (5.4).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pyasynq._rdb.codec import TaskMessage
from pyasynq._rdb.ops import Op, processing
from pyasynq.context import ResultWriter, TaskContext, set_current
from pyasynq.errors import BrokerError, LeaseExpiredError, RevokeTask, SkipRetry
from pyasynq.options import Options
from pyasynq.task import Task

from .base import ActiveTask, Runtime, run_write

if TYPE_CHECKING:
    from pyasynq.mux import ServeMux

    from .syncer import Syncer
    from .threads import ThreadRunner

DEFAULT_TIMEOUT = 1800.0  # used when a task has neither timeout nor deadline (Go logs an error)


class DeadlineExceeded(Exception):
    def __init__(self) -> None:
        super().__init__("context deadline exceeded")


class Aborted(Exception):
    """The shutdown timeout fired while the handler ran: requeue the task."""


class Canceled(Exception):
    def __init__(self) -> None:
        super().__init__("context canceled")


def error_text(exc: BaseException) -> str:
    """What asynq stores in error_msg: the error's text."""
    return str(exc) or type(exc).__name__


def wraps(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``exc`` is ``kind`` or has it in its cause/context chain (Go's errors.Is)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kind):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def task_deadline(msg: TaskMessage, now: float) -> float:
    """min(now + timeout, deadline) when both are set (wire spec 5.3)."""
    if msg.timeout and msg.deadline:
        return min(now + msg.timeout, float(msg.deadline))
    if msg.timeout:
        return now + msg.timeout
    if msg.deadline:
        return float(msg.deadline)
    return now + DEFAULT_TIMEOUT


class Processor:
    name = "processor"

    def __init__(self, rt: Runtime, mux: ServeMux, threads: ThreadRunner, syncer: Syncer) -> None:
        self.rt = rt
        self.mux = mux
        self.threads = threads
        self.syncer = syncer
        cfg = rt.config
        self.sema = asyncio.Semaphore(cfg.concurrency)
        self.abort = asyncio.Event()  # shutdown timeout fired: requeue what still runs
        self.running: set[asyncio.Task[None]] = set()
        self._prio = cfg.normalized_queues()
        self._strict = sorted(self._prio, key=lambda q: -self._prio[q])
        self._lease = cfg.seconds("lease_duration")
        self._check = cfg.seconds("task_check_interval")
        self._tokens = (f"{rt.identity.server_id}:{n}" for n in itertools.count(1))
        self._wake = asyncio.Event()

    def queue_order(self) -> list[str]:
        """The order in which to try the queues for one dequeue (wire spec 5.1)."""
        if len(self._prio) == 1:
            return self._strict
        if self.rt.config.strict_priority:
            return self._strict
        names = [q for q, p in self._prio.items() for _ in range(p)]
        random.shuffle(names)
        return list(dict.fromkeys(names))

    def notify(self) -> None:
        """Work may be available: cut the idle sleep short."""
        self._wake.set()

    async def run(self) -> None:
        rt = self.rt
        while not rt.stopping.is_set():
            await self.sema.acquire()
            if rt.stopping.is_set():
                self.sema.release()
                break
            try:
                found = await self._dequeue()
            except BrokerError as exc:
                self.sema.release()
                rt.log.error("processor: dequeue failed: %s", exc)
                await self._idle(1.0)
                continue
            if found is None:
                self.sema.release()
                await self._idle(self._check / 2 + random.uniform(0, self._check))
                continue
            msg, token = found
            t = asyncio.create_task(self._work(msg, token), name=f"pyasynq-task-{msg.id}")
            self.running.add(t)
            t.add_done_callback(self.running.discard)

    async def _idle(self, seconds: float) -> None:
        self._wake.clear()
        stop = asyncio.create_task(self.rt.stopping.wait())
        wake = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait({stop, wake}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            wake.cancel()

    async def _dequeue(self) -> tuple[TaskMessage, str] | None:
        rt = self.rt
        for q in self.queue_order():
            token = next(self._tokens)
            op = processing.dequeue(q, rt.clock.now(), token, lease_duration=int(self._lease))
            leased = processing.dequeue_result(q, await rt.broker.run(op))
            if leased is None:
                continue
            if leased.msg is None:
                # A record we cannot run must not block the queue: set it aside, go on.
                rt.log.error("task %s in %s: %s; quarantined", leased.task_id, q, leased.problem)
                await rt.broker.run(processing.quarantine(q, leased.task_id, leased.problem))
                continue
            return leased.msg, token
        return None

    async def _work(self, msg: TaskMessage, token: str) -> None:
        rt = self.rt
        now = rt.clock.now()
        deadline = task_deadline(msg, now)
        active = ActiveTask(msg=msg, token=token, started=now, deadline=deadline,
                            lease_until=now + self._lease)  # fmt: skip
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        active.waker = lambda: loop.call_soon_threadsafe(wake.set)
        rt.workers.add(active)
        try:
            err = await self._run_handler(active, wake, deadline)
            if isinstance(err, Aborted):
                await self._requeue(active)
            else:
                await self._finish(active, err)
        except Exception as exc:
            rt.log.error("processor: task %s: unexpected failure: %s", msg.id, exc)
        finally:
            rt.workers.remove(msg.id)
            active.cancel.set()
            self.sema.release()

    async def _run_handler(
        self, active: ActiveTask, wake: asyncio.Event, deadline: float
    ) -> BaseException | None:
        """The handler's error (None on success), or Aborted on shutdown."""
        rt, msg = self.rt, active.msg
        remaining = deadline - rt.clock.now()
        if remaining <= 0:
            return DeadlineExceeded()
        task = Task.__new__(Task)
        task.type, task.payload, task.headers = msg.type, msg.payload, dict(msg.headers)
        task.options = _NO_OPTIONS
        writer = ResultWriter(msg.id, self._writer(msg), self._writer_sync(msg), active.cancel)
        task._result_writer = writer
        ctx = TaskContext(
            id=msg.id, type=msg.type, queue=msg.queue, retry_count=msg.retried,
            max_retry=msg.retry, deadline=_utc(deadline), result_writer=writer,
            _done=active.cancel,
        )  # fmt: skip
        handler = self.mux.resolve(msg.type, self.threads.run)

        async def call() -> None:
            set_current(ctx)
            await handler(task)

        job = asyncio.create_task(call())
        waiter = asyncio.create_task(wake.wait())
        abort = asyncio.create_task(self.abort.wait())
        try:
            done, _ = await asyncio.wait(
                {job, waiter, abort}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
            abort.cancel()
        if job in done:
            return job.exception()
        # The handler is still running: end its context. An async handler is cancelled;
        # a sync one is abandoned (threads cannot be killed) and sees ctx.cancelled.
        active.cancel.set()
        job.cancel()
        if self.abort.is_set():
            return Aborted()
        if active.lease_lost.is_set():
            return LeaseExpiredError()
        if active.cancel_requested:
            return Canceled()
        return DeadlineExceeded()

    def _writer(self, msg: TaskMessage):  # type: ignore[no-untyped-def]
        async def write(data: bytes) -> None:
            await self.rt.broker.run(processing.write_result(msg.queue, msg.id, data))

        return write

    def _writer_sync(self, msg: TaskMessage):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()

        def write(data: bytes) -> None:
            coro = self.rt.broker.run(processing.write_result(msg.queue, msg.id, data))
            asyncio.run_coroutine_threadsafe(coro, loop).result()

        return write

    async def _finish(self, active: ActiveTask, err: BaseException | None) -> None:
        rt, msg, cfg = self.rt, active.msg, self.rt.config
        now = rt.clock.now()
        if err is not None and cfg.error_handler is not None:
            await self._call_error_handler(msg, err)
        if err is None or wraps(err, RevokeTask):
            if err is None and msg.retention > 0:
                op = processing.mark_complete(msg, now, active.token)
            else:
                op = processing.done(msg, now, active.token)
        elif msg.retried >= msg.retry or wraps(err, SkipRetry):
            op = processing.archive(msg, now, error_text(err), active.token)
        else:
            delay = self._retry_delay(msg, err)
            is_failure = bool(cfg.is_failure(err))
            op = processing.retry(
                msg, now=now, retry_at=now + delay, err_msg=error_text(err),
                is_failure=is_failure, token=active.token,
            )  # fmt: skip
        await self._write(active, op)

    async def _requeue(self, active: ActiveTask) -> None:
        await self._write(active, processing.requeue(active.msg, active.token))

    async def _write(self, active: ActiveTask, op: Op) -> None:
        """Send the post-processing write unless our lease is gone; on a connection
        failure hand it to the syncer, which retries until the lease ends."""
        rt = self.rt
        if not rt.workers.lease_valid(active.msg.id, rt.clock.now()):
            rt.log.warn(
                "task %s: lease expired before its outcome was written; the recoverer "
                "will take it", active.msg.id,
            )  # fmt: skip
            return
        try:
            await run_write(rt, op)
        except LeaseExpiredError:
            rt.log.warn("task %s: lease lost to another worker; outcome dropped", active.msg.id)
        except processing.DEFINITIVE_ERRORS as exc:
            rt.log.warn("task %s: %s", active.msg.id, exc)
        except BrokerError as exc:
            rt.log.warn("task %s: write failed, will retry: %s", active.msg.id, exc)
            self.syncer.add(op, until=active.lease_until)

    def _retry_delay(self, msg: TaskMessage, err: BaseException) -> float:
        task = Task(msg.type, msg.payload, headers=msg.headers or None)
        d = self.rt.config.retry_delay_func(msg.retried, err, task)
        return d.total_seconds() if hasattr(d, "total_seconds") else float(d)

    async def _call_error_handler(self, msg: TaskMessage, err: BaseException) -> None:
        handler = self.rt.config.error_handler
        assert handler is not None
        task = Task(msg.type, msg.payload, headers=msg.headers or None)
        try:
            res = handler(task, err)
            if asyncio.iscoroutine(res):
                await res
        except Exception as exc:
            self.rt.log.error("error handler failed for task %s: %s", msg.id, exc)

    async def shutdown(self) -> None:
        """Stop dequeuing, give running tasks ``shutdown_timeout`` to finish, then make the
        rest requeue themselves (wire spec 5.5)."""
        rt = self.rt
        rt.stopping.set()
        self.notify()
        if not self.running:
            return
        _, pending = await asyncio.wait(
            set(self.running), timeout=rt.config.seconds("shutdown_timeout")
        )
        if pending:
            self.abort.set()
            await asyncio.wait(pending, timeout=5.0)


_NO_OPTIONS = Options()


def _utc(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)
