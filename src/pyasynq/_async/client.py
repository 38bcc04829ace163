"""AsyncClient: the distributor. Enqueues tasks with asynq's options."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from time import monotonic
from types import TracebackType
from typing import Self

from pyasynq._coalesce import AsyncBatcher
from pyasynq._listener import AsyncResultListener, ProgressCallback
from pyasynq._rdb.ops import limits
from pyasynq._rdb.ops import settings as rsettings
from pyasynq._rdb.ops.base import Call, Command, Op
from pyasynq._rdb.ops.enqueue import (
    Prepared,
    enqueue_outcome,
    plan_many,
    plan_results,
    prepare,
)
from pyasynq.clock import Clock, RealClock, RedisClock
from pyasynq.embedded import default_url
from pyasynq.errors import (
    BrokerError,
    DuplicateTaskError,
    ReplicationError,
    TaskIDConflictError,
)
from pyasynq.hooks import EnqueueHook, Enqueueing
from pyasynq.options import NO_OPTIONS, Duration, Options, When, check_name, given
from pyasynq.task import EnqueueResult, Task, TaskInfo

from .broker import AsyncBroker, _is_cluster, is_transient
from .connection import Target

logger = logging.getLogger(__name__)


class AsyncClient:
    """Enqueues tasks into Redis for any asynq-compatible worker (pyasynq or Go).

    ``redis`` is a URL (``redis://``, ``rediss://``, ``unix://``) or an existing
    ``redis.asyncio.Redis``, which pyasynq then never closes. Left out,
    it is ``$PYASYNQ_REDIS_URL``, ``$REDIS_URL``, else the shared embedded Redis of
    ``./.pyasynq/redis`` (docs/embedded.md). ``enqueue_hooks`` run around every enqueue
    (see :mod:`pyasynq.hooks`; tracing uses them).

    With ``coalesce`` (the default), enqueues of concurrent coroutines that arrive while
    one of this client's round trips is in flight share the next one (one pipeline);
    a lone enqueue is sent at once. Each call keeps its own result, error and retries.
    ``coalesce=False`` sends every call on its own. (The sync ``Client`` always does.)

    Times it writes (``process_in``/``process_at`` scores, deadlines, pending-since) are
    Redis's (one ``TIME`` at the first enqueue and every ``clock_sync_interval`` seconds),
    so a host whose clock is off schedules correctly; ``None`` uses the host's clock, as
    Go asynq's client does. A given ``clock`` is used as is.
    """

    def __init__(
        self,
        redis: Target | None = None,
        *,
        clock: Clock | None = None,
        failover_timeout: float = 10.0,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
        enqueue_hooks: Sequence[EnqueueHook] = (),
        coalesce: bool = True,
        clock_sync_interval: float | None = 10.0,
    ) -> None:
        if clock_sync_interval is not None and not clock_sync_interval > 0:
            raise ValueError("clock_sync_interval must be positive seconds, or None")
        if failover_timeout < 0 or wait_replicas < 0 or wait_timeout <= 0:
            raise ValueError("failover_timeout and wait_replicas must be >= 0 and wait_timeout > 0")
        self._broker = AsyncBroker(redis if redis is not None else default_url())
        # Enqueue writes go through it: coalesced, or straight to Redis.
        self._sender = AsyncBatcher(self._broker, coalesce=coalesce)
        # Whether Redis hashes keys to slots; None: not known yet (see _slotted).
        self._cluster: bool | None = True if _is_cluster(self._broker.redis) else None
        # Redis's time for process_in/process_at scores and deadlines, unless given a clock
        # or clock_sync_interval=None (the host's clock, as Go asynq's client).
        self._redis_clock = (
            RedisClock() if clock is None and clock_sync_interval is not None else None
        )
        self._clock: Clock = clock or self._redis_clock or RealClock()
        self._sync_every = clock_sync_interval or 0.0
        self._failover_timeout = failover_timeout
        self._wait_replicas = wait_replicas
        self._wait_timeout = wait_timeout
        self._hooks = tuple(enqueue_hooks)
        for hook in self._hooks:
            if not callable(hook):
                raise TypeError(f"enqueue hooks must be callable, got {hook!r}")
        self._checked = False  # INFO read: the topology (if unknown) and eviction policy
        self._max_bulk: int | None = None  # Redis' proto-max-bulk-len, read when needed
        self._results: AsyncResultListener | None = None  # started by the first wait_result

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._broker!r}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless the caller handed it in)."""
        if self._results is not None:
            await self._results.aclose()
            self._results = None
        await self._broker.aclose()

    async def ping(self) -> None:
        """Raise BrokerError unless Redis answers."""
        await self._broker.ping()

    async def enqueue(
        self,
        task: Task,
        *,
        queue: str | None = None,
        max_retry: int | None = None,
        task_id: str | None = None,
        timeout: Duration | None = None,
        deadline: When | None = None,
        unique: Duration | None = None,
        process_at: When | None = None,
        process_in: Duration | None = None,
        retention: Duration | None = None,
        group: str | None = None,
        headers: Mapping[str, str] | None = None,
        wait_replicas: int | None = None,
    ) -> TaskInfo:
        """Store ``task`` in Redis for a worker to process.

        Options given here override the task's own (those given to ``Task(...)``); an
        option given in neither place takes asynq's default. Durations are seconds
        (``int``/``float``) or a ``timedelta``; points in time are Unix seconds or a
        timezone-aware ``datetime``.

        During a failover the write is retried with backoff for up to the client's
        ``failover_timeout``; a retry that finds our own write already stored counts as
        success.

        Args:
            task: The task to store.
            queue: The queue to put it in (default ``"default"``).
            max_retry: Retries after the first failed attempt before the task is
                archived (default 25; 0: archive at the first failure).
            task_id: The task's id (default a random UUID). A second task with the same
                id in the same queue is refused while the first exists.
            timeout: How long one attempt may run (whole seconds). With neither
                ``timeout`` nor ``deadline`` the timeout is 30 minutes; 0 with a deadline
                means no timeout.
            deadline: The time by which any attempt must end.
            unique: Refuse a task with the same queue, type and payload for this long
                (at least 1 s), or until this one succeeds or is deleted.
            process_at: Run the task no earlier than this time (it is ``scheduled``
                until then).
            process_in: Run the task after this delay; give ``process_at`` or
                ``process_in``, not both.
            retention: Keep the task (and its result) this long after it succeeds, in
                the ``completed`` state (default 0: delete it at once).
            group: Put the task in this group of the queue, to be aggregated by a
                server's ``group_aggregator`` (it is ``aggregating`` until then).
            headers: String metadata carried with the task, merged over the task's own
                headers (e.g. a trace id).
            wait_replicas: Return only once this many replicas hold the task (default:
                the client's ``wait_replicas``, normally 0): for a task that must survive
                the loss of the master.

        Returns:
            TaskInfo: The stored task: its id, queue, state (``pending``, ``scheduled`` or
            ``aggregating``) and next process time.

        Raises:
            TaskIDConflictError: ``task_id`` is taken in the queue.
            DuplicateTaskError: A ``unique`` task with the same queue, type and payload
                holds the lock.
            ReplicationError: Fewer than ``wait_replicas`` replicas confirmed the task in
                time.
            BrokerError: Redis failed (after retrying for ``failover_timeout``).
            ValueError: An option is invalid (nothing was written).
            TypeError: An option has the wrong type (nothing was written).
        """
        if (
            queue is None
            and max_retry is None
            and task_id is None
            and timeout is None
            and deadline is None
            and unique is None
            and process_at is None
            and process_in is None
            and retention is None
            and group is None
            and headers is None
        ):
            options = NO_OPTIONS  # what given() makes of them, without a dict of 11
        else:
            options = given(
                queue=queue,
                max_retry=max_retry,
                task_id=task_id,
                timeout=timeout,
                deadline=deadline,
                unique=unique,
                process_at=process_at,
                process_in=process_in,
                retention=retention,
                group=group,
                headers=headers,
            )
        _check_task(task)
        replicas = self._wait_replicas if wait_replicas is None else wait_replicas
        if replicas < 0:
            raise ValueError("wait_replicas must not be negative")
        cluster = (
            self._cluster
            if self._checked and self._cluster is not None
            else await self._sender.once("slotted", self._slotted)
        )
        rc = self._redis_clock
        if rc is not None and rc.due(self._sync_every):
            await self._sender.once("clock", self._sync_clock)
        if not self._hooks:
            p = prepare(task, options, self._clock.now_ns(), register=not cluster, wake=True)
            if len(p.msg) > limits.SMALLEST_MAX_BULK:  # the call's only bytes argument
                await self._check_size([p.call], f"task {task.type!r}")
            await self._store(p, replicas, cluster)
            return p.info
        with ExitStack() as stack:
            ev, options = _hooked(stack, self._hooks, task, options)
            try:
                p = prepare(task, options, self._clock.now_ns(), register=not cluster, wake=True)
                await self._check_size([p.call], f"task {task.type!r}")
                await self._store(p, replicas, cluster)
            except Exception as exc:
                ev.error = exc
                raise
            ev.info = p.info
            return p.info

    async def wait_result(
        self,
        task_id: str,
        *,
        queue: str = "default",
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> bytes:
        """Wait until the task finishes and return its result: the bytes its handler
        wrote with the ResultWriter (``b""`` if none).

        pyasynq servers announce the outcome the moment they write it; tasks a Go server
        runs are seen by polling (every second, backing off to five). Retries are not
        outcomes: the wait goes on until the task completes or is archived. All waits of
        one client share one Redis connection for the announcements.

        Enqueue the task with ``retention`` so that its result is kept: without it, the
        task is deleted when it succeeds, and only a wait that began before that gets the
        result (from the announcement; ``TaskNotFoundError`` if it was missed).

        Args:
            task_id: The task's id (``TaskInfo.id`` from ``enqueue``).
            queue: The task's queue.
            timeout: Seconds to wait at most (None: no limit).
            on_progress: Called with a :class:`~pyasynq.TaskProgress` each time the
                handler reports new progress (an ``async def`` callback is awaited).

        Returns:
            bytes: The task's result.

        Raises:
            TaskFailedError: The task failed for good (it was archived); ``error`` holds
                its last error.
            ResultTimeoutError: The task did not finish within ``timeout`` (it goes on).
            TaskNotFoundError: No such task: deleted, or completed without retention
                before the wait began.
            BrokerError: Redis failed when the wait began.
        """
        check_name(queue, "queue", queue=True)
        check_name(task_id, "task_id")
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout!r}")
        if on_progress is not None and not callable(on_progress):
            raise TypeError(f"on_progress must be callable, got {on_progress!r}")
        if self._results is None:
            self._results = AsyncResultListener(self._broker)
        return await self._results.wait(queue, task_id, timeout, on_progress)

    async def _check_size(self, ops: list[Op], what: str) -> None:
        """Raise ValueError when a value in ``ops`` is longer than Redis accepts. The
        limit is read once, and only for values above the smallest one Redis allows."""
        size = max(
            (len(a) for op in ops if isinstance(op, Call) for a in op.args if isinstance(a, bytes)),
            default=0,
        )
        if size <= limits.SMALLEST_MAX_BULK:
            return
        if self._max_bulk is None:
            try:
                reply: object = await self._broker.run(limits.max_bulk())
            except BrokerError as exc:
                if is_transient(exc):
                    raise
                reply = exc  # CONFIG refused (managed Redis, ACL): assume the default
            self._max_bulk = limits.max_bulk_result(reply)
        if size > self._max_bulk:
            raise limits.too_big(what, size, self._max_bulk, self._broker.where)

    async def _sync_clock(self) -> None:
        """Measure the offset to Redis's clock again; a failure (TIME refused) is logged
        once and leaves the host's clock (or the last offset) in use."""
        clock = self._redis_clock
        assert clock is not None
        try:
            # One sample: scores are whole seconds, and a one-off client pays one round trip.
            samples = await self._broker.clock_samples(1)
        except BrokerError as exc:
            clock.checked()
            if not clock.failing:
                clock.failing = True
                logger.warning(
                    "could not read Redis's clock (TIME), so process_in/process_at scores "
                    "follow this host's clock until it can (allow +time for this user: "
                    "docs/security.md): %s", exc,
                )  # fmt: skip
            return
        clock.failing = False
        clock.update(samples)

    async def _slotted(self) -> bool:
        """Whether Redis hashes keys to slots (a Cluster, also one reached through a
        plain connection to a one-node cluster): there asynq:queues is in another slot
        than a queue's keys, so its SADD goes beside the enqueue script. Elsewhere the
        script registers the queue itself: one command per enqueue instead of two.

        Asked once (INFO; when Redis does not say, the SADD goes beside). The same reply
        tells whether Redis may evict task data, which an acknowledged enqueue would then
        not protect: that is logged once per client."""
        if self._checked and self._cluster is not None:
            return self._cluster
        try:
            info = await self._broker.run(rsettings.read_info())
        except BrokerError as exc:
            if not self._broker.reached:
                raise  # Redis never answered: the write would wait as long again
            if is_transient(exc):
                return True if self._cluster is None else self._cluster  # ask again next time
            info = None  # e.g. an ACL without INFO: stay on the safe side
        self._checked = True
        if self._cluster is None:
            self._cluster = not isinstance(info, dict) or bool(info.get("cluster_enabled", 1))
        warning = rsettings.settings_from(info).eviction_warning()
        if warning:
            logger.warning("pyasynq client: %s", warning)
        return self._cluster

    async def _store(self, p: Prepared, replicas: int, cluster: bool) -> None:
        # One script call; where keys hash to slots, the SADD of the queue goes beside it.
        ops: list[Op] = [p.register_queue, p.call] if cluster else [p.call]
        give_up = monotonic() + self._failover_timeout
        delay = 0.05
        retried = False
        while True:
            try:
                registered: object = None
                if replicas:
                    replies = await self._broker.run_durable(ops, replicas, self._wait_timeout)
                    reply, acked = replies[-2], replies[-1]
                    if cluster:
                        registered = replies[0]
                elif cluster:
                    registered, reply = await self._sender.run_many(ops)
                else:
                    reply = await self._sender.run(p.call)
                try:
                    enqueue_outcome(reply, registered)
                except (TaskIDConflictError, DuplicateTaskError):
                    # After a lost reply our first attempt may have landed: that is success.
                    if not (retried and await self._is_ours(p)):
                        raise
                if replicas:
                    _check_acked(acked, replicas, self._wait_timeout)
                return
            except BrokerError as exc:
                # A Redis never reached is a wrong address, scheme or timeout, not a
                # failover: say so now rather than after failover_timeout.
                if (
                    not is_transient(exc)
                    or not self._broker.reached
                    or monotonic() + delay > give_up
                ):
                    raise
            retried = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _is_ours(self, p: Prepared) -> bool:
        stored = await self._broker.run(Command(("HGET", p.task_key, "msg")))
        return bool(stored == p.msg)

    async def enqueue_many(
        self, tasks: Iterable[Task | tuple[Task, Options]]
    ) -> list[EnqueueResult]:
        """Enqueue many tasks in one pipelined round trip. Each item is a Task (its own
        options apply) or ``(task, Options(...))``. Results are in input order; a task that
        failed has ``error`` set and does not stop the others.

        Plain pending tasks of a queue are stored by one script call per 1,000 of them;
        the outcome is what enqueueing them one by one in input order would give."""
        items: list[tuple[Task, Options]] = []
        for item in tasks:
            if isinstance(item, Task):
                items.append((item, NO_OPTIONS))
                continue
            if isinstance(item, tuple):
                if len(item) != 2 or not isinstance(item[1], Options):
                    raise TypeError(
                        f"enqueue_many takes Task or (Task, Options(...)) items, got {item!r}"
                    )
                _check_task(item[0])
                items.append(item)
                continue
            _check_task(item)
        if not items:
            return []
        cluster = (
            self._cluster if self._checked and self._cluster is not None else await self._slotted()
        )
        rc = self._redis_clock
        if rc is not None and rc.due(self._sync_every):
            await self._sync_clock()
        if not self._hooks:
            plan = plan_many(items, self._clock.now_ns(), cluster=cluster)
            await self._check_size(plan.ops, "a task of the batch")
            return plan_results(plan, await self._broker.run_many(plan.ops))
        with ExitStack() as stack:
            events: list[Enqueueing] = []
            for i, (task, options) in enumerate(items):
                ev, merged = _hooked(stack, self._hooks, task, options)
                events.append(ev)
                items[i] = (task, merged)
            try:
                plan = plan_many(items, self._clock.now_ns(), cluster=cluster)
                await self._check_size(plan.ops, "a task of the batch")
                results = plan_results(plan, await self._broker.run_many(plan.ops))
            except Exception as exc:
                for ev in events:
                    ev.error = exc
                raise
            for ev, res in zip(events, results, strict=True):
                ev.info, ev.error = res.info, res.error
            return results


def _hooked(
    stack: ExitStack, hooks: Sequence[EnqueueHook], task: Task, options: Options
) -> tuple[Enqueueing, Options]:
    """Enter every hook for one task; the options with the headers the hooks added."""
    ev = Enqueueing(task, options.queue or task.options.queue)
    for hook in hooks:
        stack.enter_context(hook(ev))
    if ev.headers:
        options = options.merged(Options(headers=ev.headers))
    return ev, options


def _check_acked(acked: object, replicas: int, timeout: float) -> None:
    if isinstance(acked, BrokerError):
        raise acked
    if not isinstance(acked, int) or acked < replicas:
        raise ReplicationError(
            f"the task is stored on the master, but only {acked} of {replicas} replicas "
            f"confirmed it within {timeout}s; it could be lost if the master fails now. "
            "Check the replicas (INFO replication), or retry with the same task_id"
        )


def _check_task(task: object) -> None:
    if not isinstance(task, Task):
        raise TypeError(f"expected a pyasynq.Task, got {type(task).__name__}")
