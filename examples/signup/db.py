"""A small database layer for the example: SQLite (the standard library's sqlite3) or
PostgreSQL (psycopg).

``Database.connect(url)`` takes ``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or a
``postgresql://`` URL. Work happens in transactions::

    async with db.transaction() as tx:
        await tx.execute("INSERT INTO users (...) VALUES (?, ?)", a, b)
        tx.on_commit(callback)          # runs only once COMMIT succeeded

Queries use ``?`` placeholders on both backends (translated to ``%s`` for psycopg).
``on_commit`` callbacks are the hook for enqueue-after-commit (see ``after_commit.py``):
they run after a successful COMMIT, in order, and are dropped when the transaction rolls
back or its COMMIT fails.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

Row = dict[str, Any]
T = TypeVar("T")
Callback = Callable[[], Awaitable[object]]

# The example's schema, after simplebank's users and verify_emails tables. Times are Unix
# seconds (DOUBLE PRECISION) so that both backends store and return the same thing.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        username TEXT PRIMARY KEY,
        hashed_password TEXT NOT NULL,
        full_name TEXT NOT NULL,
        email TEXT NOT NULL UNIQUE,
        is_email_verified BOOLEAN NOT NULL DEFAULT FALSE,
        created_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS verify_emails (
        id {serial_pk},
        username TEXT NOT NULL REFERENCES users (username),
        email TEXT NOT NULL,
        secret_code TEXT NOT NULL,
        task_id TEXT NOT NULL UNIQUE,
        is_used BOOLEAN NOT NULL DEFAULT FALSE,
        created_at DOUBLE PRECISION NOT NULL,
        expired_at DOUBLE PRECISION NOT NULL,
        sent_at DOUBLE PRECISION
    )""",
)


class UniqueViolation(Exception):
    """An INSERT or UPDATE hit a UNIQUE or PRIMARY KEY constraint on ``column``."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


class AfterCommitError(Exception):
    """The transaction COMMITTED, but some on-commit callbacks failed (``errors``)."""

    def __init__(self, errors: Sequence[BaseException]) -> None:
        super().__init__(
            f"transaction committed, but {len(errors)} after-commit action(s) failed: "
            + "; ".join(f"{type(e).__name__}: {e}" for e in errors)
        )
        self.errors = list(errors)


class _Conn(Protocol):
    async def execute(self, sql: str, params: Sequence[Any]) -> int: ...
    async def fetchall(self, sql: str, params: Sequence[Any]) -> list[Row]: ...


class Transaction:
    """One open transaction. Not shared between tasks."""

    def __init__(self, conn: _Conn) -> None:
        self._conn = conn
        self._on_commit: list[Callback] = []

    async def execute(self, sql: str, *params: Any) -> int:
        """Run a statement; returns the number of rows it changed."""
        return await self._conn.execute(sql, params)

    async def fetchall(self, sql: str, *params: Any) -> list[Row]:
        return await self._conn.fetchall(sql, params)

    async def fetchone(self, sql: str, *params: Any) -> Row | None:
        rows = await self._conn.fetchall(sql, params)
        return rows[0] if rows else None

    def on_commit(self, callback: Callback) -> None:
        """Run ``await callback()`` after COMMIT succeeds; never if the transaction
        rolls back. Callbacks run in registration order."""
        self._on_commit.append(callback)

    async def _after_commit(self) -> None:
        callbacks, self._on_commit = self._on_commit, []
        errors: list[BaseException] = []
        for cb in callbacks:
            try:
                await cb()
            except Exception as exc:  # the data is committed: run the rest anyway
                errors.append(exc)
        if errors:
            raise AfterCommitError(errors)


class Database:
    """A connection (SQLite) or a small pool (PostgreSQL) with transactions."""

    def __init__(self, backend: _SQLite | _Postgres) -> None:
        self._backend = backend
        self.dialect = backend.dialect

    @classmethod
    async def connect(cls, url: str) -> Database:
        if url.startswith("sqlite:"):
            return cls(await _SQLite.open(_sqlite_path(url)))
        if url.startswith(("postgresql:", "postgres:")):
            return cls(_Postgres(url))
        raise ValueError(f"DATABASE_URL must start with sqlite:/// or postgresql://, got {url!r}")

    async def close(self) -> None:
        await self._backend.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """BEGIN; COMMIT when the block ends, ROLLBACK when it raises. After a successful
        COMMIT the transaction's on-commit callbacks run (AfterCommitError if any fail)."""
        async with self._backend.begin() as conn:
            tx = Transaction(conn)
            yield tx
        # Reached only when COMMIT succeeded: a raising block or a failed COMMIT skips it.
        await tx._after_commit()

    async def fetchone(self, sql: str, *params: Any) -> Row | None:
        """One read outside an explicit transaction."""
        rows = await self._backend.read(sql, params)
        return rows[0] if rows else None

    async def create_schema(self) -> None:
        """Create the tables if missing. Safe to run from several processes at once."""
        try:
            # A plain read when the tables exist: no write lock, so a worker starting
            # next to a long write transaction does not wait for it.
            await self.fetchone("SELECT 1 FROM verify_emails LIMIT 1")
            return
        except Exception:  # no such table: sqlite3.OperationalError, psycopg UndefinedTable
            pass
        serial = "BIGSERIAL PRIMARY KEY"
        if self.dialect == "sqlite":
            serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
        async with self.transaction() as tx:
            if self.dialect == "postgresql":
                # CREATE TABLE IF NOT EXISTS races in PostgreSQL; serialise the creators.
                await tx.execute("SELECT pg_advisory_xact_lock(5218)")
            for ddl in _SCHEMA:
                await tx.execute(ddl.format(serial_pk=serial))


