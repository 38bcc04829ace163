"""Enqueue after commit, against a running worker, on SQLite and PostgreSQL.

The seed enqueues inside the user's transaction. With no ProcessIn delay the worker runs
the task before COMMIT, finds no user and archives the task (SkipRetry): the user never
gets an email. Enqueued after commit (pyasynq.integrations.sqlalchemy.enqueue_on_commit on
the example's AsyncSession), the same task finds the user and the email goes out; a
rolled-back transaction enqueues nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import redis
from signup_helpers import task_message, tasks_left
from sqlalchemy.ext.asyncio import AsyncSession

import pyasynq
from examples.signup import queries
from examples.signup.db import Database
from examples.signup.distributor import PayloadSendVerifyEmail, TaskDistributor
from examples.signup.stack import Stack
from pyasynq._rdb import keys

ARCHIVED = keys.archived_key("critical")
PROCESSED = keys.processed_total_key("critical")


async def _create(session: AsyncSession, name: str) -> None:
    await queries.create_user(
        session, username=name, hashed_password="-", full_name=name, email=f"{name}@example.com"
    )


async def _poll(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_enqueue_inside_the_transaction_loses_the_email_after_commit_does_not(
    stack: Callable[..., Stack], r: redis.Redis, redis_url: str, any_database_url: str
) -> None:
    db = Database(any_database_url)
    await db.create_schema()
    st = stack(any_database_url)
    store = st.start_sink().store
    st.start_workers(1)
    client = pyasynq.AsyncClient(redis_url)
    distributor = TaskDistributor(client, process_in=0)  # no ProcessIn to hide the race
    try:
        # The seed's way: enqueue inside the transaction. Keep the transaction open until
        # the worker has dealt with the task, as a slow COMMIT (or a busy API) would.
        async with db.transaction() as tx:
            await _create(tx, "early")
            info = await distributor.distribute_task_send_verify_email(
                PayloadSendVerifyEmail("early")
            )
            await _poll(lambda: r.zscore(ARCHIVED, info.id) is not None, 20, "the worker")
        async with db.session() as session:
            assert await queries.get_user(session, "early") is not None  # committed, yet:
        assert task_message(r, info.id).error_msg == "user 'early' not found: skip retry"

        # The fix: the task waits for COMMIT.
        async with db.transaction() as tx:
            await _create(tx, "late")
            pending = distributor.distribute_task_send_verify_email_after_commit(
                tx, PayloadSendVerifyEmail("late")
            )
            assert pending.info is None
            assert tasks_left(r) == 0, "nothing may reach Redis before COMMIT"
        assert pending.info is not None
        late_id = pending.info.id
        await _poll(lambda: store.counts()[1] == 1 and tasks_left(r) == 0, 20, "the email")
        [message] = store.messages()
        assert message.rcpt_to == "late@example.com" and message.task_id == late_id
        assert r.zscore(ARCHIVED, late_id) is None
        assert r.zcard(ARCHIVED) == 1  # only the early one
        # One task ran for "late" (two ran in all, with "early"'s): enqueued once.
        assert int(r.get(PROCESSED) or 0) == 2

        # Rolled back: no user, no task.
        with pytest.raises(RuntimeError, match="payment declined"):
            async with db.transaction() as tx:
                await _create(tx, "never")
                dropped = distributor.distribute_task_send_verify_email_after_commit(
                    tx, PayloadSendVerifyEmail("never")
                )
                raise RuntimeError("payment declined")
        assert dropped.info is None
        async with db.session() as session:
            assert await queries.get_user(session, "never") is None
        assert tasks_left(r) == 0 and r.zcard(ARCHIVED) == 1
        assert int(r.get(PROCESSED) or 0) == 2
        assert not [k for k in r.scan_iter(match=keys.task_key("critical", "*"))
                    if b"never" in (r.hget(k, "msg") or b"")]  # fmt: skip
    finally:
        await client.aclose()
        await db.close()
