"""The distributor: what the API calls to hand work to the workers (the seed's
``RedisTaskDistributor``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncSession

from pyasynq import AsyncClient, Task, TaskInfo
from pyasynq.integrations.sqlalchemy import PendingEnqueue, enqueue_on_commit

TASK_SEND_VERIFY_EMAIL = "task:send_verify_email"
QUEUE_CRITICAL = "critical"
QUEUE_DEFAULT = "default"


@dataclass(frozen=True)
class PayloadSendVerifyEmail:
    username: str

    def to_task(self) -> Task:
        return Task.from_json(TASK_SEND_VERIFY_EMAIL, asdict(self))

    @classmethod
    def from_task(cls, task: Task) -> Self:
        try:
            data = json.loads(task.payload or b"")
            return cls(username=str(data["username"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"bad {TASK_SEND_VERIFY_EMAIL} payload {task.payload!r}") from exc


class TaskDistributor:
    """Enqueues ``task:send_verify_email`` with the seed's options: the critical queue,
    ``max_retry`` (10) and ``process_in`` (10 s), both configurable."""

    def __init__(self, client: AsyncClient, *, max_retry: int = 10, process_in: float = 10.0):
        self.client = client
        self.options: dict[str, Any] = {
            "queue": QUEUE_CRITICAL,
            "max_retry": max_retry,
            "process_in": process_in,
        }

    async def distribute_task_send_verify_email(
        self, payload: PayloadSendVerifyEmail, **options: Any
    ) -> TaskInfo:
        """Enqueue now, as the seed does. Called inside a database transaction this is
        the race the seed's ProcessIn papers over; prefer the after-commit form."""
        return await self.client.enqueue(payload.to_task(), **{**self.options, **options})

    def distribute_task_send_verify_email_after_commit(
        self, session: AsyncSession, payload: PayloadSendVerifyEmail, **options: Any
    ) -> PendingEnqueue:
        """Enqueue once ``session``'s transaction has committed; nothing if it rolls back
        (pyasynq's SQLAlchemy integration). ``.info`` is the TaskInfo once enqueued."""
        return enqueue_on_commit(
            session, self.client, payload.to_task(), **{**self.options, **options}
        )
