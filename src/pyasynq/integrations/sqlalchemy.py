"""Enqueue after commit with SQLAlchemy (``pip install 'pyasynq[sqlalchemy]'``).

A task enqueued inside a database transaction can run before the transaction commits (the
worker finds no row) or after it rolled back (the work was never meant to happen).
:func:`enqueue_on_commit` records the task on the session instead; it reaches Redis only
once the session's transaction has committed, and never when it rolls back::

    with Session(engine) as session, session.begin():
        session.add(user)
        enqueue_on_commit(session, client, pyasynq.Task("email:welcome", user_id))
    # committed: the task is enqueued now

    async with AsyncSession(engine) as session, session.begin():
        session.add(user)
        pending = enqueue_on_commit(session, async_client, task, queue="critical")
    pending.info  # the TaskInfo once enqueued

Called outside a transaction, it begins one, as a query would. A plain ``Session`` takes
a :class:`pyasynq.Client`, an ``AsyncSession`` a :class:`pyasynq.AsyncClient`. The tasks
wait in ``session.info``; listeners on :class:`sqlalchemy.orm.Session` (installed on first
use) enqueue them in order after the outermost COMMIT and drop them when that transaction
rolls back or ends without a commit. A SAVEPOINT (``begin_nested``) that rolls back drops
the tasks recorded inside it, and only those.

If an enqueue fails after COMMIT the rows stay committed: ``commit()`` raises
:class:`EnqueueAfterCommitError`, which lists the tasks (their ``PendingEnqueue`` has
``error`` set) so the caller can retry them. A crash between COMMIT and the enqueue loses
the tasks (at most once); a transactional outbox closes that gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

try:
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import Session, SessionTransaction
    from sqlalchemy.util import await_only
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "pyasynq.integrations.sqlalchemy needs SQLAlchemy 2: pip install 'pyasynq[sqlalchemy]'"
    ) from exc

from pyasynq import AsyncClient, Client, PyAsynqError, Task, TaskInfo

__all__ = ["EnqueueAfterCommitError", "PendingEnqueue", "enqueue_on_commit"]

KEY = "pyasynq.on_commit"


@dataclass
class PendingEnqueue:
    """A task waiting for its session's COMMIT: ``info`` once enqueued, ``error`` when the
    enqueue after COMMIT failed."""

    task: Task
    client: Client | AsyncClient
    options: dict[str, Any] = field(default_factory=dict)
    info: TaskInfo | None = None
    error: BaseException | None = None
    # The innermost transaction (maybe a SAVEPOINT) open when the task was recorded.
    transaction: SessionTransaction | None = field(default=None, repr=False, compare=False)


class EnqueueAfterCommitError(PyAsynqError):
    """The transaction committed but some of its tasks could not be enqueued; ``failed``
    holds them (retry each with ``client.enqueue(p.task, **p.options)``)."""

    def __init__(self, failed: list[PendingEnqueue]) -> None:
        self.failed = failed
        detail = "; ".join(f"{p.task.type}: {p.error}" for p in failed)
        super().__init__(
            f"the transaction committed, but {len(failed)} task(s) were not enqueued "
            f"({detail}); retry them from EnqueueAfterCommitError.failed"
        )


def enqueue_on_commit(
    session: Session | AsyncSession, client: Client | AsyncClient, task: Task, **options: Any
) -> PendingEnqueue:
    """Enqueue ``task`` with ``client.enqueue(task, **options)`` once ``session`` commits."""
    if isinstance(session, AsyncSession):
        if not isinstance(client, AsyncClient):
            raise TypeError("with an AsyncSession, pass a pyasynq.AsyncClient")
        target = session.sync_session
    elif isinstance(session, Session):
        if not isinstance(client, Client):
            raise TypeError(
                "with a Session, pass a pyasynq.Client (AsyncClient needs AsyncSession)"
            )
        target = session
    else:
        raise TypeError(f"expected a SQLAlchemy Session or AsyncSession, got {session!r}")
    if not isinstance(task, Task):
        raise TypeError(f"expected a pyasynq.Task, got {type(task).__name__}")
    _install()
    if target.get_transaction() is None:
        # Begin now, as a first query would: the tasks belong to this transaction and go
        # with it when it ends without a commit.
        target.begin()
    trans = target.get_nested_transaction() or target.get_transaction()
    pending = PendingEnqueue(task, client, dict(options), transaction=trans)
    target.info.setdefault(KEY, []).append(pending)
    return pending


def _install() -> None:
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_soft_rollback", _after_soft_rollback)
        event.listen(Session, "after_transaction_end", _after_transaction_end)


def _after_commit(session: Session) -> None:
    pending: list[PendingEnqueue] = session.info.pop(KEY, [])
    failed = []
    for p in pending:
        try:
            if isinstance(p.client, AsyncClient):
                # An AsyncSession commits inside SQLAlchemy's greenlet: await from here.
                p.info = await_only(p.client.enqueue(p.task, **p.options))
            else:
                p.info = p.client.enqueue(p.task, **p.options)
        except Exception as exc:
            p.error = exc
            failed.append(p)
    if failed:
        raise EnqueueAfterCommitError(failed)


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    # A transaction or SAVEPOINT rolled back: drop the tasks recorded inside it.
    pending: list[PendingEnqueue] | None = session.info.get(KEY)
    if pending:
        pending[:] = [p for p in pending if not _inside(p.transaction, previous)]


def _inside(trans: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while trans is not None:
        if trans is outer:
            return True
        trans = trans.parent
    return False


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without after_commit (closed, or rolled back
    # before any connection was used): its tasks go.
    if transaction.parent is None:
        session.info.pop(KEY, None)
