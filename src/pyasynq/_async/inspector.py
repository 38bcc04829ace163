"""AsyncInspector: read and change queues, tasks, servers and schedulers (asynq's
Inspector). The CLI, the metrics collector and the web dashboard are built on it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from pyasynq._rdb import keys
from pyasynq._rdb.ops import Call, Op
from pyasynq._rdb.ops import inspect as ops
from pyasynq._rdb.ops import inspect_extra as extra
from pyasynq._rdb.ops import limiter as limits
from pyasynq._rdb.ops import state as registry
from pyasynq.clock import Clock, RealClock
from pyasynq.embedded import default_url
from pyasynq.errors import BrokerError
from pyasynq.inspection import (
    ClusterNode,
    DailyStats,
    GroupInfo,
    LimitInfo,
    QueueInfo,
    SchedulerEnqueueEvent,
    SchedulerEntry,
    ServerInfo,
    enqueue_event_from,
    queue_info_from,
    scheduler_entry_from,
    server_infos_from,
)
from pyasynq.task import TaskInfo, TaskState

from .broker import AsyncBroker
from .connection import Target, describe

PAGE_SIZE = ops.DEFAULT_PAGE_SIZE
Progress = Callable[[int], object]


def _name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} must not be blank")
    return value


def _ok(reply: Any) -> Any:
    """A pipelined reply, or raise the BrokerError run_many put in its place."""
    if isinstance(reply, BrokerError):
        raise reply
    return reply


class AsyncInspector:
    """Inspects and changes queues and tasks in Redis (asynq's Inspector).

    ``redis`` is a URL (``redis://``, ``rediss://``, ``unix://``) or an existing
    ``redis.asyncio.Redis``, which pyasynq then never closes (left out: as for
    :class:`AsyncClient`). Methods that name a queue
    raise QueueNotFoundError when it is not in ``asynq:queues``, except
    :meth:`pause_queue`/:meth:`unpause_queue` and the cluster methods (as in asynq).

    Bulk methods (``delete_all_*``, ``run_all_*``, ``archive_all_*``) work in batches of
    a thousand tasks, so Redis stays responsive with any number of them; they return the
    count and call ``on_progress(done_so_far)`` after each batch that moved tasks. They
    are not one atomic step: tasks added meanwhile may or may not be included.
    """

    def __init__(self, redis: Target | None = None, *, clock: Clock | None = None) -> None:
        self._broker = AsyncBroker(redis if redis is not None else default_url())
        self._clock: Clock = clock or RealClock()

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
        await self._broker.aclose()

    async def ping(self) -> None:
        """Raise BrokerError unless Redis answers."""
        await self._broker.ping()

    # --- plumbing ------------------------------------------------------------------------

    async def _check(self, queue: str) -> None:
        ops.check_queue_result(await self._broker.run(ops.check_queue(queue)), queue)

    async def _read(self, queue: str, op: Op) -> Any:
        """Check the queue and run a read-only ``op`` in one round trip."""
        found, reply = await self._broker.run_many([ops.check_queue(queue), op])
        ops.check_queue_result(_ok(found), queue)
        return _ok(reply)

    async def _bulk(self, queue: str, call: Call, on_progress: Progress | None) -> int:
        await self._check(queue)
        total = 0
        while True:
            taken = ops.bulk_result(await self._broker.run(call))
            total += taken
            if taken and on_progress is not None:
                on_progress(total)
            if ops.bulk_finished(taken, ops.BULK_BATCH):
                return total

    # --- queues --------------------------------------------------------------------------

    async def queues(self) -> list[str]:
        """Names of all queues, sorted."""
        return ops.list_queues_result(await self._broker.run(ops.list_queues()))

    async def groups(self, queue: str) -> list[GroupInfo]:
        """The queue's groups of aggregating tasks with their sizes, by name."""
        _name(queue, "queue")
        return ops.groups_result(await self._read(queue, ops.groups(queue)))

    async def get_queue_info(self, queue: str) -> QueueInfo:
        """Sizes by state, latency, memory usage, today's and all-time counters, pause
        flag. The counters and memory usage come from two reads, close together."""
        _name(queue, "queue")
        now = self._clock.now()
        found, stats, memory = await self._broker.run_many(
            [ops.check_queue(queue), ops.current_stats(queue, now=now), ops.memory_usage(queue)]
        )
        ops.check_queue_result(_ok(found), queue)
        return queue_info_from(
            ops.current_stats_result(_ok(stats), queue=queue, now=now),
            ops.memory_usage_result(_ok(memory)),
        )

    async def get_limits(self, queue: str) -> list[LimitInfo]:
        """The fleet-wide limits pyasynq servers enforce in ``queue``, with how much of
        each is in use, by name (empty when none; see docs/limits.md).

        Args:
            queue: the queue name.

        Returns:
            One LimitInfo per limited task type or handler pattern.

        Raises:
            QueueNotFoundError: no such queue.
        """
        _name(queue, "queue")
        now = self._clock.now()
        reg = limits.registry_result(await self._read(queue, limits.read_registry(queue)))
        out: list[LimitInfo] = []
        for name in sorted(reg):
            cap, rate, per, seen = reg[name]
            running, started, waiting = await self._broker.run_many(
                limits.usage(queue, name, now, per)
            )
            out.append(LimitInfo(
                queue=queue, name=name, concurrency=cap or None, rate=rate or None, per=per,
                running=int(_ok(running)), started=int(_ok(started)), waiting=int(_ok(waiting)),
                reported=datetime.fromtimestamp(seen, UTC),
            ))  # fmt: skip
        return out

    async def history(self, queue: str, days: int = 7) -> list[DailyStats]:
        """Processed and failed counts per UTC day, today first, ``days`` days back."""
        _name(queue, "queue")
        now = self._clock.now()
        reply = await self._read(queue, ops.history(queue, days, now=now))
        return ops.history_result(reply, queue=queue, days=days, now=now)

    async def delete_queue(self, queue: str, force: bool = False) -> None:
        """Remove the queue. Without ``force`` it must have no pending, active,
        scheduled, retry or archived task (else QueueNotEmptyError); with ``force`` those
        are deleted too, but never while a task is active (QueueStateError)."""
        _name(queue, "queue")
        call = ops.delete_queue(queue, force=force)
        await self._check(queue)
        ops.delete_queue_result(await self._broker.run(call), queue=queue)
        await self._broker.run(ops.unregister_queue(queue))
        purge = ops.purge_deleted(queue)
        # The tasks were detached atomically above; their hashes go in batches.
        while True:
            purged = ops.bulk_result(await self._broker.run(purge))
            if ops.bulk_finished(purged, ops.BULK_BATCH):
                return

    async def pause_queue(self, queue: str) -> None:
        """Stop servers from taking tasks from ``queue``; QueueStateError if paused."""
        _name(queue, "queue")
        reply = await self._broker.run(registry.pause(queue, self._clock.now()))
        registry.pause_result(queue, reply)

    async def unpause_queue(self, queue: str) -> None:
        """Let servers take tasks from ``queue`` again; QueueStateError if not paused."""
        _name(queue, "queue")
        registry.unpause_result(queue, await self._broker.run(registry.unpause(queue)))

    # --- reading tasks -------------------------------------------------------------------

    async def get_task_info(self, queue: str, task_id: str) -> TaskInfo:
        """One task; TaskNotFoundError when the queue has no task ``task_id``."""
        _name(queue, "queue")
        _name(task_id, "task_id")
        now = self._clock.now()
        reply = await self._read(queue, ops.get_task_info(queue, task_id, now=now))
        return ops.get_task_info_result(reply, queue=queue, task_id=task_id)

    async def list_tasks(
        self,
        queue: str,
        state: TaskState | str,
        *,
        group: str | None = None,
        page_size: int = PAGE_SIZE,
        page: int = 1,
    ) -> list[TaskInfo]:
        """One page (1-based) of the tasks in ``state``: pending and active oldest first;
        scheduled and retry by next process time, archived by archive time, completed by
        expiry, aggregating (which needs ``group``) by time added, earliest first."""
        _name(queue, "queue")
        now = self._clock.now()
        call = ops.list_tasks(queue, state, now=now, page_size=page_size, page=page, group=group)
        return ops.list_tasks_result(await self._read(queue, call), state=state, now=now)

    async def list_pending_tasks(
        self, queue: str, *, page_size: int = PAGE_SIZE, page: int = 1
    ) -> list[TaskInfo]:
        """One page of the queue's pending tasks, oldest first."""
        return await self.list_tasks(queue, TaskState.PENDING, page_size=page_size, page=page)

    async def list_active_tasks(
        self, queue: str, *, page_size: int = PAGE_SIZE, page: int = 1
    ) -> list[TaskInfo]:
        """Running tasks; ``is_orphaned`` is set on those whose lease has expired (their
        worker is gone: the recoverer will retry or archive them)."""
        return await self.list_tasks(queue, TaskState.ACTIVE, page_size=page_size, page=page)

    async def list_scheduled_tasks(
        self, queue: str, *, page_size: int = PAGE_SIZE, page: int = 1
    ) -> list[TaskInfo]:
        """One page of the queue's scheduled tasks, by the time they are due."""
        return await self.list_tasks(queue, TaskState.SCHEDULED, page_size=page_size, page=page)

    async def list_retry_tasks(
        self, queue: str, *, page_size: int = PAGE_SIZE, page: int = 1
    ) -> list[TaskInfo]:
        """One page of the queue's tasks waiting for a retry, by retry time."""
        return await self.list_tasks(queue, TaskState.RETRY, page_size=page_size, page=page)

    async def list_archived_tasks(
        self, queue: str, *, page_size: int = PAGE_SIZE, page: int = 1
    ) -> list[TaskInfo]:
        """One page of the queue's archived tasks, by archive time."""
        return await self.list_tasks(queue, TaskState.ARCHIVED, page_size=page_size, page=page)

    async def list_completed_tasks(
        self, queue: str, *, page_size: int = PAGE_SIZE, page: int = 1
    ) -> list[TaskInfo]:
        """One page of the queue's completed tasks (kept for their retention), by expiry."""
        return await self.list_tasks(queue, TaskState.COMPLETED, page_size=page_size, page=page)

    async def list_aggregating_tasks(
        self, queue: str, group: str, *, page_size: int = PAGE_SIZE, page: int = 1
    ) -> list[TaskInfo]:
        """One page of the tasks waiting in ``group`` of the queue, by time added."""
        _name(group, "group")
        return await self.list_tasks(
            queue, TaskState.AGGREGATING, group=group, page_size=page_size, page=page
        )

    # --- one task ------------------------------------------------------------------------

    async def delete_task(self, queue: str, task_id: str) -> None:
        """Delete a task that is not active (TaskStateError if it is)."""
        _name(queue, "queue")
        _name(task_id, "task_id")
        await self._check(queue)
        reply = await self._broker.run(ops.delete_task(queue, task_id))
        ops.delete_task_result(reply, queue=queue, task_id=task_id)

    async def run_task(self, queue: str, task_id: str) -> None:
        """Move a scheduled, retry, archived, completed or aggregating task to pending
        (TaskStateError if it is pending or active)."""
        _name(queue, "queue")
        _name(task_id, "task_id")
        await self._check(queue)
        reply = await self._broker.run(ops.run_task(queue, task_id))
        ops.run_task_result(reply, queue=queue, task_id=task_id)

    async def archive_task(self, queue: str, task_id: str) -> None:
        """Archive a task that is neither active nor archived (else TaskStateError)."""
        _name(queue, "queue")
        _name(task_id, "task_id")
        await self._check(queue)
        reply = await self._broker.run(ops.archive_task(queue, task_id, now=self._clock.now()))
        ops.archive_task_result(reply, queue=queue, task_id=task_id)

    async def update_task_payload(self, queue: str, task_id: str, payload: bytes) -> None:
        """Replace a scheduled task's payload (TaskStateError in any other state)."""
        _name(queue, "queue")
        _name(task_id, "task_id")
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
        reply = await self._read(queue, ops.get_task_info(queue, task_id, now=self._clock.now()))
        msg = ops.get_task_message_result(reply, queue=queue, task_id=task_id)
        # The script rewrites msg only if the task is still scheduled, so a task that
        # moved since the read is refused, not overwritten.
        call = ops.update_task_payload(queue, task_id, msg, bytes(payload))
        ops.update_task_payload_result(await self._broker.run(call), queue=queue, task_id=task_id)

    async def cancel_processing(self, task_id: str) -> int:
        """Ask the servers to cancel ``task_id`` if one is running it (best effort).
        Returns how many servers received the request."""
        _name(task_id, "task_id")
        return ops.cancel_result(await self._broker.run(ops.cancel(task_id)))

    # --- many tasks ----------------------------------------------------------------------

    async def delete_all_tasks(
        self,
        queue: str,
        state: TaskState | str,
        *,
        group: str | None = None,
        on_progress: Progress | None = None,
    ) -> int:
        """Delete every task in ``state`` (pending, scheduled, retry, archived, completed,
        or aggregating with ``group``); returns the count."""
        _name(queue, "queue")
        return await self._bulk(queue, ops.delete_all(queue, state, group=group), on_progress)

    async def run_all_tasks(
        self,
        queue: str,
        state: TaskState | str,
        *,
        group: str | None = None,
        on_progress: Progress | None = None,
    ) -> int:
        """Move every task in ``state`` (scheduled, retry, archived, or aggregating with
        ``group``) to pending; returns the count."""
        _name(queue, "queue")
        return await self._bulk(queue, ops.run_all(queue, state, group=group), on_progress)

    async def archive_all_tasks(
        self,
        queue: str,
        state: TaskState | str,
        *,
        group: str | None = None,
        on_progress: Progress | None = None,
    ) -> int:
        """Archive every task in ``state`` (pending, scheduled, retry, or aggregating
        with ``group``); returns the count."""
        _name(queue, "queue")
        # One ``now`` for every batch: the archive is trimmed as one Go call would trim it.
        call = ops.archive_all(queue, state, now=self._clock.now(), group=group)
        return await self._bulk(queue, call, on_progress)

    async def delete_all_pending_tasks(
        self, queue: str, *, on_progress: Progress | None = None
    ) -> int:
        """Delete every pending task of the queue; returns the count."""
        return await self.delete_all_tasks(queue, TaskState.PENDING, on_progress=on_progress)

    async def delete_all_scheduled_tasks(
        self, queue: str, *, on_progress: Progress | None = None
    ) -> int:
        """Delete every scheduled task of the queue; returns the count."""
        return await self.delete_all_tasks(queue, TaskState.SCHEDULED, on_progress=on_progress)

    async def delete_all_retry_tasks(
        self, queue: str, *, on_progress: Progress | None = None
    ) -> int:
        """Delete every task waiting for a retry; returns the count."""
        return await self.delete_all_tasks(queue, TaskState.RETRY, on_progress=on_progress)

    async def delete_all_archived_tasks(
        self, queue: str, *, on_progress: Progress | None = None
    ) -> int:
        """Delete every archived task of the queue; returns the count."""
        return await self.delete_all_tasks(queue, TaskState.ARCHIVED, on_progress=on_progress)

    async def delete_all_completed_tasks(
        self, queue: str, *, on_progress: Progress | None = None
    ) -> int:
        """Delete every completed task of the queue; returns the count."""
        return await self.delete_all_tasks(queue, TaskState.COMPLETED, on_progress=on_progress)

    async def delete_all_aggregating_tasks(
        self, queue: str, group: str, *, on_progress: Progress | None = None
    ) -> int:
        """Delete every task of ``group``; returns the count."""
        _name(group, "group")
        return await self.delete_all_tasks(
            queue, TaskState.AGGREGATING, group=group, on_progress=on_progress
        )

    async def run_all_scheduled_tasks(
        self, queue: str, *, on_progress: Progress | None = None
    ) -> int:
        """Make every scheduled task pending now; returns the count."""
        return await self.run_all_tasks(queue, TaskState.SCHEDULED, on_progress=on_progress)

    async def run_all_retry_tasks(self, queue: str, *, on_progress: Progress | None = None) -> int:
        """Make every task waiting for a retry pending now; returns the count."""
        return await self.run_all_tasks(queue, TaskState.RETRY, on_progress=on_progress)

    async def run_all_archived_tasks(
        self, queue: str, *, on_progress: Progress | None = None
    ) -> int:
        """Make every archived task pending again; returns the count."""
        return await self.run_all_tasks(queue, TaskState.ARCHIVED, on_progress=on_progress)

    async def run_all_aggregating_tasks(
        self, queue: str, group: str, *, on_progress: Progress | None = None
    ) -> int:
        """Make every task of ``group`` pending without aggregating it; returns the count."""
        _name(group, "group")
        return await self.run_all_tasks(
            queue, TaskState.AGGREGATING, group=group, on_progress=on_progress
        )

    async def archive_all_pending_tasks(
        self, queue: str, *, on_progress: Progress | None = None
    ) -> int:
        """Archive every pending task of the queue; returns the count."""
        return await self.archive_all_tasks(queue, TaskState.PENDING, on_progress=on_progress)

    async def archive_all_scheduled_tasks(
        self, queue: str, *, on_progress: Progress | None = None
    ) -> int:
        """Archive every scheduled task of the queue; returns the count."""
        return await self.archive_all_tasks(queue, TaskState.SCHEDULED, on_progress=on_progress)

    async def archive_all_retry_tasks(
        self, queue: str, *, on_progress: Progress | None = None
    ) -> int:
        """Archive every task waiting for a retry; returns the count."""
        return await self.archive_all_tasks(queue, TaskState.RETRY, on_progress=on_progress)

    async def archive_all_aggregating_tasks(
        self, queue: str, group: str, *, on_progress: Progress | None = None
    ) -> int:
        """Archive every task of ``group``; returns the count."""
        _name(group, "group")
        return await self.archive_all_tasks(
            queue, TaskState.AGGREGATING, group=group, on_progress=on_progress
        )

    # --- servers and schedulers ----------------------------------------------------------

    async def servers(self) -> list[ServerInfo]:
        """Servers alive at their last heartbeat, each with the tasks it is running."""
        now = self._clock.now()
        listed = await self._broker.run_many(
            [
                registry.list_registry(keys.ALL_SERVERS, now),
                registry.list_registry(keys.ALL_WORKERS, now),
            ]
        )
        server_keys = registry.list_registry_result(listed[0])
        worker_keys = registry.list_registry_result(listed[1])
        replies = await self._broker.run_many(
            [
                *(registry.get_server_info(k) for k in server_keys),
                *(registry.get_workers(k) for k in worker_keys),
            ]
        )
        n = len(server_keys)
        servers = [registry.server_info_result(_ok(r)) for r in replies[:n]]
        workers = [w for r in replies[n:] for w in registry.workers_result(_ok(r))]
        return server_infos_from([s for s in servers if s is not None], workers)

    async def scheduler_entries(self) -> list[SchedulerEntry]:
        """Entries of the running schedulers, the next to enqueue first."""
        now = self._clock.now()
        reply = await self._broker.run(registry.list_registry(keys.ALL_SCHEDULERS, now))
        entry_keys = registry.list_registry_result(reply)
        replies = await self._broker.run_many(
            [registry.get_scheduler_entries(k) for k in entry_keys]
        )
        entries = [
            scheduler_entry_from(e)
            for r in replies
            for e in registry.scheduler_entries_result(_ok(r))
        ]
        entries.sort(key=lambda e: (e.next_enqueue_at is None, e.next_enqueue_at, e.id))
        return entries

    async def list_scheduler_enqueue_events(
        self, entry_id: str, *, page_size: int = PAGE_SIZE, page: int = 1
    ) -> list[SchedulerEnqueueEvent]:
        """One page (1-based) of the tasks a scheduler entry enqueued, newest first."""
        _name(entry_id, "entry_id")
        call = extra.scheduler_enqueue_events(entry_id, page_size=page_size, page=page)
        reply = await self._broker.run(call)
        return [enqueue_event_from(e) for e in extra.scheduler_enqueue_events_result(reply)]

    # --- Redis Cluster -------------------------------------------------------------------

    async def _cluster(self, op: Op) -> Any:
        try:
            return await self._broker.run(op)
        except BrokerError as exc:
            if "cluster support disabled" not in str(exc):
                raise
            raise BrokerError(
                f"Redis at {describe(self._broker.redis)} is not a Redis Cluster (cluster "
                "support disabled); queue slots and nodes exist only in cluster mode"
            ) from exc

    async def cluster_key_slot(self, queue: str) -> int:
        """The Redis Cluster hash slot holding the queue's keys."""
        _name(queue, "queue")
        return ops.cluster_key_slot_result(await self._cluster(ops.cluster_key_slot(queue)))

    async def cluster_nodes(self, queue: str) -> list[ClusterNode]:
        """The cluster nodes (master first, then replicas) serving the queue's slot."""
        slot = await self.cluster_key_slot(queue)
        reply = await self._cluster(extra.cluster_slots())
        pool = getattr(self._broker.redis, "connection_pool", None)
        host = pool.connection_kwargs.get("host", "localhost") if pool else "localhost"
        return extra.cluster_nodes_result(reply, slot=slot, host=str(host))
