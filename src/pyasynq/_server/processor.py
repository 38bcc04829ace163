"""The processor: takes tasks from the queues in priority order and runs their handlers.

One dequeue loop counts ``concurrency`` slots; a slot is taken before each dequeue
attempt and given back when the queues were empty or the task's worker finished,
so at most ``concurrency`` tasks are active here (wire spec 5.2). When several slots are
free, one ``dequeue_many`` call leases up to that many tasks at once. Each task runs in its
own asyncio task that waits for the first of: the handler's result, its deadline, a cancel
request, the loss of its lease, or the shutdown abort (5.3), then writes the outcome (5.4).
Outcome writes that are ready together go to Redis in one pipelined round trip
(:class:`WriteBatcher`); each is still its own fenced script with its own reply.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import math
import random
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pyasynq import _eventloop
from pyasynq._rdb.codec import TaskMessage
from pyasynq._rdb.ops import Op, processing, snooze
from pyasynq.config import default_retry_delay
from pyasynq.context import LazyContext, ResultWriter, TaskContext, _current, peek, set_current
from pyasynq.errors import BrokerError, LeaseExpiredError, RevokeTask, SkipRetry, Snooze
from pyasynq.options import NO_OPTIONS
from pyasynq.task import Task

from .base import ActiveTask, Flag, Runtime
from .dangling import DanglingReport
from .failures import Aborted, Canceled, DeadlineExceeded, FailureLog, error_text
from .lender import Lender
from .limiter import run_limited
from .metrics_hook import report_task_done, report_task_start
from .progress import ProgressReporter

if TYPE_CHECKING:
    from pyasynq._async.broker import AsyncBroker
    from pyasynq.mux import ServeMux

    from .limiter import Limiter
    from .syncer import Syncer
    from .threads import ThreadRunner

LINGER = 1.0  # seconds a cancelled async handler gets to end before it is reported
DEFAULT_TIMEOUT = 1800.0  # used when a task has neither timeout nor deadline (Go logs an error)
E = TypeVar("E", bound=BaseException)


def wraps(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``exc`` is ``kind`` or has it in its chain (Go's errors.Is): the explicit
    cause (``raise X from kind()``) and the implicit context, unless ``from None``
    detached it."""
    return in_chain(exc, kind) is not None


