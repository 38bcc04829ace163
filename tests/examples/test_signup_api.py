"""The sign-up API over a real database: a created user gets exactly one
``task:send_verify_email`` with the seed's options; invalid requests get a 4xx and
enqueue nothing."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from signup_helpers import sign_up, task_message

from examples.signup.stack import Stack
from pyasynq._rdb import keys

SCHEDULED = keys.scheduled_key("critical")


def _all_task_ids(r: redis.Redis) -> set[str]:
    return {
        k.decode().rsplit(":", 1)[1] for k in r.scan_iter(match=keys.task_key("critical", "*"))
    } | {k.decode().rsplit(":", 1)[1] for k in r.scan_iter(match=keys.task_key("default", "*"))}


def test_create_user_and_validation_errors(
    stack: Callable[..., Stack], r: redis.Redis, any_database_url: str
) -> None:
    st = stack(any_database_url, SIGNUP_PROCESS_IN="10")  # the seed's delay; no worker runs
    api = st.start_api()

    resp = sign_up(api, "alice")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["user"]["username"] == "alice" and body["user"]["is_email_verified"] is False
    task = body["verify_email_task"]
    assert (task["type"], task["queue"], task["state"], task["max_retry"]) == (
        "task:send_verify_email", "critical", "scheduled", 10,
    )  # fmt: skip
    # Stored as the seed asks: critical queue, MaxRetry 10, ProcessIn 10 s.
    assert _all_task_ids(r) == {task["id"]}
    msg = task_message(r, task["id"])
    assert (msg.type, msg.queue, msg.retry, msg.payload) == (
        "task:send_verify_email", "critical", 10, b'{"username":"alice"}',
    )  # fmt: skip
    score = r.zscore(SCHEDULED, task["id"])
    assert score is not None and 9 <= score - body["user"]["created_at"] <= 11

    bad = [
        (sign_up(api, "bob", email="not-an-email"), 422, "email"),
        (sign_up(api, "Bob!"), 422, "username"),
        (sign_up(api, "bob", password="123"), 422, "password"),
        (httpx.post(f"{api}/users", json={"username": "bob"}), 422, "email"),
        (httpx.post(f"{api}/users", content=b"{not json"), 400, None),
        (httpx.post(f"{api}/users", json=["bob"]), 400, None),
        (sign_up(api, "alice", email="alice2@example.com"), 409, "username"),
        (sign_up(api, "carol", email="alice@example.com"), 409, "email"),
    ]
    for resp, status, field in bad:
        assert resp.status_code == status, resp.text
        if status == 422:
            assert field in resp.json()["fields"]
        if status == 409:
            assert resp.json()["field"] == field

    # Nothing else was enqueued, and no refused user exists.
    assert _all_task_ids(r) == {task["id"]}
    assert r.zcard(SCHEDULED) == 1 and r.llen(keys.pending_key("critical")) == 0
    for name in ("bob", "carol"):
        assert httpx.get(f"{api}/users/{name}").status_code == 404
    assert httpx.get(f"{api}/users/alice").json()["user"]["email"] == "alice@example.com"


@pytest.mark.single_node
async def test_enqueue_failing_after_commit_keeps_the_user_and_says_so(
    r: redis.Redis, redis_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from examples.signup.api import app

    # Redis refuses every command on database 99: the enqueue after COMMIT fails.
    monkeypatch.setenv("PYASYNQ_REDIS_URL", urlsplit(redis_url)._replace(path="/99").geturl())
    monkeypatch.setenv("DATABASE_URL", database_url)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as http,
    ):
        resp = await http.post(
            "/users",
            json={"username": "dora", "full_name": "Dora", "email": "dora@example.com",
                  "password": "secret123"},
        )  # fmt: skip
        assert resp.status_code == 201, resp.text
        body = resp.json()
        # The user is committed, the task is missing, and the answer says which.
        assert body["user"]["username"] == "dora" and body["verify_email_task"] is None
        assert "committed" in body["warning"] and "task:send_verify_email" in body["warning"]
        user = (await http.get("/users/dora")).json()["user"]
        assert user["email"] == "dora@example.com"
    assert _all_task_ids(r) == set()
