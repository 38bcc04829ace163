"""The sign-up example, for real: users created through the API get their verification
email from a worker process, through retries when the SMTP server refuses mail for a
while; a task for an unknown user is archived at once (SkipRetry)."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import redis
from signup_helpers import sign_up, task_message, tasks_left, wait_until

import pyasynq
from examples.signup.stack import Stack
from pyasynq._rdb import keys


def test_refusing_smtp_server_means_retries_then_delivery(
    stack: Callable[..., Stack], r: redis.Redis, database_url: str
) -> None:
    st = stack()
    store = st.start_sink(refuse_for=1.0).store
    api = st.start_api(wait=False)
    st.start_workers(1)
    st.wait_api()
    users = [f"user{i}" for i in range(8)]
    task_ids = {}
    for u in users:
        resp = sign_up(api, u)
        assert resp.status_code == 201, resp.text
        task_ids[resp.json()["verify_email_task"]["id"]] = u

    wait_until(lambda: store.counts()[1] == len(users) and tasks_left(r) == 0, 30, "all emails")
    messages = store.messages()
    # Exactly one email per user, each from the task created for that user.
    assert sorted(m.rcpt_to for m in messages) == sorted(f"{u}@example.com" for u in users)
    assert {m.task_id: m.rcpt_to.split("@")[0] for m in messages} == task_ids

    with sqlite3.connect(store.path) as conn:
        refused = [tid for (tid,) in conn.execute("SELECT task_id FROM refusals")]
    assert refused, "the sink refused nothing: no retry was exercised"
    # Every refused task was retried until delivered; asynq counted each refusal as a
    # failed attempt and each attempt as processed.
    assert set(refused) <= set(task_ids)
    assert int(r.get(keys.failed_total_key("critical")) or 0) == len(refused)
    assert int(r.get(keys.processed_total_key("critical")) or 0) == len(refused) + len(users)
    assert r.zcard(keys.archived_key("critical")) == 0

    # One verify_emails row per user however often its task ran, its code in the email.
    db_path = database_url.removeprefix("sqlite:///")
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT username, secret_code, sent_at FROM verify_emails").fetchall()
    assert sorted(u for u, _, _ in rows) == sorted(users)
    codes = {u: code for u, code, sent_at in rows if sent_at is not None}
    assert len(codes) == len(users)
    for m in messages:
        assert codes[m.rcpt_to.split("@")[0]] in m.body
    # The structured log shows the failed attempts and the deliveries on a retry.
    log = st.worker_log(0).read_text()
    assert log.count('msg="process task failed"') == len(refused)
    retried = Counter(refused)
    for tid, n in retried.items():
        assert f"task_id={tid} retry={n} " in log, f"task {tid} not delivered on retry {n}"


def test_unknown_user_is_archived_with_skip_retry(
    stack: Callable[..., Stack], r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    st = stack()
    store = st.start_sink().store
    st.start_workers(1)
    with pyasynq.Client(redis_url) as client:
        task = pyasynq.Task.from_json("task:send_verify_email", {"username": "ghost"})
        info = client.enqueue(task, queue="critical", max_retry=10)

    archived = keys.archived_key("critical")
    wait_until(lambda: r.zscore(archived, info.id) is not None, 20, "the task to be archived")
    msg = task_message(r, info.id)
    assert msg.error_msg == "user 'ghost' not found: skip retry"
    assert msg.retried == 0, "SkipRetry must archive at once, without retries"
    assert tasks_left(r) == 0
    assert store.counts() == (0, 0, 0)
    log = st.worker_log(0).read_text()
    assert 'msg="process task failed"' in log and "user 'ghost' not found" in log


def test_the_link_in_the_email_verifies_the_address_once(
    stack: Callable[..., Stack], r: redis.Redis, any_database_url: str
) -> None:
    st = stack(any_database_url)
    store = st.start_sink().store
    api = st.start_api()  # first: the workers put its URL in the link
    st.start_workers(1)
    assert sign_up(api, "erin").status_code == 201
    wait_until(lambda: store.counts()[1] == 1, 20, "the email")
    [message] = store.messages()
    m = re.search(r"(http://\S+/verify_email\?email_id=(\d+)&secret_code=\S+)", message.body)
    assert m and m.group(1).startswith(api), message.body

    wrong = httpx.get(f"{api}/verify_email?email_id={m.group(2)}&secret_code=nope", timeout=10)
    assert wrong.status_code == 404
    assert httpx.get(f"{api}/users/erin").json()["user"]["is_email_verified"] is False
    resp = httpx.get(m.group(1), timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["user"]["is_email_verified"] is True
    assert httpx.get(f"{api}/users/erin").json()["user"]["is_email_verified"] is True
    assert httpx.get(m.group(1), timeout=10).status_code == 404  # a code works once
