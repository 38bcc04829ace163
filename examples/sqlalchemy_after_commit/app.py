"""Sign a user up and send the welcome email only once the user row is committed
(docs/integrations/sqlalchemy.md).

``sign_up`` writes the user and records the ``email:welcome`` task on the session; the
task reaches Redis after COMMIT, so the worker's ``send_welcome`` always finds the row. A
sign-up that fails (a taken name) rolls back and sends nothing.
"""

from __future__ import annotations

from sqlalchemy import Engine, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import pyasynq
from pyasynq.integrations.sqlalchemy import PendingEnqueue, enqueue_on_commit


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "example_users"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    email: Mapped[str] = mapped_column(String(200))
    welcomed: Mapped[bool] = mapped_column(default=False)


def sign_up(engine: Engine, client: pyasynq.Client, name: str, email: str) -> PendingEnqueue:
    """Create the user; the welcome task is enqueued when (and only if) that commits."""
    with Session(engine) as session, session.begin():
        session.add(User(name=name, email=email))
        task = pyasynq.Task.from_json("email:welcome", {"name": name})
        return enqueue_on_commit(session, client, task, max_retry=5)


def worker_mux(engine: Engine) -> pyasynq.ServeMux:
    """The worker's handlers: mark the user welcomed (a real one would send mail)."""
    mux = pyasynq.ServeMux()

    @mux.handler("email:welcome")
    def send_welcome(task: pyasynq.Task) -> None:
        with Session(engine) as session, session.begin():
            user = session.scalar(select(User).where(User.name == task.json()["name"]))
            if user is None:
                raise pyasynq.SkipRetry(f"no user {task.json()['name']!r}")
            user.welcomed = True

    return mux