def in_chain(exc: BaseException, kind: type[E]) -> E | None:
    """The first ``kind`` in ``exc``'s chain, as :func:`wraps` walks it (Go's errors.As)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kind):
            return cur
        seen.add(id(cur))
        if cur.__cause__ is not None:
            cur = cur.__cause__
        elif cur.__suppress_context__:
            cur = None
        else:
            cur = cur.__context__
    return None


def task_deadline(msg: TaskMessage, now: float) -> float:
    """min(now + timeout, deadline) when both are set (wire spec 5.3)."""
    if msg.timeout and msg.deadline:
        return min(now + msg.timeout, float(msg.deadline))
    if msg.timeout:
        return now + msg.timeout
    if msg.deadline:
        return float(msg.deadline)
    return now + DEFAULT_TIMEOUT


def queue_order(
    priorities: Mapping[str, int], strict: bool, rng: random.Random | None = None
) -> list[str]:
    """The order in which to try the queues for one dequeue (wire spec 5.1): strict =
    priority descending; else each name repeated ``priority`` times, shuffled, first
    occurrences kept, so queue q comes first with probability p_q / sum(p)."""
    if len(priorities) == 1 or strict:
        return sorted(priorities, key=lambda q: -priorities[q])
    names = [q for q, p in priorities.items() for _ in range(p)]
    (rng or random).shuffle(names)
    return list(dict.fromkeys(names))


DoneArgs = tuple[TaskMessage, float, str]  # what processing.done(msg, now, token) took
# Given a queue and how many of its tasks a round trip completes, the op that leases as
# many new ones and what to do with its reply (see Processor.refill), or None.
Refill = Callable[[str, int], "tuple[Op, Callable[[object], None]] | None"]


class WriteBatcher:
    """Pipelines task writes: a write goes out on the next turn of the event loop, and the
    writes that arrive while a round trip is in flight go together in the next one, so
    there is no timer and no added latency when writes are rare. ``done`` writes of one
    queue within one second are merged into one ``done_many`` call (the same keys and
    arguments, so the same effect). Each caller gets the reply of its own op (or the
    BrokerError of its op or of the whole round trip), never another task's.

    With ``refill``, each queue's done writes are followed in the same round trip by a
    dequeue of as many new tasks: Redis runs the two in order on one connection, so the
    finished tasks leave ``active`` before their successors enter it, and the worker
    saves a round trip per batch. The dequeue's reply goes to ``refill``'s handler
    before any caller's future resolves."""

    def __init__(
        self, broker: AsyncBroker, max_batch: int = 256, refill: Refill | None = None
    ) -> None:
        self._broker = broker
        self._max = max_batch
        self._refill = refill
        self._pending: list[tuple[Op | None, DoneArgs | None, asyncio.Future[object]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, op: Op | None, done: DoneArgs | None = None) -> object:
        """Send ``op`` and return its reply. ``done`` instead of ``op`` (or with it, when
        ``op`` is ``processing.done(*done)``) asks for a done write that may be merged;
        the single op is built only if it is sent alone."""
        if op is None and done is None:
            raise ValueError("WriteBatcher.run needs an op or done arguments")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[object] = loop.create_future()
        self._pending.append((op, done, fut))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max]
                del self._pending[: self._max]
                try:
                    replies = await self._send(batch)
                except BaseException:
                    for _, _, fut in batch:
                        fut.cancel()
                    raise
                for (_, _, fut), reply in zip(batch, replies, strict=True):
                    if not fut.done():
                        fut.set_result(reply)
        finally:
            self._flusher = None
            for _, _, fut in self._pending:  # only left behind when cancelled
                fut.cancel()
            self._pending.clear()

    async def _send(
        self, batch: list[tuple[Op | None, DoneArgs | None, asyncio.Future[object]]]
    ) -> list[object]:
        groups: dict[tuple[str, int], list[int]] = {}
        for i, (_, done, _) in enumerate(batch):
            if done is not None:
                groups.setdefault((done[0].queue, int(done[1])), []).append(i)
        wire: list[Op] = []
        plan: list[list[int]] = []  # per op sent: the batch items its reply answers
        merged: set[int] = set()
        for (queue, _), idx in groups.items():
            if len(idx) > 1:
                items = [d for i in idx if (d := batch[i][1]) is not None]
                tasks = [(msg, token) for msg, _, token in items]
                wire.append(processing.done_many(queue, items[0][1], tasks))
                plan.append(idx)
                merged.update(idx)
        for i, (op, done, _) in enumerate(batch):
            if i not in merged:
                wire.append(_single(op, done))
                plan.append([i])
        refills: list[tuple[int, Callable[[object], None]]] = []  # wire index, handler
        if self._refill is not None:
            done_per_queue: dict[str, int] = {}
            for (queue, _), idx in groups.items():
                done_per_queue[queue] = done_per_queue.get(queue, 0) + len(idx)
            for queue, n in done_per_queue.items():
                if (more := self._refill(queue, n)) is not None:
                    refills.append((len(wire), more[1]))
                    wire.append(more[0])
        try:
            if len(wire) == 1 and len(plan[0]) == 1:  # cheaper than a pipeline of one
                replies = [await self._broker.run(wire[0])]
            else:
                replies = list(await self._broker.run_many(wire))
        except BrokerError as exc:  # no reply at all: every op gets the failure
            replies = [exc] * len(wire)
        except Exception as exc:
            replies = [BrokerError(f"task writes failed: {exc!r}")] * len(wire)
        for at, handle in refills:
            handle(replies[at])
        out: list[object] = [None] * len(batch)
        for idx, reply in zip(plan, replies, strict=False):  # the refills come after
            parts = processing.done_many_result(reply, len(idx)) if len(idx) > 1 else [reply]
            for i, part in zip(idx, parts, strict=True):
                out[i] = part
        return out


