"""``pyasynq group ls``, ``server ls``, ``cron ls|history`` and ``dash`` against a real
Redis. Servers and scheduler entries are written the way their heartbeats write them."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from rdb.helpers import make_msg, seed_aggregating

from pyasynq import Client, Task
from pyasynq._rdb import codec, keys
from pyasynq._rdb.ops import state
from pyasynq._sync.broker import Broker
from pyasynq.cli import dash

from .support import Cli


@pytest.fixture
def broker(redis_url: str, r: redis.Redis) -> Any:
    b = Broker(redis_url)
    yield b
    b.close()


def test_group_ls(cli: Cli, r: redis.Redis) -> None:
    now = time.time()
    for i in range(3):
        seed_aggregating(r, make_msg(f"a{i}"), group="alpha", added_at=now)
    seed_aggregating(r, make_msg("b0"), group="beta", added_at=now)
    res = cli("group", "ls", "--queue", "default")
    assert res.code == 0, res.err
    got = [row.split() for row in res.out.splitlines() if row.strip()[:4] in ("alph", "beta")]
    assert got == [["alpha", "3"], ["beta", "1"]]
    assert cli("group", "ls", "-q", "default", "--json").json() == [
        {"group": "alpha", "size": 3},
        {"group": "beta", "size": 1},
    ]
    r.sadd(keys.ALL_QUEUES, "empty")
    assert "No groups" in cli("group", "ls", "-q", "empty").out
    assert cli("group", "ls", "-q", "nope").code == 1


def write_server(broker: Broker, sid: str, *, busy: int = 0) -> None:
    now = time.time()
    info = codec.ServerInfo(host="web-1", pid=4242, server_id=sid, concurrency=8,
                            queues={"critical": 6, "default": 3}, status="active",
                            start_time_ns=int((now - 3600) * 1e9))  # fmt: skip
    workers = [
        codec.WorkerInfo(
            host="web-1",
            pid=4242,
            server_id=sid,
            task_id=f"task-{i}",
            task_type="email:send",
            task_payload=b"\x00bin",
            queue="default",
            start_time_ns=int((now - 5) * 1e9),
            deadline_ns=int((now + 60) * 1e9),
        )
        for i in range(busy)
    ]
    state.check_replies(broker.run_many(state.write_server_state(info, workers, now, 30)))


def test_server_ls(cli: Cli, broker: Broker) -> None:
    res = cli("server", "ls")
    assert res.code == 0 and "No running servers." in res.out
    write_server(broker, "sid-1", busy=2)
    res = cli("server", "ls")
    assert res.code == 0, res.err
    [row] = [r.split() for r in res.out.splitlines() if r.strip().startswith("web-1 ")]
    assert row[:5] == ["web-1", "4242", "sid-1", "active", "2/8"]
    assert "critical:6, default:3" in res.out
    assert "1h" in row[-1]  # uptime
    assert "Active workers" in res.out and "task-0" in res.out and "hex:0062696e" in res.out

    [srv] = cli("server", "ls", "--json").json()
    assert srv["id"] == "sid-1"
    assert srv["queues"] == {"critical": 6, "default": 3}
    assert [w["task_id"] for w in srv["active_workers"]] == ["task-0", "task-1"]
    assert srv["active_workers"][0]["task_payload_encoding"] == "hex"


def write_entries(broker: Broker) -> None:
    now = time.time()
    entries = [
        codec.SchedulerEntry(
            id="entry-1",
            spec="@every 30s",
            task_type="report:daily",
            task_payload=b'{"k":1}',
            enqueue_options=['Queue("cron")', "MaxRetry(3)"],
            next_enqueue_time_ns=int((now + 30) * 1e9),
            prev_enqueue_time_ns=codec.GO_ZERO_TIME_NS,
        ),
    ]
    state.check_replies(broker.run_many(state.write_scheduler_entries("sch-1", entries, now, 20)))
    for i in range(3):
        ev = codec.SchedulerEnqueueEvent(
            task_id=f"t{i}", enqueue_time_ns=int((now - 90 + i * 30) * 1e9)
        )
        broker.run(state.record_scheduler_enqueue_event("entry-1", ev))


def test_cron_ls_and_history(cli: Cli, broker: Broker) -> None:
    assert "No scheduler entries" in cli("cron", "ls").out
    write_entries(broker)
    res = cli("cron", "ls")
    assert res.code == 0, res.err
    [row] = [r for r in res.out.splitlines() if r.strip().startswith("entry-1")]
    assert "@every 30s" in row and "report:daily" in row and 'Queue("cron") MaxRetry(3)' in row
    assert "(in " in row
    [entry] = cli("cron", "ls", "--json").json()
    assert entry["raw_options"] == ['Queue("cron")', "MaxRetry(3)"]
    assert entry["prev_enqueue_at"] is None
    assert entry["task_payload"] == '{"k":1}'

    res = cli("cron", "history", "entry-1")
    assert res.code == 0, res.err
    ids = [r.split()[-1] for r in res.out.splitlines() if r.strip().startswith("entry-1")]
    assert ids == ["t2", "t1", "t0"]  # newest first
    page = cli("cron", "history", "entry-1", "--size", "2", "--page", "2", "--json").json()
    assert [e["task_id"] for e in page] == ["t0"]
    assert page[0]["entry_id"] == "entry-1"
    assert "No enqueue events" in cli("cron", "history", "unknown").out


def test_dash_once(cli: Cli, client: Client, broker: Broker, r: redis.Redis) -> None:
    client.enqueue(Task("a", b"1"))
    client.enqueue(Task("b", b"2"), queue="critical")
    r.set(keys.paused_key("critical"), 1)
    write_server(broker, "sid-1", busy=1)
    res = cli("dash", "--once")
    assert res.code == 0, res.err
    assert "pyasynq dash" in res.out
    queues = {row[0]: row for row in map(str.split, res.out.splitlines())
              if row and row[0] in ("default", "critical")}  # fmt: skip
    assert queues["default"][1:4] == ["run", "1", "1"]
    assert queues["critical"][1] == "paused"
    assert queues["default"][9:11] == ["-", "-"]  # no rates from a single sample
    assert "web-1" in res.out and "1/8" in res.out
    assert "password" not in res.out


def test_dash_refreshes_with_rates_and_quits_on_ctrl_c(
    cli: Cli, client: Client, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.enqueue(Task("a", b"1"))
    sleeps: list[float] = []
    clock = iter([100.0, 102.0, 104.0])

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:  # between the first two samples 20 tasks are processed
            r.incrby(keys.processed_total_key("default"), 20)
            r.incrby(keys.failed_total_key("default"), 4)
            return
        raise KeyboardInterrupt

    monkeypatch.setattr(dash, "sleep", fake_sleep)
    monkeypatch.setattr(dash, "monotonic", lambda: next(clock))
    res = cli("dash", "--interval", "2")
    assert res.code == 0, res.err
    assert sleeps == [2.0, 2.0]
    last = [row for row in map(str.split, res.out.splitlines()) if row and row[0] == "default"]
    assert last[-1][9:11] == ["10.0", "2.0"]  # 20 and 4 in 2 s
    assert "Traceback" not in res.err


def test_dash_keeps_going_when_redis_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def queues(self) -> list[str]:
            from pyasynq.errors import BrokerError

            raise BrokerError("cannot reach Redis at 127.0.0.1:1/0: refused")

    sample = dash.take(Broken())  # type: ignore[arg-type]
    assert sample.error and "cannot reach Redis" in sample.error
    from rich.console import Console

    con = Console(width=120, file=__import__("io").StringIO())
    con.print(dash.view("127.0.0.1:1/0", sample, None, 2.0))
    assert "retrying" in con.file.getvalue()  # type: ignore[attr-defined]


def test_dash_interval_must_be_positive(cli: Cli) -> None:
    res = cli("dash", "--interval", "0")
    assert res.code == 2
    assert "--interval" in res.err
