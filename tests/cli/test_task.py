"""``pyasynq task ...`` against a real Redis."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
import redis
from rdb.helpers import (
    make_msg,
    queue_state,
    seed_active,
    seed_aggregating,
    seed_archived,
    seed_completed,
    seed_pending,
    seed_retry,
    seed_scheduled,
    task_fields,
)

from pyasynq import Client, Task
from pyasynq._rdb import codec, keys
from pyasynq.cli import task as task_cmd
from pyasynq.task import TaskInfo

from .support import Cli, seed_many

Q = "default"


def rows(out: str, first: str) -> list[list[str]]:
    """Table rows whose first cell starts with ``first``, split on whitespace."""
    return [r for r in map(str.split, out.splitlines()) if r and r[0].startswith(first)]


@pytest.fixture
def every_state(r: redis.Redis) -> float:
    """One task in each state of queue ``default``; returns the seeding time."""
    now = time.time()
    seed_pending(r, make_msg("p1", payload=b"hello"), pending_since_ns=int(now * 1e9))
    seed_active(r, make_msg("a1"), lease_expiry=now - 5)  # orphaned: lease ran out
    seed_scheduled(r, make_msg("s1"), process_at=now + 300)
    seed_retry(r, make_msg("r1", retried=2, error_msg="boom: db down", last_failed_at=int(now)),
               retry_at=now + 60)  # fmt: skip
    seed_archived(r, make_msg("x1", error_msg="gave up", last_failed_at=int(now)),
                  archived_at=now)  # fmt: skip
    seed_completed(r, make_msg("c1", retention=3600, completed_at=int(now)),
                   expires_at=now + 3600)  # fmt: skip
    r.hset(keys.task_key(Q, "c1"), "result", b"done!")
    seed_aggregating(r, make_msg("g1"), group="grp", added_at=now)
    return now


def test_task_ls_in_every_state(cli: Cli, every_state: float) -> None:
    expect = {
        "pending": "p1",
        "active": "a1",
        "scheduled": "s1",
        "retry": "r1",
        "archived": "x1",
        "completed": "c1",
    }
    for state, tid in expect.items():
        res = cli("task", "ls", "--queue", Q, "--state", state)
        assert res.code == 0, (state, res.err)
        assert [r[0] for r in rows(res.out, tid[0])] == [tid], (state, res.out)
        [info] = cli("task", "ls", "-q", Q, "-s", state, "--json").json()
        assert info["id"] == tid
        assert info["state"] == state
    res = cli("task", "ls", "-q", Q, "-s", "aggregating", "--group", "grp")
    assert [r[0] for r in rows(res.out, "g1")] == ["g1"]

    active = cli("task", "ls", "-q", Q, "-s", "active").out
    assert rows(active, "a1")[0][3] == "yes"  # orphaned
    retry = cli("task", "ls", "-q", Q, "-s", "retry").out
    assert "2/25" in retry and "boom: db down" in retry and "(in " in retry
    assert "Result" in cli("task", "ls", "-q", Q, "-s", "completed").out
    assert "done!" in cli("task", "ls", "-q", Q, "-s", "completed").out
    [sched] = cli("task", "ls", "-q", Q, "-s", "scheduled", "--json").json()
    at = datetime.fromisoformat(sched["next_process_at"])
    assert abs(at.timestamp() - (every_state + 300)) < 1


def test_task_ls_json_keys_are_stable(cli: Cli, every_state: float) -> None:
    [info] = cli("task", "ls", "-q", Q, "-s", "pending", "--json").json()
    fields = set(TaskInfo.__dataclass_fields__)
    renamed = {"timeout": "timeout_seconds", "retention": "retention_seconds"}
    expected = {renamed.get(f, f) for f in fields} | {"payload_encoding", "result_encoding"}
    assert set(info) == expected
    assert info["payload"] == "hello"
    assert info["payload_encoding"] == "text"
    assert info["timeout_seconds"] == 1800.0
    assert info["retention_seconds"] is None


def test_task_ls_pages(cli: Cli, r: redis.Redis) -> None:
    for i in range(5):
        seed_pending(r, make_msg(f"t{i}"))
    page1 = cli("task", "ls", "-q", Q, "-s", "pending", "--size", "2")
    assert [row[0] for row in rows(page1.out, "t")] == ["t0", "t1"]  # oldest first
    assert "--page 2" in page1.out
    page3 = cli("task", "ls", "-q", Q, "-s", "pending", "--size", "2", "--page", "3", "--json")
    assert [t["id"] for t in page3.json()] == ["t4"]
    empty = cli("task", "ls", "-q", Q, "-s", "pending", "--size", "2", "--page", "4")
    assert empty.code == 0
    assert "No pending tasks in queue 'default' on page 4." in empty.out


def test_task_ls_mistakes(cli: Cli, every_state: float) -> None:
    bad = cli("task", "ls", "-q", Q, "-s", "finished")
    assert bad.code == 2
    assert bad.err == (
        "pyasynq: unknown state 'finished'; use one of active, pending, scheduled, retry, "
        "archived, completed, aggregating\n"
    )
    nogroup = cli("task", "ls", "-q", Q, "-s", "aggregating")
    assert nogroup.code == 2 and "--group" in nogroup.err
    stray = cli("task", "ls", "-q", Q, "-s", "pending", "-g", "grp")
    assert stray.code == 2 and "--group applies only" in stray.err
    unknown = cli("task", "ls", "-q", "nope", "-s", "pending")
    assert unknown.code == 1
    assert unknown.err == "pyasynq: queue 'nope' does not exist\n"
    with pytest.raises(SystemExit) as exc:  # argparse: a page must be a positive number
        cli("task", "ls", "-q", Q, "-s", "pending", "--page", "0")
    assert exc.value.code == 2


def test_task_inspect(cli: Cli, every_state: float) -> None:
    res = cli("task", "inspect", "--queue", Q, "--id", "r1")
    assert res.code == 0, res.err
    assert "boom: db down" in res.out
    assert "2 of 25" in res.out
    assert "Payload (text)" in res.out and '{"n":1}' in res.out
    info = cli("task", "inspect", "-q", Q, "-i", "c1", "--json").json()
    assert info["state"] == "completed"
    assert info["result"] == "done!"
    assert info["retention_seconds"] == 3600.0
    missing = cli("task", "inspect", "-q", Q, "-i", "nope")
    assert missing.code == 1
    assert missing.err == "pyasynq: task 'nope' does not exist in queue 'default'\n"


def test_task_inspect_and_ls_show_progress(cli: Cli, r: redis.Redis) -> None:
    seed_active(r, make_msg("run1"), lease_expiry=time.time() + 30)
    progress = '{"fraction":0.4,"message":"resized 4/10","at":1700000000}'
    r.hset(keys.task_key(Q, "run1"), "pyasynq:progress", progress)
    shown = cli("task", "inspect", "-q", Q, "-i", "run1").out
    assert "40% resized 4/10" in shown
    info = cli("task", "inspect", "-q", Q, "-i", "run1", "--json").json()
    assert info["progress"] == {
        "fraction": 0.4,
        "message": "resized 4/10",
        "updated_at": "2023-11-14T22:13:20+00:00",
    }
    listed = cli("task", "ls", "-q", Q, "-s", "active").out
    assert "40%" in listed and "resized" in listed
    assert cli("task", "ls", "-q", Q, "-s", "active", "--json").json()[0]["progress"]


def test_payloads_are_shown_safely(cli: Cli, r: redis.Redis) -> None:
    # Raw bytes and terminal escape sequences are shown as hex, never written raw.
    seed_pending(r, make_msg("bin", payload=b"\x00\xff\x10"))
    seed_pending(r, make_msg("esc", payload=b"\x1b[2J\x1b[31mred"))
    seed_pending(r, make_msg("txt", payload="héllo wörld".encode()))
    out = cli("task", "ls", "-q", Q, "-s", "pending").out
    assert "\x1b" not in out
    assert "hex:00ff10" in out
    assert "hex:1b5b324a" in out
    assert "héllo wörld" in out
    info = cli("task", "inspect", "-q", Q, "-i", "esc", "--json").json()
    assert info["payload_encoding"] == "hex"
    assert bytes.fromhex(info["payload"]) == b"\x1b[2J\x1b[31mred"
    shown = cli("task", "inspect", "-q", Q, "-i", "bin").out
    assert "Payload (hex)" in shown and "00ff10" in shown


def test_task_cancel_publishes_the_id(cli: Cli, r: redis.Redis) -> None:
    sub = r.pubsub(ignore_subscribe_messages=True)
    sub.subscribe(keys.CANCEL_CHANNEL)
    try:
        deadline = time.monotonic() + 5
        while r.pubsub_numsub(keys.CANCEL_CHANNEL)[0][1] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        res = cli("task", "cancel", "t-1", "t-2")
        assert res.code == 0, res.err
        assert res.out.splitlines() == [
            "Sent a cancel request for task 't-1' (1 servers listening)",
            "Sent a cancel request for task 't-2' (1 servers listening)",
        ]
        got = []
        while len(got) < 2:
            assert time.monotonic() < deadline
            msg = sub.get_message(timeout=0.1)
            if msg:
                got.append(msg["data"])
        assert got == [b"t-1", b"t-2"]
    finally:
        sub.close()


def test_task_archive_delete_run(cli: Cli, r: redis.Redis, every_state: float) -> None:
    res = cli("task", "archive", "-q", Q, "-i", "s1")
    assert res.code == 0, res.err
    assert res.out == "Archived task 's1' in queue 'default'\n"
    assert task_fields(r, Q, "s1")["state"] == "archived"

    res = cli("task", "run", "-q", Q, "-i", "s1")
    assert res.code == 0
    assert res.out == "Moved task 's1' in queue 'default' to pending\n"
    assert task_fields(r, Q, "s1")["state"] == "pending"

    res = cli("task", "delete", "-q", Q, "-i", "x1")
    assert res.code == 0
    assert res.out == "Deleted task 'x1' from queue 'default'\n"
    assert not r.exists(keys.task_key(Q, "x1"))

    wrong = cli("task", "run", "-q", Q, "-i", "p1")  # already pending
    assert wrong.code == 1 and wrong.err.startswith("pyasynq: ") and wrong.err.count("\n") == 1
    active = cli("task", "delete", "-q", Q, "-i", "a1")
    assert active.code == 1 and "active" in active.err
    gone = cli("task", "archive", "-q", Q, "-i", "x1")
    assert gone.err == "pyasynq: task 'x1' does not exist in queue 'default'\n"


def test_bulk_commands(cli: Cli, r: redis.Redis) -> None:
    seed_many(r, Q, "scheduled", 2500)
    res = cli("task", "runall", "-q", Q, "-s", "scheduled")
    assert res.code == 0, res.err
    assert res.out == "Moved 2500 scheduled tasks in queue 'default' to pending\n"
    assert r.llen(keys.pending_key(Q)) == 2500

    res = cli("task", "archiveall", "-q", Q, "-s", "pending")
    assert res.out == "Archived 2500 pending tasks in queue 'default'\n"
    assert r.zcard(keys.archived_key(Q)) == 2500

    res = cli("task", "deleteall", "-q", Q, "-s", "archived")
    assert res.out == "Deleted 2500 archived tasks from queue 'default'\n"
    assert queue_state(r, Q)["archived"] == []
    assert cli("task", "deleteall", "-q", Q, "-s", "archived").out.startswith("Deleted 0 ")


def test_bulk_on_a_group(cli: Cli, r: redis.Redis) -> None:
    now = time.time()
    for i in range(3):
        seed_aggregating(r, make_msg(f"g{i}"), group="grp", added_at=now)
    seed_aggregating(r, make_msg("other"), group="g2", added_at=now)
    res = cli("task", "runall", "-q", Q, "-s", "aggregating", "-g", "grp")
    assert res.out == "Moved 3 aggregating tasks in group 'grp' of queue 'default' to pending\n"
    assert sorted(queue_state(r, Q)["pending"]) == ["g0", "g1", "g2"]
    assert task_fields(r, Q, "other")["state"] == "aggregating"


def test_bulk_mistakes(cli: Cli, r: redis.Redis) -> None:
    seed_pending(r, make_msg("p1"))
    res = cli("task", "runall", "-q", Q, "-s", "pending")
    assert res.code == 2
    assert res.err == (
        "pyasynq: runall does not apply to pending tasks; use one of scheduled, retry, "
        "archived, aggregating\n"
    )
    assert cli("task", "archiveall", "-q", Q, "-s", "archived").code == 2
    assert cli("task", "deleteall", "-q", Q, "-s", "active").code == 2
    assert cli("task", "deleteall", "-q", Q, "-s", "nope").code == 2
    assert cli("task", "deleteall", "-q", Q, "-s", "aggregating").code == 2  # needs --group
    assert cli("task", "deleteall", "-q", "missing", "-s", "pending").code == 1
    assert queue_state(r, Q)["pending"] == ["p1"]


def test_progress_bar_on_a_terminal(r: redis.Redis, redis_url: str) -> None:
    from rich.console import Console

    from pyasynq import Inspector

    seed_many(r, Q, "retry", 3000)
    buf = StringIO()
    con = Console(file=buf, force_terminal=True, width=100)
    seen: list[int] = []

    def work(step: object) -> int:
        assert callable(step)
        with Inspector(redis_url) as insp:
            return insp.delete_all_tasks(
                Q, "retry", on_progress=lambda n: (seen.append(n), step(n))
            )

    assert task_cmd.with_progress(con, "deleteall retry", 3000, work) == 3000
    assert seen == [1000, 2000, 3000]
    assert "deleteall retry" in buf.getvalue()
    assert "3000/3000" in buf.getvalue()


def test_no_progress_bar_when_not_a_terminal() -> None:
    con = task_cmd.out.console(stderr=True)  # captured by pytest: not a terminal
    calls: list[int] = []
    assert task_cmd.with_progress(con, "x", 10, lambda step: (step(5), calls.append(1), 7)[2])
    assert calls == [1]


def test_task_enqueue(cli: Cli, r: redis.Redis, tmp_path: Path) -> None:
    res = cli("task", "enqueue", "--type", "email:send", "--payload", '{"to":"a@b.c"}')
    assert res.code == 0, res.err
    assert res.out.startswith("Enqueued task '") and "to queue 'default' (pending)" in res.out
    [tid] = queue_state(r, Q)["pending"]
    msg = task_fields(r, Q, tid)["msg"]
    assert (msg.type, msg.payload, msg.retry, msg.timeout) == (
        "email:send", b'{"to":"a@b.c"}', 25, 1800,
    )  # fmt: skip

    info = cli(
        "task", "enqueue", "-t", "img:resize", "--payload-hex", "00ff", "-q", "critical",
        "--max-retry", "3", "--timeout", "1m30s", "--process-in", "600", "--task-id", "img-1",
        "--header", "trace=abc", "--retention", "1h", "--json",
    ).json()  # fmt: skip
    assert info["id"] == "img-1"
    assert info["state"] == "scheduled"
    assert info["payload"] == "00ff" and info["payload_encoding"] == "hex"
    assert info["headers"] == {"trace": "abc"}
    msg = task_fields(r, "critical", "img-1")["msg"]
    assert (msg.payload, msg.retry, msg.timeout, msg.retention) == (b"\x00\xff", 3, 90, 3600)
    assert msg.headers == {"trace": "abc"}
    score = r.zscore(keys.scheduled_key("critical"), "img-1")
    assert score is not None and abs(score - (time.time() + 600)) < 5

    f = tmp_path / "p.bin"
    f.write_bytes(b"\x01\x02")
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None, microsecond=0)
    res = cli("task", "enqueue", "-t", "f", "--payload-file", str(f), "--process-at",
              at.isoformat(), "--task-id", "f-1")  # fmt: skip
    assert res.code == 0, res.err
    assert task_fields(r, Q, "f-1")["msg"].payload == b"\x01\x02"
    assert r.zscore(keys.scheduled_key(Q), "f-1") == at.replace(tzinfo=UTC).timestamp()

    res = cli("task", "enqueue", "-t", "agg", "-p", "x", "--group", "grp")
    assert "(aggregating)" in res.out


def test_task_enqueue_mistakes(cli: Cli, r: redis.Redis) -> None:
    bad = cli("task", "enqueue", "-t", "t", "--timeout", "soon")
    assert bad.code == 2
    assert bad.err == (
        "pyasynq: --timeout: expected seconds or a duration like 1m30s, got 'soon'\n"
    )
    assert cli("task", "enqueue", "-t", "t", "--payload-hex", "zz").code == 2
    assert cli("task", "enqueue", "-t", "t", "--header", "novalue").code == 2
    assert cli("task", "enqueue", "-t", "t", "--process-at", "tomorrow").code == 2
    assert cli("task", "enqueue", "-t", "t", "--max-retry", "3", "--unique", "0.2").code == 2
    assert cli("task", "enqueue", "-t", " ").code == 2  # blank type
    assert r.keys("*") == []  # nothing was written
    assert cli("task", "enqueue", "-t", "t", "-p", "x", "--unique", "60").code == 0
    dup = cli("task", "enqueue", "-t", "t", "-p", "x", "--unique", "60")
    assert dup.code == 1
    assert dup.err == "pyasynq: task already exists\n"
    clash = cli("task", "enqueue", "-t", "t", "--task-id", "same")
    assert clash.code == 0
    clash = cli("task", "enqueue", "-t", "t", "--task-id", "same")
    assert clash.err == "pyasynq: task ID conflicts with another task\n"


def test_go_written_task_shows(cli: Cli, r: redis.Redis) -> None:
    # The golden TaskMessage bytes of wire spec 2.1, as a raw redis-cli write would leave.
    golden = bytes.fromhex(
        "0a0a656d61696c3a73656e64120e7b22746f223a226140622e63227d1a067461736b2d31220764656661"
        "756c74281940880e"
    )
    r.hset(keys.task_key(Q, "task-1"), mapping={"msg": golden, "state": "pending"})
    r.lpush(keys.pending_key(Q), "task-1")
    r.sadd(keys.ALL_QUEUES, Q)
    info = cli("task", "inspect", "-q", Q, "-i", "task-1", "--json").json()
    assert (info["type"], info["payload"], info["max_retry"]) == (
        "email:send", '{"to":"a@b.c"}', 25,
    )  # fmt: skip
    assert codec.decode_task(golden).timeout == 1800
    assert info["timeout_seconds"] == 1800.0


def test_client_enqueued_tasks_list(cli: Cli, client: Client) -> None:
    a = client.enqueue(Task("a", b"1"))
    b = client.enqueue(Task("b", b"2"))
    ids = [t["id"] for t in cli("task", "ls", "-q", Q, "-s", "pending", "--json").json()]
    assert ids == [a.id, b.id]


def test_task_wait_prints_the_result_or_the_failure(
    cli: Cli, client: Client, r: redis.Redis
) -> None:
    seed_completed(r, make_msg("w1", retention=3600, completed_at=int(time.time())),
                   expires_at=time.time() + 3600)  # fmt: skip
    r.hset(keys.task_key(Q, "w1"), "result", b"the answer")
    res = cli("task", "wait", "-q", Q, "-i", "w1", "--timeout", "5")
    assert (res.code, res.out) == (0, "the answer\n"), res.err
    assert cli("task", "wait", "-q", Q, "-i", "w1", "--json").json()["result"] == "the answer"
    seed_archived(r, make_msg("w2", error_msg="disk full", last_failed_at=int(time.time())),
                  archived_at=time.time())  # fmt: skip
    failed = cli("task", "wait", "-q", Q, "-i", "w2", "--timeout", "5")
    assert failed.code == 1 and "disk full" in failed.err
    pending = client.enqueue(Task("slow"), queue=Q).id
    late = cli("task", "wait", "-q", Q, "-i", pending, "--timeout", "0.2")
    assert late.code == 1 and "did not finish within 0.2s" in late.err