class Deadlines:
    """Ends handlers at their deadline with one loop timer per 10 ms slice of deadlines
    rather than one per task: a timer per task was about a tenth of a no-op task's cost,
    and tasks started together share a slice. A context that ends up to 10 ms late is
    within what a deadline promises."""

    RESOLUTION = 0.01

    def __init__(self) -> None:
        self._slices: dict[int, tuple[asyncio.TimerHandle, set[asyncio.Future[None]]]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, delay: float, stop: asyncio.Future[None]) -> int:
        """Resolve ``stop`` ``delay`` seconds from now (rounded up to the slice); returns
        the key to :meth:`remove` it with."""
        key = math.ceil((loop.time() + delay) / self.RESOLUTION)
        entry = self._slices.get(key)
        if entry is None:
            entry = (loop.call_at(key * self.RESOLUTION, self._fire, key), set())
            self._slices[key] = entry
        entry[1].add(stop)
        return key

    def remove(self, key: int, stop: asyncio.Future[None]) -> None:
        entry = self._slices.get(key)
        if entry is None:
            return
        entry[1].discard(stop)
        if not entry[1]:
            entry[0].cancel()
            del self._slices[key]

    def _fire(self, key: int) -> None:
        entry = self._slices.pop(key, None)
        if entry is not None:
            for stop in entry[1]:
                _resolve(stop)


async def wait_any(*events: asyncio.Event, timeout: float | None = None) -> None:
    """Return when one of ``events`` is set or ``timeout`` seconds passed."""
    if any(e.is_set() for e in events):
        return
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


