"""Least-privilege ACL users (docs/security.md): the producer, the worker and the
dashboard each work with exactly their rules, and a role missing one rule it needs fails
at once with a NOPERM message that names the refused command."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from server.support import ListLogger, wait_for
from topology import SingleServer

from pyasynq import BrokerError, Client, Server, Task

from . import roles

pytestmark = pytest.mark.single_node("runs its own server with ACL users")

ADMIN_PW = "admin-pw-h19b"


@pytest.fixture(scope="module")
def acl_server() -> Iterator[SingleServer]:
    with SingleServer() as server:
        admin = server.nodes[0].client()
        admin.config_set("requirepass", ADMIN_PW)
        admin.close()
        yield server


@pytest.fixture
def admin(acl_server: SingleServer) -> Iterator[redis.Redis]:
    c = redis.Redis(port=acl_server.port, password=ADMIN_PW)
    c.flushall()
    yield c
    c.close()


def user(admin: redis.Redis, server: SingleServer, role: str, rules: str | None = None) -> str:
    """Create (or reset) the role's ACL user with ``rules``; its URL."""
    name = f"{role}-user"
    admin.execute_command("ACL", "SETUSER", name, "reset", "on", f">{role}-pw",
                          *(rules or roles.RULES[role]).split())  # fmt: skip
    return server.url(auth=f"{name}:{role}-pw")


def admin_url(server: SingleServer) -> str:
    return server.url(auth=f":{ADMIN_PW}")


def test_each_role_works_with_exactly_its_rules(
    acl_server: SingleServer, admin: redis.Redis
) -> None:
    roles.producer(user(admin, acl_server, "producer"))
    asyncio.run(roles.producer_async(user(admin, acl_server, "producer")))
    admin.flushall()
    roles.seed_for_worker(admin_url(acl_server))
    outcomes = roles.worker(user(admin, acl_server, "worker"))
    assert outcomes["ok"] == 2 and outcomes["retry"] >= 1 and outcomes["archive"] == 1
    roles.producer(admin_url(acl_server))
    results = asyncio.run(roles.dashboard(user(admin, acl_server, "dashboard")))
    assert len(results) == 5
    # Nothing was refused along the way.
    log = admin.execute_command("ACL", "LOG")
    assert not log, log


def test_a_producer_whose_queue_registration_fails_stores_nothing(
    acl_server: SingleServer, admin: redis.Redis
) -> None:
    # The enqueue script pushes first and takes the push back (LPOP, in the producer's
    # rules) when registering the queue fails, so no task is left that Go cannot list.
    admin.set("asynq:queues", "not a set")
    try:
        url = user(admin, acl_server, "producer")
        with Client(url, failover_timeout=0) as c:
            for unique in (None, 60):
                with pytest.raises(BrokerError, match="WRONGTYPE"):
                    c.enqueue(Task("t"), queue="acl-reg", unique=unique)
        # No task, no pending id. The unique lock stays until its TTL: the producer may
        # not DEL (the script tries; with the rules to do it, nothing at all is left).
        left = admin.keys("asynq:{acl-reg}*")
        assert [k for k in left if b":unique:" not in k] == []
    finally:
        admin.delete("asynq:queues")


def _without(role: str, rule: str) -> str:
    rules = roles.RULES[role].split()
    assert rule in rules, rule
    rules.remove(rule)
    return " ".join(rules)


@pytest.mark.parametrize("rule", ["+evalsha", "+lpush", "+hset", "~asynq:*"])
def test_a_producer_without_a_rule_is_refused_with_noperm(
    acl_server: SingleServer, admin: redis.Redis, rule: str
) -> None:
    url = user(admin, acl_server, "producer", _without("producer", rule))
    start = time.monotonic()
    with pytest.raises(BrokerError) as err, Client(url) as c:
        c.enqueue(Task("t"), queue="acl")
    assert time.monotonic() - start < 3
    message = str(err.value)
    assert "NOPERM" in message and "does not let this user do what pyasynq needs" in message
    assert "docs/security.md" in message
    assert "producer-pw" not in message
    if rule.startswith("+"):
        assert f"'{rule[1:]}'" in message  # names the refused command


@pytest.mark.parametrize(
    ("rule", "names"), [("+evalsha", "'evalsha'"), ("+rpoplpush", "'rpoplpush'")]
)
def test_a_worker_without_a_rule_logs_what_is_refused(
    acl_server: SingleServer, admin: redis.Redis, rule: str, names: str
) -> None:
    # The worker keeps trying (the ACL may be fixed while it runs) and says why, once a
    # second: no hang, no silence.
    roles.seed_for_worker(admin_url(acl_server))
    url = user(admin, acl_server, "worker", _without("worker", rule))
    log = ListLogger()
    server = Server(url, queues={"acl": 1}, shutdown_timeout=1, logger=log)
    server.start(lambda t: None)
    try:
        [line, *_] = wait_for(lambda: log.find("NOPERM", "error"), 5, "the NOPERM error")
    finally:
        server.shutdown()
    assert names in line and "docs/security.md" in line, line
    assert "worker-pw" not in line


def test_a_dashboard_without_a_rule_shows_the_noperm_error(
    acl_server: SingleServer, admin: redis.Redis
) -> None:
    roles.producer(admin_url(acl_server))
    url = user(admin, acl_server, "dashboard", _without("dashboard", "+evalsha"))
    with pytest.raises(AssertionError, match="503") as err:
        asyncio.run(roles.dashboard(url))
    text = str(err.value)
    assert "Redis refused this user" in text
    html = err.value.args[0]
    assert "dashboard-pw" not in html


def test_info_and_config_get_are_optional(acl_server: SingleServer, admin: redis.Redis) -> None:
    def bare(role: str) -> str:
        rules = roles.RULES[role].replace("+info ", "").replace("+config|get ", "")
        return user(admin, acl_server, role, rules)

    roles.producer(bare("producer"))
    admin.flushall()
    roles.seed_for_worker(admin_url(acl_server))
    assert roles.worker(bare("worker"))["ok"] == 2
    roles.producer(admin_url(acl_server))
    assert len(asyncio.run(roles.dashboard(bare("dashboard")))) == 5


def test_time_is_optional_the_host_clock_is_used_and_said_once(
    acl_server: SingleServer, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # An ACL written before pyasynq read Redis's clock: enqueues and workers still work.
    url = user(admin, acl_server, "producer", _without("producer", "+time"))
    with caplog.at_level("WARNING", logger="pyasynq"), Client(url, clock_sync_interval=0.01) as c:
        c.enqueue(Task("t"), queue="acl", process_in=60)
        rc = c._redis_clock
        assert rc is not None and rc.failing
        wait_for(lambda: rc.due(0.01), 1, "clock_sync_interval to pass")  # a second attempt
        c.enqueue(Task("t"), queue="acl")
    lines = [r.getMessage() for r in caplog.records if "Redis's clock" in r.getMessage()]
    assert len(lines) == 1 and "+time" in lines[0] and "docs/security.md" in lines[0], lines
    assert "producer-pw" not in lines[0]
    log = ListLogger()
    roles.seed_for_worker(admin_url(acl_server))
    worker_url = user(admin, acl_server, "worker", _without("worker", "+time"))
    server = Server(worker_url, queues={"acl": 1}, shutdown_timeout=1, logger=log)
    server.start(lambda t: None)
    try:
        wait_for(lambda: not admin.llen("asynq:{acl}:pending"), 10, "the worker to drain")
    finally:
        server.shutdown()
    [line] = [m for _, m in log.lines if "Redis's clock" in m]
    assert "+time" in line and "worker-pw" not in line
