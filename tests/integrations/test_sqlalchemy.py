"""Enqueue after commit with SQLAlchemy, Session and AsyncSession, on SQLite and
PostgreSQL, against a real Redis: a commit enqueues once, a rollback enqueues nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="needs the sqlalchemy extra")

import redis
from sqlalchemy import Engine, String, create_engine, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import pyasynq
from pyasynq._rdb import keys
from pyasynq.integrations.sqlalchemy import EnqueueAfterCommitError, enqueue_on_commit
from pyasynq.testing import Worker

PENDING = keys.pending_key("default")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)


def _urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, dict]]:
    """(sync URL, async URL, connect_args) for the parametrized backend."""
    if request.param == "sqlite":
        db = tmp_path / "app.sqlite"
        yield f"sqlite:///{db}", f"sqlite+aiosqlite:///{db}", {}
        return
    url, schema = request.getfixturevalue("postgres_schema")
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    yield url, url, {"options": f"-csearch_path={schema}"}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    for sync_url, _, args in _urls(request, tmp_path):
        eng = create_engine(sync_url, connect_args=args)
        Base.metadata.create_all(eng)
        yield eng
        eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def async_engine(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AsyncEngine]:
    for _, async_url, args in _urls(request, tmp_path):
        eng = create_async_engine(async_url, connect_args=args)
        async with eng.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        yield eng
        await eng.dispose()


def test_commit_enqueues_once_after_the_rows_are_visible(
    engine: Engine, pyasynq_client: pyasynq.Client, pyasynq_worker: Worker, r: redis.Redis
) -> None:
    with Session(engine) as session, session.begin():
        session.add(User(name="ada"))
        pending = enqueue_on_commit(session, pyasynq_client, pyasynq.Task("welcome", b"ada"))
        session.flush()
        assert r.llen(PENDING) == 0  # nothing reaches Redis before COMMIT
    assert pending.info is not None and pending.error is None
    assert r.lrange(PENDING, 0, -1) == [pending.info.id.encode()]

    found: list[str | None] = []

    def welcome(task: pyasynq.Task) -> None:  # the worker sees the committed row
        with Session(engine) as s:
            found.append(s.scalar(select(User.name).where(User.name == task.payload.decode())))

    pyasynq_worker.run_until_idle(welcome)
    assert found == ["ada"]


def test_rollback_enqueues_nothing(
    engine: Engine, pyasynq_client: pyasynq.Client, r: redis.Redis
) -> None:
    with Session(engine) as session:
        with pytest.raises(RuntimeError, match="abort"), session.begin():
            session.add(User(name="bob"))
            pending = enqueue_on_commit(session, pyasynq_client, pyasynq.Task("welcome"))
            session.flush()
            raise RuntimeError("abort")
        # The same session commits other work later: the dropped task stays dropped.
        with session.begin():
            session.add(User(name="cy"))
    assert pending.info is None
    assert r.exists(PENDING) == 0
    with Session(engine) as s:
        assert s.scalars(select(User.name)).all() == ["cy"]


def test_a_session_closed_without_commit_drops_its_tasks(
    engine: Engine, pyasynq_client: pyasynq.Client, r: redis.Redis
) -> None:
    session = Session(engine)
    enqueue_on_commit(session, pyasynq_client, pyasynq.Task("welcome"))  # no SQL ran yet
    session.close()
    with session.begin():
        session.add(User(name="dee"))
    assert r.exists(PENDING) == 0


def test_failed_enqueue_after_commit_keeps_the_rows_and_says_which_task(
    engine: Engine, pyasynq_client: pyasynq.Client, r: redis.Redis
) -> None:
    pyasynq_client.enqueue(pyasynq.Task("welcome"), task_id="taken")
    with Session(engine) as session:
        session.add(User(name="eve"))
        first = enqueue_on_commit(session, pyasynq_client, pyasynq.Task("audit"))
        dup = enqueue_on_commit(session, pyasynq_client, pyasynq.Task("welcome"), task_id="taken")
        with pytest.raises(EnqueueAfterCommitError, match="1 task") as err:
            session.commit()
    assert err.value.failed == [dup]
    assert isinstance(dup.error, pyasynq.TaskIDConflictError)
    assert first.info is not None  # the others still went out
    with Session(engine) as s:
        assert s.scalars(select(User.name)).all() == ["eve"]


async def test_async_session_commit_enqueues_and_rollback_does_not(
    async_engine: AsyncEngine, redis_url: str, r: redis.Redis
) -> None:
    async with pyasynq.AsyncClient(redis_url) as client, AsyncSession(async_engine) as session:
        with pytest.raises(RuntimeError, match="abort"):
            async with session.begin():
                session.add(User(name="rolled-back"))
                dropped = enqueue_on_commit(session, client, pyasynq.Task("welcome"))
                await session.flush()
                raise RuntimeError("abort")
        async with session.begin():
            session.add(User(name="ada"))
            sent = enqueue_on_commit(session, client, pyasynq.Task("welcome"), queue="q")
            await session.flush()
            assert r.exists(keys.pending_key("q")) == 0
    assert dropped.info is None
    assert sent.info is not None and sent.info.queue == "q"
    assert r.lrange(keys.pending_key("q"), 0, -1) == [sent.info.id.encode()]
    assert r.exists(PENDING) == 0


def test_session_and_client_must_match(engine: Engine, redis_url: str) -> None:
    with Session(engine) as session:
        with pytest.raises(TypeError, match="AsyncClient needs AsyncSession"):
            enqueue_on_commit(session, pyasynq.AsyncClient(redis_url), pyasynq.Task("t"))
        with pytest.raises(TypeError, match="SQLAlchemy Session"):
            enqueue_on_commit(object(), pyasynq.Client(redis_url), pyasynq.Task("t"))  # type: ignore[arg-type]


def test_a_rolled_back_savepoint_drops_only_its_own_tasks(
    engine: Engine, pyasynq_client: pyasynq.Client, r: redis.Redis
) -> None:
    with Session(engine) as session, session.begin():
        session.add(User(name="ada"))
        outer = enqueue_on_commit(session, pyasynq_client, pyasynq.Task("welcome"))
        with pytest.raises(RuntimeError), session.begin_nested():
            session.add(User(name="bob"))
            inner = enqueue_on_commit(session, pyasynq_client, pyasynq.Task("audit"))
            session.flush()
            raise RuntimeError("savepoint rolled back")
        with session.begin_nested():  # released: its task goes out with the COMMIT
            released = enqueue_on_commit(session, pyasynq_client, pyasynq.Task("audit"))
    assert inner.info is None
    assert outer.info is not None and released.info is not None
    assert r.lrange(PENDING, 0, -1) == [released.info.id.encode(), outer.info.id.encode()]
