"""Enqueue after commit: the real fix for "the task ran before the user existed".

The seed creates the user inside a database transaction and enqueues
``task:send_verify_email`` from inside it. A worker can pick the task up before COMMIT,
read no user, and fail (the seed hides this with ``ProcessIn(10 s)``). Worse, if the
transaction rolls back after the enqueue, the task is out for a user that never existed.

``enqueue_after_commit(tx, client, task, ...)`` records the task on the transaction
instead; ``Database.transaction()`` enqueues it once COMMIT has succeeded and drops it when
the transaction rolls back, so a worker can only ever see committed users::

    async with db.transaction() as tx:
        user = await queries.create_user(tx, ...)
        pending = enqueue_after_commit(tx, client, task, queue="critical", max_retry=10)
    pending.info  # the TaskInfo, set once the COMMIT and the enqueue succeeded

What it does not cover: a crash between COMMIT and the enqueue loses the task (at most
once). The README describes the transactional outbox that closes that gap too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyasynq import AsyncClient, Task, TaskInfo

from .db import Transaction


@dataclass
class PendingEnqueue:
    """A task waiting for its transaction to commit."""

    task: Task
    options: dict[str, Any] = field(default_factory=dict)
    info: TaskInfo | None = None  # set after COMMIT, once Redis accepted the task


def enqueue_after_commit(
    tx: Transaction, client: AsyncClient, task: Task, **options: Any
) -> PendingEnqueue:
    """Enqueue ``task`` with ``client.enqueue(task, **options)`` after ``tx`` commits.

    Nothing reaches Redis before COMMIT; on rollback nothing ever does. A failed enqueue
    after a successful COMMIT surfaces as ``db.AfterCommitError`` from the transaction
    block (the rows stay committed).
    """
    pending = PendingEnqueue(task, dict(options))

    async def enqueue() -> None:
        pending.info = await client.enqueue(task, **options)

    tx.on_commit(enqueue)
    return pending
