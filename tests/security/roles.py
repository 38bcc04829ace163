"""What each least-privilege role does, as code: the producer enqueues every kind of
task, the worker processes tasks through each outcome, the dashboard reads every page and
runs its actions. ``test_acl.py`` runs each as an ACL user with exactly the rules of
docs/security.md, and again with one rule taken away."""

from __future__ import annotations

import re
import threading

import httpx

from pyasynq import AsyncClient, AsyncInspector, Client, Options, Server, SkipRetry, Task
from pyasynq.web import BasicAuth, create_app

# The rules of docs/security.md, without the user and password (a test checks that the
# page shows exactly these). Redis 7 checks the commands a Lua script calls against the
# calling user too, so each role also lists what its scripts call.
CONNECT = "+hello +ping +select +info +config|get"
SCRIPTS = "+evalsha +script|load"
RULES = {
    "producer": (
        f"resetkeys ~asynq:* resetchannels &pyasynq:wake -@all {CONNECT} +time {SCRIPTS} +wait"
        " +exists +set +sadd +hset +lpush +lpop +llen +zadd +publish"
    ),
    "worker": (
        f"resetkeys ~asynq:* resetchannels &asynq:cancel &pyasynq:wake -@all {CONNECT}"
        f" +time {SCRIPTS} +subscribe +unsubscribe +publish +exists +type +get +set +setex +del"
        " +expire +expireat +incr +incrby +sadd +srem +smembers +hget +hmget +hset +hdel"
        " +hincrby +lpush +rpush +lpop +rpoplpush +lrange +llen +lrem +zadd +zrem +zcard"
        " +zrange"
        " +zrangebyscore +zremrangebyrank +zremrangebyscore +zscore"
    ),
    "dashboard": (
        f"resetkeys ~asynq:* resetchannels &asynq:cancel -@all {CONNECT} {SCRIPTS}"
        " +publish +exists +type +get +mget +set +setnx +del +rename +sadd +srem +smembers"
        " +sismember +hget +hmget +hgetall +hvals +hset +lpush +lrange +lindex +llen +lrem"
        " +ltrim +zadd +zrem +zcard +zrange +zrevrange +zrangebyscore +zremrangebyrank"
        " +zremrangebyscore +zscore +memory|usage"
    ),
}


def producer(url: str) -> None:
    with Client(url) as c:
        c.enqueue(Task("p:plain", b"1"), queue="acl")
        c.enqueue(Task("p:unique", b"2"), queue="acl", unique=60)
        c.enqueue(Task("p:later", b"3"), queue="acl", process_in=600)
        c.enqueue(Task("p:group", b"4"), queue="acl", group="g")
        c.enqueue_many([(Task("p:many", b"%d" % i), Options(queue="acl")) for i in range(3)])


async def producer_async(url: str) -> None:
    async with AsyncClient(url) as ac:
        await ac.enqueue(Task("p:async", b"5"), queue="acl")


def worker(url: str, *, timeout: float = 15) -> dict[str, int]:
    """Enqueue (through the caller's producer) is not this role's: the tasks are put there
    by :func:`seed_for_worker`; the worker runs each to its outcome."""
    outcomes = {"ok": 0, "retry": 0, "archive": 0}
    lock = threading.Lock()
    done = threading.Event()

    def handler(task: Task) -> None:
        kind = task.type.partition(":")[2]
        with lock:
            outcomes[kind] += 1
            if sum(outcomes.values()) >= 4:
                done.set()
        if kind == "retry" and outcomes["retry"] == 1:
            raise RuntimeError("once more")
        if kind == "archive":
            raise SkipRetry("give up")

    server = Server(
        url,
        queues={"acl": 1},
        task_check_interval=0.05,
        delayed_task_check_interval=0.1,
        retry_delay_func=lambda n, e, t: 0.0,
        heartbeat_interval=0.2,
        shutdown_timeout=1,
    )
    server.start(handler)
    try:
        if not done.wait(timeout):
            raise TimeoutError(f"the worker did not finish its tasks: {outcomes}")
    finally:
        server.shutdown()
    return outcomes


def seed_for_worker(url: str) -> None:
    with Client(url) as c:
        c.enqueue(Task("w:ok"), queue="acl")
        c.enqueue(Task("w:ok"), queue="acl", retention=60)
        c.enqueue(Task("w:retry"), queue="acl", max_retry=3)
        c.enqueue(Task("w:archive"), queue="acl")


PAGES = ["/", "/queue?q=acl", "/queue?q=acl&state=scheduled", "/groups?q=acl", "/servers",
         "/schedulers", "/redis"]  # fmt: skip
USER, PASSWORD = "admin", "dash-pw"
BASE = "http://dash.example"
SAME_ORIGIN = {"origin": BASE, "sec-fetch-site": "same-origin"}


async def dashboard(url: str) -> list[str]:
    """GET every page and run the actions; returns the action results' texts."""
    insp = AsyncInspector(url)
    app = create_app(insp, auth=BasicAuth(USER, PASSWORD))
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    out = []
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE, auth=(USER, PASSWORD)
        ) as http:
            for page in PAGES:
                res = await http.get(page)
                if res.status_code != 200:
                    raise AssertionError(f"GET {page}: {res.status_code} {res.text[:400]}")
            found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', (await http.get("/")).text)
            assert found
            csrf = found.group(1)
            later = [t.id for t in await insp.list_scheduled_tasks("acl")]
            forms = [
                ("/actions/queue", {"queue": "acl", "op": "pause"}),
                ("/actions/queue", {"queue": "acl", "op": "resume"}),
                ("/actions/task", {"queue": "acl", "id": later[0], "op": "run"}),
                ("/actions/bulk", {"queue": "acl", "state": "pending", "op": "archive"}),
                ("/actions/bulk", {"queue": "acl", "state": "archived", "op": "delete"}),
            ]
            for path, form in forms:
                res = await http.post(
                    path, data={**form, "csrf_token": csrf, "confirmed": "yes"}, headers=SAME_ORIGIN
                )
                if res.status_code != 200:
                    raise AssertionError(f"POST {path} {form}: {res.status_code} {res.text[:400]}")
                out.append(res.text)
    finally:
        await insp.aclose()
    return out