def _sqlite_path(url: str) -> str:
    rest = url.removeprefix("sqlite:")
    if not rest.startswith("///"):
        raise ValueError(f"use sqlite:///relative/path or sqlite:////absolute/path, got {url!r}")
    return rest[3:] or ":memory:"


_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: \w+\.(\w+)")
_PG_UNIQUE = re.compile(r"Key \((\w+)\)")


class _SQLiteConn:
    """sqlite3 calls, each run on the database's one thread (sqlite3 objects stay on the
    thread that made them, and the event loop never blocks on a lock or the disk)."""

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self.conn = conn
        self._executor = executor

    async def call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        try:
            return await self.call(lambda: self.conn.execute(sql, params).rowcount)
        except sqlite3.IntegrityError as exc:
            m = _SQLITE_UNIQUE.search(str(exc))
            if m:
                raise UniqueViolation(m.group(1), str(exc)) from exc
            raise

    async def fetchall(self, sql: str, params: Sequence[Any]) -> list[Row]:
        rows = await self.call(lambda: self.conn.execute(sql, params).fetchall())
        return [dict(r) for r in rows]


class _SQLite:
    dialect = "sqlite"

    def __init__(self, conn: _SQLiteConn) -> None:
        self._conn = conn
        # One connection per process: SQLite has one writer at a time anyway, and a
        # connection can hold only one transaction.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> _SQLite:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # An executor thread, not a thread of our own: idle executor threads never keep
        # the process from exiting, even when nobody closes the database.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signup-sqlite")

        def connect() -> sqlite3.Connection:
            # isolation_level=None: no implicit transactions, we BEGIN ourselves.
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            # WAL: readers (the worker) never block on the writer (the API) and see only
            # committed rows. busy_timeout: writers in other processes wait, not fail.
            for pragma in ("journal_mode=WAL", "busy_timeout=10000", "foreign_keys=ON"):
                conn.execute(f"PRAGMA {pragma}")
            return conn

        conn = await asyncio.get_running_loop().run_in_executor(executor, connect)
        return cls(_SQLiteConn(conn, executor))

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[_SQLiteConn]:
        async with self._lock:
            # IMMEDIATE takes the write lock now, so a read-then-write transaction cannot
            # deadlock against another process's writer.
            await self._conn.execute("BEGIN IMMEDIATE", ())
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK", ())
                raise
            await self._conn.execute("COMMIT", ())

    async def read(self, sql: str, params: Sequence[Any]) -> list[Row]:
        async with self._lock:
            return await self._conn.fetchall(sql, params)

    async def close(self) -> None:
        await self._conn.call(self._conn.conn.close)
        self._conn._executor.shutdown(wait=False)


class _PgConn:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Sequence[Any]) -> int:
        import psycopg

        try:
            cur = await self.conn.execute(sql.replace("?", "%s"), params)
        except psycopg.errors.UniqueViolation as exc:
            m = _PG_UNIQUE.search(exc.diag.message_detail or "")
            raise UniqueViolation(m.group(1) if m else "?", str(exc)) from exc
        return int(cur.rowcount)

    async def fetchall(self, sql: str, params: Sequence[Any]) -> list[Row]:
        cur = await self.conn.execute(sql.replace("?", "%s"), params)
        return list(await cur.fetchall())


class _Postgres:
    dialect = "postgresql"
    max_idle = 10

    def __init__(self, url: str) -> None:
        self.url = url
        self._idle: list[Any] = []

    async def _acquire(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, row_factory=dict_row
        )

    async def _release(self, conn: Any) -> None:
        import psycopg

        if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE and (
            len(self._idle) < self.max_idle
        ):
            self._idle.append(conn)
        else:
            await conn.close()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[_PgConn]:
        conn = await self._acquire()
        try:
            # psycopg's transaction block: BEGIN, then COMMIT or ROLLBACK on exit.
            async with conn.transaction():
                yield _PgConn(conn)
        finally:
            await self._release(conn)

    async def read(self, sql: str, params: Sequence[Any]) -> list[Row]:
        conn = await self._acquire()
        try:
            return await _PgConn(conn).fetchall(sql, params)
        finally:
            await self._release(conn)

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().close()