class Processor:
    name = "processor"

    def __init__(self, rt: Runtime, mux: ServeMux, threads: ThreadRunner, syncer: Syncer) -> None:
        self.rt = rt
        self.mux = mux
        self.threads = threads
        self.syncer = syncer
        cfg = rt.config
        self.concurrency = cfg.concurrency
        self.busy = 0  # slots taken (wire spec 5.2): dequeue attempts and running tasks
        self._slot_freed = asyncio.Event()
        self.abort = asyncio.Event()  # shutdown timeout fired: requeue what still runs
        self.running: set[asyncio.Task[None]] = set()
        self._prio = cfg.normalized_queues()
        self._lease = cfg.seconds("lease_duration")
        self._check = cfg.seconds("task_check_interval")
        self._tokens = (f"{rt.identity.server_id}:{n}" for n in itertools.count(1))
        self._wake = asyncio.Event()
        self._loop_started = False
        self._loop_exited = asyncio.Event()
        # With one queue, the done writes of a batch also lease its successors (refill).
        fuse = len(self._prio) == 1
        self._writes = WriteBatcher(rt.broker, refill=self.refill if fuse else None)
        self.progress = ProgressReporter(rt, self._writes.run)  # current_task().progress()
        self.lender = Lender(rt.broker.redis, cfg.handler_redis, rt.log)  # current_task().redis
        self._deadlines = Deadlines()
        self._stops: set[asyncio.Future[None]] = set()  # one per running handler, for abort
        self._dangling = DanglingReport(rt.log)
        # Handlers whose context ended but which still run (an async one that catches
        # CancelledError): watched, so shutdown can give up on them (see shutdown).
        self._lingering: dict[asyncio.Task[BaseException | None], TaskMessage] = {}
        self.failures = FailureLog(rt.log, mux)
        self.limiter: Limiter | None = None  # set when fleet-wide limits are configured

    def queue_order(self) -> list[str]:
        """The order in which to try the queues for one dequeue (wire spec 5.1)."""
        return queue_order(self._prio, self.rt.config.strict_priority)

    def notify(self) -> None:
        """Work may be available, or we are stopping: cut the idle sleep short."""
        self._wake.set()

    async def run(self) -> None:
        rt = self.rt
        self._loop_started = True
        try:
            while not rt.stopping.is_set():
                if not await self._acquire():
                    break
                # Clear before looking, so a wake-up that arrives while we look is kept.
                self._wake.clear()
                want = 1 + self._take_free()
                try:
                    found = await self._dequeue(want)
                except BrokerError as exc:
                    self._release(want)
                    rt.log.error("processor: dequeue failed: %s", exc)
                    await self._idle(1.0)
                    continue
                except BaseException:
                    self._release(want)
                    raise
                if not found:
                    self._release(want)
                    await self._idle(self._check / 2 + random.uniform(0, self._check))
                    continue
                if len(found) < want:
                    self._release(want - len(found))
                for msg, token, since in found:
                    self._spawn(msg, token, since)
        finally:
            self._loop_exited.set()

    def _spawn(self, msg: TaskMessage, token: str, pending_since: float | None = None) -> None:
        """Run ``msg`` in a task of its own; its slot is already taken."""
        if self.limiter is not None and (bound := self.limiter.lookup(msg.type)) is not None:
            self.start(run_limited(self, bound, msg, token, pending_since), msg.id)
            return
        t = asyncio.create_task(
            self._work(msg, token, pending_since), name=f"pyasynq-task-{msg.id}"
        )
        self.running.add(t)
        t.add_done_callback(self.running.discard)

    def start(self, coro: Coroutine[Any, Any, None], task_id: str) -> None:
        """Run a task's coroutine, watched by shutdown; its slot is already taken."""
        t = asyncio.create_task(coro, name=f"pyasynq-task-{task_id}")
        self.running.add(t)
        t.add_done_callback(self.running.discard)

    def refill(self, queue: str, n: int) -> tuple[Op, Callable[[object], None]] | None:
        """The dequeue that rides with the done writes of ``n`` tasks of ``queue`` (see
        WriteBatcher), and what to do with its reply; None once stopping.

        Only with a single queue, so the order of queues (wire spec 5.1) is not bent. The
        new tasks take the slots of the finished ones: in Redis the done script runs first,
        so the active count never exceeds the concurrency. Locally the new tasks count
        their slots before the finished ones give theirs back, which for a moment
        over-counts, holding back a dequeue, never adding one."""
        if self.rt.stopping.is_set() or self.abort.is_set() or queue not in self._prio:
            return None
        token = next(self._tokens)
        want = min(n, processing.DEQUEUE_MANY_MAX)
        op = processing.dequeue_many(
            queue, self.rt.clock.now(), token, want, lease_duration=int(self._lease)
        )

        def adopt(reply: object) -> None:
            try:
                if isinstance(reply, BaseException):
                    raise reply
                leased = processing.dequeue_many_result(queue, reply)
                self._dangling.add(queue, reply)
            except BrokerError as exc:
                # Tasks a lost reply leased are recovered when their leases expire.
                self.rt.log.error("processor: dequeue with the task writes failed: %s", exc)
                return
            if leased and self.rt.stopping.is_set():
                self.rt.log.debug(
                    "processor: %d task(s) leased with the last writes run during shutdown",
                    len(leased),
                )
            for item in leased:
                if item.msg is None:
                    self._set_aside(queue, item.task_id, item.problem)
                    continue
                self.busy += 1
                self._spawn(item.msg, token, item.pending_since)

        return op, adopt

    def _set_aside(self, queue: str, task_id: str, problem: str) -> None:
        self.rt.log.error("task %s in %s: %s; quarantined", task_id, queue, problem)
        t = asyncio.create_task(self.rt.broker.run(processing.quarantine(queue, task_id, problem)))
        self.running.add(t)
        t.add_done_callback(self.running.discard)
        t.add_done_callback(_log_failure(self.rt, f"quarantining task {task_id}"))

    async def stopped(self) -> None:
        """Return once the dequeue loop has ended (after ``rt.stopping`` was set)."""
        if self._loop_started:
            await self._loop_exited.wait()

    async def _acquire(self) -> bool:
        """Take a slot; False once stopping (then no slot is held)."""
        while self.busy >= self.concurrency and not self.rt.stopping.is_set():
            self._slot_freed.clear()
            await wait_any(self._slot_freed, self.rt.stopping)
        if self.rt.stopping.is_set():
            return False
        self.busy += 1
        return True

    def _take_free(self) -> int:
        """Take every other free slot too (at most DEQUEUE_MANY_MAX in all), so one
        dequeue_many call can fill them; returns how many were taken."""
        n = max(0, min(self.concurrency - self.busy, processing.DEQUEUE_MANY_MAX - 1))
        self.busy += n
        return n

    def _release(self, n: int = 1) -> None:
        self.busy -= n
        self._slot_freed.set()

    async def _idle(self, seconds: float) -> None:
        await wait_any(self.rt.stopping, self._wake, timeout=seconds)

    async def _dequeue(self, want: int = 1) -> list[tuple[TaskMessage, str, float | None]]:
        """Up to ``want`` tasks from the first queue (in this round's order) that has any.

        The tasks of one dequeue_many call share its attempt token. Fencing stays per task:
        the token is compared with each task hash's own ``attempt`` field, and a task can be
        in one call only once, while any later dequeue of it (after a recovery) comes with
        a new token; the heartbeater extends each (id, token) pair on its own."""
        rt = self.rt
        lease = int(self._lease)
        for q in self.queue_order():
            if rt.stopping.is_set():
                return []
            token = next(self._tokens)
            more = True
            while more:  # past any number of dangling ids, a bounded batch per call
                now = rt.clock.now()
                if want == 1:
                    reply = await rt.broker.run(
                        processing.dequeue(q, now, token, lease_duration=lease)
                    )
                    one = processing.dequeue_result(q, reply)
                    leased = [] if one is None else [one]
                else:
                    op = processing.dequeue_many(q, now, token, want, lease_duration=lease)
                    reply = await rt.broker.run(op)
                    leased = processing.dequeue_many_result(q, reply)
                more = self._dangling.add(q, reply) and not leased and not rt.stopping.is_set()
            found = []
            for item in leased:
                if item.msg is None:
                    # A record we cannot run must not block the queue: set it aside, go on.
                    rt.log.error("task %s in %s: %s; quarantined", item.task_id, q, item.problem)
                    await rt.broker.run(processing.quarantine(q, item.task_id, item.problem))
                    continue
                found.append((item.msg, token, item.pending_since))
            if found:
                return found
        return []

    async def _work(
        self, msg: TaskMessage, token: str, pending_since: float | None,
        ended: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        """Run the handler and write the outcome; ``ended`` is called once the handler is
        over, before the outcome is written."""
        rt = self.rt
        now = rt.clock.now()
        if pending_since is not None:
            report_task_start(rt, msg, max(0.0, now - pending_since))
        deadline = task_deadline(msg, now)
        active = ActiveTask(msg=msg, token=token, started=now, deadline=deadline,
                            lease_until=now + self._lease)  # fmt: skip
        loop = asyncio.get_running_loop()
        # Resolved by whatever ends the wait first: the handler, its deadline, a cancel
        # request or lost lease (other threads, via waker), or the shutdown abort.
        stop: asyncio.Future[None] = loop.create_future()
        active.waker = lambda: loop.call_soon_threadsafe(_resolve, stop)
        rt.workers.add(active)
        t0 = loop.time()
        try:
            err = await self._run_handler(active, stop, deadline)
            if ended is not None:
                ended()
            if isinstance(err, Aborted):
                await self._requeue(active)
            else:
                report_task_done(rt, msg, loop.time() - t0, err)
                await self._finish(active, err)
        except Exception as exc:
            rt.log.error("processor: task %s: unexpected failure: %s", msg.id, exc)
        finally:
            rt.workers.remove(msg.id)
            active.cancel.set()
            self._release()

    async def _run_handler(
        self, active: ActiveTask, stop: asyncio.Future[None], deadline: float
    ) -> BaseException | None:
        """The handler's error (None on success), or Aborted on shutdown."""
        rt, msg = self.rt, active.msg
        remaining = deadline - rt.clock.now()
        if remaining <= 0:
            return DeadlineExceeded()
        task = Task.__new__(Task)
        task.type, task.payload, task.headers = msg.type, msg.payload, dict(msg.headers)
        task.options = NO_OPTIONS
        loop = asyncio.get_running_loop()
        # The ResultWriter and TaskContext are built only if the handler asks for them.
        lazy = _TaskHandle(self, loop, active)
        task._result_writer = lazy
        handler = self.mux.resolve(msg.type, self.threads.run)

        async def call() -> BaseException | None:
            set_current(lazy)
            try:
                await handler(task)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                # SystemExit, KeyboardInterrupt & co. too: raised in a task, asyncio would
                # re-raise them out of the event loop and end the whole worker.
                return exc
            return None

        job = loop.create_task(call())
        job.add_done_callback(lambda _: _resolve(stop))
        timer = self._deadlines.add(loop, remaining, stop)
        self._stops.add(stop)
        if self.abort.is_set():
            _resolve(stop)
        try:
            await stop
        finally:
            self._deadlines.remove(timer, stop)
            self._stops.discard(stop)
        if job.done():
            if job.cancelled():  # the handler raised CancelledError itself
                return Canceled()
            return job.result()
        # The handler is still running: end its context. An async handler is cancelled;
        # a sync one is abandoned (threads cannot be killed) and sees ctx.cancelled.
        active.cancel.set()
        job.cancel()
        self._watch(job, msg)
        if self.abort.is_set():
            return Aborted()
        if active.lease_lost.is_set():
            return LeaseExpiredError()
        if active.cancel_requested:
            return Canceled()
        return DeadlineExceeded()

    # The result writer's two halves (see _TaskResultWriter).
    async def _write_result(self, msg: TaskMessage, data: bytes) -> None:
        await self.rt.broker.run(processing.write_result(msg.queue, msg.id, data))

    def _write_result_sync(
        self, loop: asyncio.AbstractEventLoop, msg: TaskMessage, data: bytes
    ) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:  # .result() below would wait for this very loop
            raise RuntimeError("write_sync() blocks: in an async handler use `await write()`")
        coro = self.rt.broker.run(processing.write_result(msg.queue, msg.id, data))
        asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def _finish(self, active: ActiveTask, err: BaseException | None) -> None:
        rt, msg = self.rt, active.msg
        now = rt.clock.now()
        # A snooze is the handler's "not yet", not an error: no error handler, no retry.
        nap = None if err is None or wraps(err, RevokeTask) else in_chain(err, Snooze)
        if nap is not None:
            self.failures.snoozed(msg, nap.delay)
            await self._write(active, snooze.snooze(msg, now + nap.delay, active.token))
            return
        if err is not None and rt.config.error_handler is not None:
            await self._call_error_handler(msg, err)
        # asynq's order (processor.go handleFailedMessage): RevokeTask, then archive when
        # retries are exhausted or SkipRetry, else retry (counted only if IsFailure).
        op: Op | None = None
        done: DoneArgs | None = None
        if err is None or wraps(err, RevokeTask):
            if err is not None:
                self.failures.revoked(msg, err)
            if err is None and msg.retention > 0:
                op = processing.mark_complete(msg, now, active.token)
            else:
                done = (msg, now, active.token)  # processing.done, built only if sent alone
        elif (skip := wraps(err, SkipRetry)) or msg.retried >= msg.retry:
            self.failures.archived(msg, err, skip)
            op = processing.archive(msg, now, error_text(err), active.token)
        else:
            delay, counted = retry_delay(rt, msg, err), is_failure(rt, err)
            self.failures.retrying(msg, err, delay, counted)
            op = processing.retry(
                msg, now=now, retry_at=now + delay, err_msg=error_text(err),
                is_failure=counted, token=active.token,
            )  # fmt: skip
        await self._write(active, op, done)

    async def _requeue(self, active: ActiveTask) -> None:
        await self._write(active, processing.requeue(active.msg, active.token))

    async def _write(self, active: ActiveTask, op: Op | None, done: DoneArgs | None = None) -> None:
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
            processing.check_write(await self._writes.run(op, done))
        except LeaseExpiredError:
            rt.log.warn("task %s: lease lost to another worker; outcome dropped", active.msg.id)
        except processing.DEFINITIVE_ERRORS as exc:
            rt.log.warn("task %s: %s", active.msg.id, exc)
        except BrokerError as exc:
            rt.log.warn("task %s: write failed, will retry: %s", active.msg.id, exc)
            self.syncer.add(_single(op, done), until=active.lease_until)

    async def _call_error_handler(self, msg: TaskMessage, err: BaseException) -> None:
        handler = self.rt.config.error_handler
        assert handler is not None
        task = Task(msg.type, msg.payload, headers=msg.headers or None)
        try:
            res = handler(task, err)
            if inspect.isawaitable(res):
                await res
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.rt.log.error("error handler failed for task %s: %s", msg.id, error_text(exc))

    async def shutdown(self) -> None:
        """Stop dequeuing, give running tasks ``shutdown_timeout`` to finish, then make the
        rest requeue themselves (wire spec 5.5)."""
        rt = self.rt
        loop = asyncio.get_running_loop()
        until = loop.time() + rt.config.seconds("shutdown_timeout")
        rt.stopping.set()
        self.notify()
        await self.stopped()  # a dequeue in flight may still start a task
        # Tasks leased by a dequeue that rode with the last writes start while we wait:
        # look again until none is left or the time is up.
        while self.running and loop.time() < until:
            await asyncio.wait(set(self.running), timeout=max(0.0, until - loop.time()))
        if self.running:
            rt.log.warn(
                "shutdown timeout (%gs) reached: requeueing %d task(s) still running",
                rt.config.seconds("shutdown_timeout"), len(self._stops),
            )  # fmt: skip
            self.abort.set()
            for stop in list(self._stops):
                _resolve(stop)
            await asyncio.wait(set(self.running), timeout=5.0)
        await self._give_up_lingering()
        await self.lender.aclose()  # the handlers' client, once they ended
        for thread, ctx in self.threads.busy():
            who = _who(peek(ctx.get(_current)))
            rt.log.warn(
                "%s: its def handler is still running in thread %s; abandoned (Python cannot "
                "stop a thread), the worker exits without it", who, thread,
            )  # fmt: skip

    def _watch(self, job: asyncio.Task[BaseException | None], msg: TaskMessage) -> None:
        """Follow a handler whose context ended but whose asyncio task has not (yet)."""
        self._lingering[job] = msg
        job.add_done_callback(self._unwatch)
        if not self.abort.is_set():
            asyncio.get_running_loop().call_later(LINGER, self._still_running, job)

    def _unwatch(self, job: asyncio.Task[BaseException | None]) -> None:
        self._lingering.pop(job, None)

    def _still_running(self, job: asyncio.Task[BaseException | None]) -> None:
        msg = self._lingering.get(job)
        if msg is not None and not self.abort.is_set():
            self.rt.log.warn(
                "%s: its async handler is still running %gs after it was cancelled (does it "
                "catch CancelledError?); its outcome is written, the handler runs on "
                "unsupervised", _who(msg), LINGER,
            )  # fmt: skip

    async def _give_up_lingering(self) -> None:
        """Cancel once more the handlers that outlived their context, wait LINGER, and
        abandon the rest, so that no handler can hold the shutdown up."""
        if not self._lingering:
            return
        jobs = list(self._lingering)
        for job in jobs:
            job.cancel()
        await asyncio.wait(jobs, timeout=LINGER)
        for job in jobs:
            msg = self._lingering.get(job)
            if msg is not None:
                _eventloop.abandon(job)
                self.rt.log.warn(
                    "%s: its async handler is still running after it was cancelled (does it "
                    "catch CancelledError?); abandoned, the worker exits without it", _who(msg),
                )  # fmt: skip


class _TaskResultWriter(ResultWriter):
    """One task's ResultWriter, bound to the processor's two write paths by attributes:
    two partials built for every task cost 2 µs of it, and most tasks never write a
    result. Same calls as ``ResultWriter(id, partial(...), partial(...), done)``."""

    def __init__(
        self, proc: Processor, loop: asyncio.AbstractEventLoop, msg: TaskMessage, done: Flag
    ) -> None:
        self._task_id, self._done = msg.id, done
        self._proc, self._loop, self._msg = proc, loop, msg

    async def _write(self, data: bytes) -> None:
        await self._proc._write_result(self._msg, data)

    def _write_sync(self, data: bytes) -> None:
        self._proc._write_result_sync(self._loop, self._msg, data)


class _TaskHandle(LazyContext):
    """One running task's TaskContext and ResultWriter, built on first use (see
    LazyContext) with the same values the processor would have given eagerly: the
    deadline as a datetime, the task's cancel flag, the progress reporter, the lender."""

    __slots__ = ("_active", "_loop", "_proc")

    def __init__(
        self, proc: Processor, loop: asyncio.AbstractEventLoop, active: ActiveTask
    ) -> None:
        self._ctx, self._writer = None, None
        self._proc, self._loop, self._active = proc, loop, active

    def _build_writer(self) -> ResultWriter:
        return _TaskResultWriter(self._proc, self._loop, self._active.msg, self._active.cancel)

    def _build_context(self, writer: ResultWriter) -> TaskContext:
        proc, active = self._proc, self._active
        msg = active.msg
        # Positional (id, type, queue, retry_count, max_retry, deadline, result_writer,
        # _done, _progress, _lender, _now): a frozen dataclass' keywords cost more.
        return TaskContext(
            msg.id, msg.type, msg.queue, msg.retried, msg.retry, _utc(active.deadline),
            writer, active.cancel, proc.progress, proc.lender, proc.rt.clock.now,
        )  # fmt: skip


def retry_delay(rt: Runtime, msg: TaskMessage, err: BaseException) -> float:
    """The user's retry_delay_func(retried, err, task) in seconds; asynq's default when it
    fails, so a broken function cannot strand the task in active."""
    task = Task(msg.type, msg.payload, headers=msg.headers or None)
    try:
        d: Any = rt.config.retry_delay_func(msg.retried, err, task)
        return float(d.total_seconds() if hasattr(d, "total_seconds") else d)
    except BaseException as exc:
        rt.log.error("retry_delay_func failed for task %s: %r; using the default", msg.id, exc)
        return default_retry_delay(msg.retried, err, task)


def is_failure(rt: Runtime, err: BaseException) -> bool:
    """The user's is_failure(err); True when it fails."""
    try:
        return bool(rt.config.is_failure(err))
    except BaseException as exc:
        rt.log.error("is_failure failed: %r; counting the error as a failure", exc)
        return True


def _log_failure(rt: Runtime, what: str) -> Callable[[asyncio.Task[Any]], None]:
    def check(t: asyncio.Task[Any]) -> None:
        if not t.cancelled() and (exc := t.exception()) is not None:
            rt.log.error("processor: %s failed: %s", what, exc)

    return check


def _who(task: TaskMessage | TaskContext | None) -> str:
    """How a log line names a task."""
    if task is None:
        return "a task"
    return f'task {task.id} (type "{task.type}", queue "{task.queue}")'


def _single(op: Op | None, done: DoneArgs | None) -> Op:
    """The op of one write: ``op``, else ``processing.done(*done)``."""
    if op is not None:
        return op
    assert done is not None
    return processing.done(*done)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _utc(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, UTC)
