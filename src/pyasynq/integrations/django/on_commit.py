"""``enqueue_on_commit``: enqueue when the database transaction commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from pyasynq import Client, Task, TaskInfo

from .settings import get_client


@dataclass
class PendingEnqueue:
    """A task waiting for its transaction: ``info`` is set once it was enqueued."""

    task: Task
    options: dict[str, Any] = field(default_factory=dict)
    info: TaskInfo | None = None


def enqueue_on_commit(
    task: Task,
    *,
    using: str | None = None,
    client: Client | None = None,
    robust: bool = False,
    **options: Any,
) -> PendingEnqueue:
    """Enqueue ``task`` with ``client.enqueue(task, **options)`` once the current
    transaction on database ``using`` commits (at once outside ``atomic()``, as Django's
    ``transaction.on_commit``); nothing when it rolls back.

    ``client`` defaults to :func:`get_client`. With ``robust=False`` a failed enqueue
    raises from the end of the ``atomic()`` block (the rows are committed) and the later
    on-commit callbacks do not run; ``robust=True`` logs it and goes on (Django's rule).
    """
    if not isinstance(task, Task):
        raise TypeError(f"expected a pyasynq.Task, got {type(task).__name__}")
    pending = PendingEnqueue(task, dict(options))

    def enqueue() -> None:
        pending.info = (client or get_client()).enqueue(task, **options)

    transaction.on_commit(enqueue, using=using, robust=robust)
    return pending
