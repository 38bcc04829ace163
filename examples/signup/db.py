"""The example's database: SQLAlchemy's asyncio engine on SQLite (aiosqlite) or PostgreSQL
(psycopg).

``Database(url)`` takes ``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or a
``postgresql://`` URL (the async driver is picked here). Work happens in sessions::

    async with db.transaction() as session:      # BEGIN; COMMIT, or ROLLBACK on error
        session.add(user)
        enqueue_on_commit(session, client, task)  # reaches Redis only after COMMIT

    async with db.session() as session:          # reads
        user = await session.get(User, "alice")

Sessions keep their objects usable after COMMIT (``expire_on_commit=False``): the API
answers with the user it just created.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from .models import Base


class UniqueViolation(Exception):
    """An INSERT or UPDATE hit a UNIQUE or PRIMARY KEY constraint on ``column``."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: \w+\.(\w+)")
_PG_UNIQUE = re.compile(r"Key \((\w+)\)")


def unique_violation(exc: IntegrityError) -> UniqueViolation | None:
    """The UniqueViolation that ``exc`` is, or None for another integrity error."""
    message = str(exc.orig)
    if getattr(exc.orig, "sqlstate", None) == "23505":  # PostgreSQL's unique_violation
        m = _PG_UNIQUE.search(message)
        return UniqueViolation(m.group(1) if m else "?", message)
    m = _SQLITE_UNIQUE.search(message)
    return UniqueViolation(m.group(1), message) if m else None


def _engine(url: str) -> AsyncEngine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        parsed = None
    backend = parsed.get_backend_name() if parsed is not None else None
    if parsed is not None and backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed.set(drivername="sqlite+aiosqlite"))
        _sqlite_transactions(engine)
        return engine
    if parsed is not None and backend in ("postgresql", "postgres"):
        return create_async_engine(parsed.set(drivername="postgresql+psycopg"))
    raise ValueError(f"DATABASE_URL must start with sqlite:/// or postgresql://, got {url!r}")


def _sqlite_transactions(engine: AsyncEngine) -> None:
    """SQLite as the example needs it: real transactions, and readers next to a writer.

    The sqlite3 driver's own BEGIN handling skips SELECTs; SQLAlchemy's documented recipe
    turns it off and emits BEGIN itself, here ``BEGIN IMMEDIATE`` for write transactions
    (execution option ``sqlite_begin``) so that a read-then-write transaction cannot fail
    against another process's writer."""

    @event.listens_for(engine.sync_engine, "connect")
    def connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers (the worker) never block on the writer (the API) and see only
        # committed rows. busy_timeout: writers in other processes wait, not fail.
        for pragma in ("journal_mode=WAL", "busy_timeout=10000", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def begin(conn: Connection) -> None:
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', '')}")


class Database:
    """An async engine and its sessions: ``transaction()`` to write, ``session()`` to
    read."""

    def __init__(self, url: str) -> None:
        self.engine = _engine(url)
        self.dialect = self.engine.dialect.name
        self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._read_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(self._writer, expire_on_commit=False)
        # SQLite has one writer at a time anyway: this process's writers queue here rather
        # than poll the file lock.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None

    def _one_writer(self) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._write_lock or contextlib.nullcontext()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: COMMIT when the block ends, ROLLBACK when it
        raises. Tasks recorded with ``enqueue_on_commit`` go to Redis after the COMMIT
        (``EnqueueAfterCommitError`` if that fails: the rows stay committed)."""
        async with self._one_writer(), self._write_sessions() as session, session.begin():
            yield session

    def session(self) -> AsyncSession:
        """A session for reads (``async with db.session() as session``)."""
        return self._read_sessions()

    async def create_schema(self) -> None:
        """Create the tables if missing. Safe to run from several processes at once."""
        async with self.engine.connect() as conn:
            # A plain read when the tables exist: no write lock, so a worker starting
            # next to a long write transaction does not wait for it.
            if await conn.run_sync(lambda c: inspect(c).has_table("verify_emails")):
                return
        async with self._one_writer(), self._writer.begin() as conn:
            if self.dialect == "postgresql":
                # CREATE TABLE IF NOT EXISTS races in PostgreSQL; serialise the creators.
                await conn.execute(text("SELECT pg_advisory_xact_lock(5218)"))
            await conn.run_sync(Base.metadata.create_all)

    async def close(self) -> None:
        await self.engine.dispose()
