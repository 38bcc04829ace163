"""``pyasynq stats`` and ``pyasynq queue ...`` against a real Redis."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis

from pyasynq import Client, Task
from pyasynq._rdb import keys
from pyasynq.inspection import QueueInfo

from .support import Cli


def seed_two_queues(client: Client) -> None:
    for _ in range(3):
        client.enqueue(Task("email:send", b'{"to":"a@b.c"}'))
    client.enqueue(Task("img:resize", b"x"), queue="critical", process_in=300)
    client.enqueue(Task("agg", b"y"), queue="critical", group="g1")


def test_stats_on_an_empty_redis(cli: Cli) -> None:
    res = cli("stats")
    assert res.code == 0, res.err
    assert "No queues yet" in res.out
    assert "Redis" in res.out  # the server section is still shown
    data = cli("stats", "--json").json()
    assert data["queues"] == []
    assert data["totals"]["size"] == 0
    assert "redis_version" in data["redis"]


def test_stats_lists_every_queue_with_counts(cli: Cli, client: Client, r: redis.Redis) -> None:
    seed_two_queues(client)
    r.set(keys.processed_key("default", time.time()), 10)
    r.set(keys.failed_key("default", time.time()), 4)
    res = cli("stats")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    default = next(line for line in lines if line.strip().startswith("default"))
    critical = next(line for line in lines if line.strip().startswith("critical"))
    # size, pending, active, scheduled, retry, archived, completed, aggregating
    assert default.split()[1:9] == ["3", "3", "0", "0", "0", "0", "0", "0"]
    assert critical.split()[1:9] == ["2", "0", "0", "1", "0", "0", "0", "1"]
    total = next(line for line in lines if line.strip().startswith("total"))
    assert total.split()[1:3] == ["5", "3"]
    assert "40.00%" in res.out  # today's error rate: 4 of 10

    data = cli("stats", "--json").json()
    assert [q["queue"] for q in data["queues"]] == ["critical", "default"]
    assert data["totals"]["pending"] == 3
    assert data["totals"]["processed"] == 10
    assert data["totals"]["failed"] == 4


def test_queue_ls(cli: Cli, client: Client) -> None:
    assert cli("queue", "ls").out == ""
    seed_two_queues(client)
    res = cli("queue", "ls")
    assert res.code == 0
    assert res.out.splitlines() == ["critical", "default"]
    assert cli("queue", "list", "--json").json() == ["critical", "default"]


def test_queue_inspect(cli: Cli, client: Client, r: redis.Redis) -> None:
    seed_two_queues(client)
    r.set(keys.paused_key("critical"), int(time.time()))
    r.set(keys.processed_total_key("critical"), 7)
    res = cli("queue", "inspect", "critical")
    assert res.code == 0, res.err
    row = next(line for line in res.out.splitlines() if line.strip().startswith("critical"))
    assert row.split()[1:4] == ["yes", "2", "1"]  # paused, size, groups
    assert "Tasks by state" in res.out

    [info] = cli("queue", "inspect", "critical", "--json").json()
    assert set(info) == {
        f.replace("latency", "latency_seconds") for f in QueueInfo.__dataclass_fields__
    }
    assert info["queue"] == "critical"
    assert info["paused"] is True
    assert info["scheduled"] == 1
    assert info["aggregating"] == 1
    assert info["processed_total"] == 7
    assert info["memory_usage"] > 0
    datetime.fromisoformat(info["timestamp"])  # an ISO time

    both = cli("queue", "inspect", "default", "critical", "--json").json()
    assert [i["queue"] for i in both] == ["default", "critical"]
    assert both[0]["latency_seconds"] >= 0


def test_queue_inspect_unknown_queue(cli: Cli, client: Client) -> None:
    seed_two_queues(client)
    res = cli("queue", "inspect", "nope")
    assert res.code == 1
    assert res.out == ""
    assert res.err == "pyasynq: queue 'nope' does not exist\n"


def test_queue_history(cli: Cli, client: Client, r: redis.Redis) -> None:
    seed_two_queues(client)
    now = time.time()
    r.set(keys.processed_key("default", now), 20)
    r.set(keys.failed_key("default", now), 5)
    r.set(keys.processed_key("default", now - 86400), 8)
    days = cli("queue", "history", "default", "--days", "3", "--json").json()
    today = datetime.now(UTC).date()
    assert days == [
        {"queue": "default", "date": today.isoformat(), "processed": 20, "failed": 5},
        {"queue": "default", "date": (today - timedelta(days=1)).isoformat(), "processed": 8,
         "failed": 0},
        {"queue": "default", "date": (today - timedelta(days=2)).isoformat(), "processed": 0,
         "failed": 0},
    ]  # fmt: skip
    res = cli("queue", "history", "default", "critical")
    assert res.code == 0
    rows = [row for row in map(str.split, res.out.splitlines())
            if row and row[0] in ("default", "critical")]  # fmt: skip
    assert len(rows) == 14  # 7 days each
    assert rows[0] == ["default", today.isoformat(), "20", "15", "5", "25.00%"]


def test_queue_pause_and_unpause(cli: Cli, client: Client, r: redis.Redis) -> None:
    seed_two_queues(client)
    res = cli("queue", "pause", "default", "critical")
    assert res.code == 0, res.err
    assert res.out.splitlines() == ["Paused queue 'default'", "Paused queue 'critical'"]
    assert r.exists(keys.paused_key("default"), keys.paused_key("critical")) == 2
    again = cli("queue", "pause", "default")
    assert again.code == 1
    assert again.err.startswith("pyasynq: ") and again.err.count("\n") == 1
    assert "paused" in again.err
    res = cli("queue", "resume", "critical")
    assert res.code == 0
    assert res.out == "Unpaused queue 'critical'\n"
    assert not r.exists(keys.paused_key("critical"))
    assert cli("queue", "unpause", "critical").code == 1


def test_queue_rm(cli: Cli, client: Client, r: redis.Redis) -> None:
    seed_two_queues(client)
    res = cli("queue", "rm", "default")
    assert res.code == 1
    assert "not empty" in res.err
    assert r.sismember(keys.ALL_QUEUES, "default")
    res = cli("queue", "rm", "--force", "default")
    assert res.code == 0, res.err
    assert res.out == "Removed queue 'default'\n"
    assert not r.sismember(keys.ALL_QUEUES, "default")
    assert r.llen(keys.pending_key("default")) == 0
    assert cli("queue", "rm", "default").err == "pyasynq: queue 'default' does not exist\n"


def test_queue_rm_not_empty_names_the_flag(cli: Cli, client: Client) -> None:
    seed_two_queues(client)
    res = cli("queue", "rm", "default")
    assert res.code == 1
    assert (
        res.err
        == "pyasynq: queue 'default' is not empty; pass --force to remove it with its tasks\n"
    )
    assert "force=True" not in res.err


def test_queue_pause_unknown_is_refused_unless_allowed(
    cli: Cli, client: Client, r: redis.Redis
) -> None:
    seed_two_queues(client)
    res = cli("queue", "pause", "default", "defualt")
    assert res.code == 1
    assert res.err.startswith("pyasynq: queue 'defualt' does not exist;")
    assert "--allow-unknown" in res.err and res.out == ""
    # Nothing paused, not even the queue that exists.
    assert not r.exists(keys.paused_key("default"), keys.paused_key("defualt"))
    res = cli("queue", "pause", "--allow-unknown", "later")
    assert res.code == 0, res.err
    assert res.out == "Paused queue 'later'\n"
    assert r.exists(keys.paused_key("later"))
