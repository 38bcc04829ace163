"""A worker SIGKILLed while it sends emails loses none: every user gets an email, and a
user gets a second one only when the first was sent by the killed worker (its task was in
flight at the kill, so it ran again elsewhere)."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import redis
from signup_helpers import tasks_left, wait_until

import pyasynq
from examples.signup import queries
from examples.signup.db import Database
from examples.signup.distributor import PayloadSendVerifyEmail, TaskDistributor
from examples.signup.stack import Stack
from pyasynq._rdb import keys

N_USERS = 40


async def _create_users(database_url: str, redis_url: str, names: list[str]) -> None:
    """Users committed with their tasks enqueued after commit (the API's path, minus
    password hashing, which would only slow the test)."""
    db = Database(database_url)
    await db.create_schema()
    async with pyasynq.AsyncClient(redis_url) as client:
        distributor = TaskDistributor(client, process_in=0)
        for name in names:
            async with db.transaction() as session:
                await queries.create_user(
                    session, username=name, hashed_password="-", full_name=name,
                    email=f"{name}@example.com",
                )  # fmt: skip
                distributor.distribute_task_send_verify_email_after_commit(
                    session, PayloadSendVerifyEmail(name)
                )
    await db.close()


_TASK_ID = re.compile(r"task_id=(\S+)")


def _runs(log: Path) -> tuple[set[str], set[str]]:
    """Task ids a worker started, and those it finished, from its structured log."""
    started: set[str] = set()
    finished: set[str] = set()
    for line in log.read_text().splitlines():
        m = _TASK_ID.search(line)
        if m is None:
            continue
        if 'msg="sending verify email"' in line:
            started.add(m.group(1))
        elif 'msg="sent verify email"' in line or 'msg="verify email already sent"' in line:
            finished.add(m.group(1))
    return started, finished


def _in_flight(log: Path) -> set[str]:
    started, finished = _runs(log)
    return started - finished


def test_sigkilled_worker_loses_no_email(
    stack: Callable[..., Stack], r: redis.Redis, redis_url: str, database_url: str
) -> None:
    # Each message is held 0.2 s by the sink, so the workers always have tasks in flight.
    st = stack(SIGNUP_CONCURRENCY="4")
    store = st.start_sink(delay=0.2).store
    victim, survivor = st.start_workers(2)
    names = [f"user{i:02d}" for i in range(N_USERS)]
    asyncio.run(_create_users(database_url, redis_url, names))

    victim_log, survivor_log = st.worker_log(0), st.worker_log(1)
    wait_until(
        lambda: store.counts()[0] >= 5 and _in_flight(victim_log), 20, "the victim to be busy"
    )
    st.kill_worker(0)
    in_flight = _in_flight(victim_log)  # final: the log of a dead process

    # The survivor's recoverer takes the victim's tasks once their leases expire.
    wait_until(
        lambda: store.counts()[1] == N_USERS and tasks_left(r) == 0, 30, "every user's email"
    )
    assert r.zcard(keys.archived_key("critical")) == 0
    sent: dict[str, list[int]] = defaultdict(list)
    for m in store.messages():
        sent[m.rcpt_to.split("@")[0]].append(m.worker_pid)
    assert sorted(sent) == names, "some users got no email"
    duplicates = {u: pids for u, pids in sent.items() if len(pids) > 1}
    for user, pids in duplicates.items():
        # Every copy but the last came from the killed worker, which died before it could
        # acknowledge the task: the survivor ran it again.
        assert set(pids[:-1]) == {victim}, f"{user} got {len(pids)} emails from {pids}"
        assert pids[-1] == survivor
    # Every task the victim had in flight was finished by the survivor.
    _, finished_by_survivor = _runs(survivor_log)
    assert in_flight, "the kill caught no task in flight"
    assert in_flight <= finished_by_survivor
    print(
        f"\n{N_USERS} users; worker {victim} SIGKILLed with {len(in_flight)} tasks in flight, "
        f"all finished by worker {survivor}; {len(duplicates)} duplicate emails "
        f"(users: {sorted(duplicates) or 'none'}), 0 lost"
    )
