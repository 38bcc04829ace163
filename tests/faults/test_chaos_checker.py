"""The checker classifies from records alone: these are hand-made records."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis

from chaos.checker import classify
from chaos.ledger import FinishTail, Runs, read_recoveries, read_runs
from chaos.procs import Fault
from chaos.proxy import Proxy


def _runs(**events: list[tuple[str, int, float]]) -> Runs:
    runs = Runs()
    for tid, evs in events.items():
        for kind, pid, at in evs:
            (runs.starts if kind == "S" else runs.finishes)[tid].append((pid, at))
    return runs


def test_a_rerun_after_a_kill_is_a_duplicate_with_its_cause() -> None:
    runs = _runs(
        a=[("S", 1, 10.0), ("F", 1, 10.1)],
        b=[("S", 1, 10.0), ("S", 2, 13.0), ("F", 2, 13.1)],  # pid 1 killed at 10.5
    )
    faults = [Fault("worker SIGKILL", 10.5, 10.5, (1,))]
    res = classify("x", {"a", "b"}, {"a": 9.0, "b": 9.0}, runs, faults, lease=2.0)
    assert (res.done_once, res.duplicated, res.lost, res.unexpected) == (1, 1, 0, 0)
    assert res.causes == {"worker SIGKILL": 1}
    assert res.ok
    # Work went on at 13.1 (the rerun), 2.6 s after the kill.
    assert res.recover_s == pytest.approx(2.6)


def test_a_duplicate_with_no_fault_or_on_another_worker_is_unexpected() -> None:
    runs = _runs(b=[("S", 1, 10.0), ("F", 1, 10.1), ("S", 2, 30.0), ("F", 2, 30.1)])
    other_worker = [Fault("worker SIGKILL", 10.05, 10.05, (3,))]
    for faults in ([], other_worker):
        res = classify("x", {"b"}, {"b": 9.0}, runs, faults, lease=2.0)
        assert (res.duplicated, res.unexpected) == (1, 1)
        assert not res.ok


def test_a_fault_the_guarantee_covers_explains_no_duplicate() -> None:
    # Clock skew: pyasynq keeps Redis's time, so a rerun during it is unexpected.
    runs = _runs(b=[("S", 1, 10.0), ("S", 2, 13.0), ("F", 2, 13.1)])
    skew = [Fault("worker clock skew ±300 s", 5.0, 20.0, explains=False)]
    res = classify("x", {"b"}, {"b": 9.0}, runs, skew, lease=2.0)
    assert (res.duplicated, res.unexpected, res.causes) == (1, 1, {})
    assert res.faults == 1 and not res.ok


def test_lost_and_strangers() -> None:
    runs = _runs(z=[("S", 1, 10.0), ("F", 1, 10.1)])
    res = classify("x", {"a"}, {"a": 9.0}, runs, [], lease=2.0)
    assert res.lost == 1 and res.examples["lost"] == ["a"]
    assert res.unexpected == 1 and res.examples["strangers"] == ["z"]
    assert not res.ok
    allowed = classify("x", {"a", "z"}, {"a": 9.0}, runs, [], lease=2.0, lost_allowed=True)
    assert allowed.lost == 1 and allowed.ok


def test_a_redis_fault_explains_runs_within_a_lease_of_it() -> None:
    # A run whose outcome was in flight during a failover, rerun after.
    runs = _runs(c=[("S", 1, 10.0), ("F", 1, 10.1), ("S", 2, 14.0), ("F", 2, 14.1)])
    near = [Fault("sentinel failover", 11.0, 12.5)]
    far = [Fault("sentinel failover", 20.0, 22.0)]
    assert classify("x", {"c"}, {"c": 9.0}, runs, near, lease=2.0).causes == {
        "sentinel failover": 1
    }
    assert classify("x", {"c"}, {"c": 9.0}, runs, far, lease=2.0).unexpected == 1


def test_event_files_skip_a_line_cut_short_and_are_read_incrementally(tmp_path: Path) -> None:
    f = tmp_path / "events-42.log"
    f.write_text("S t1 1.0\nF t1 1.5\nS t2 2.0\nF t")  # the last line cut by a kill
    runs = read_runs(tmp_path)
    assert runs.starts == {"t1": [(42, 1.0)], "t2": [(42, 2.0)]}
    assert runs.finishes == {"t1": [(42, 1.5)]}
    tail = FinishTail(tmp_path)
    assert tail.poll() == {"t1"}
    fd = os.open(f, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"2 2.5\n")  # the rest of the cut line: "F t2 2.5"
    os.close(fd)
    assert tail.poll() == {"t1", "t2"}


def test_the_proxy_blackholes_then_heals(redis_url: str) -> None:
    port = int(redis_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0])
    proxy = Proxy(port)
    proxy.start()
    try:
        c = redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=0.5)
        assert c.ping()
        proxy.blackhole()
        with pytest.raises(redis.TimeoutError):
            c.ping()
        proxy.heal(reset=True)
        fresh = redis.Redis(host="127.0.0.1", port=proxy.port, socket_timeout=2)
        assert fresh.ping()
        fresh.close()
        c.close()
    finally:
        proxy.stop()


def test_a_run_finished_before_the_kill_needs_its_lease_recovered_after_it() -> None:
    # pid 1 finished d at 10.0; killed at 10.15 with the done write still on its way;
    # a recoverer took the lease back at 13.5; pid 2 ran it again at 14.0.
    runs = _runs(d=[("S", 1, 9.9), ("F", 1, 10.0), ("S", 2, 14.0), ("F", 2, 14.1)])
    kill = [Fault("worker SIGKILL", 10.15, 10.15, (1,))]
    res = classify("x", {"d"}, {"d": 9.0}, runs, kill, lease=2.0, recovered={"d": [13.5]})
    assert res.causes == {"worker SIGKILL (outcome unwritten)": 1} and res.ok
    # No recovery logged, or one before the kill (the lease was lost before it), or
    # another worker's kill: nothing ties the rerun to this kill.
    other = [Fault("worker SIGKILL", 10.15, 10.15, (3,))]
    for recovered, faults in (({}, kill), ({"d": [10.1, 13.5]}, kill), ({"d": [13.5]}, other)):
        res = classify("x", {"d"}, {"d": 9.0}, runs, faults, lease=2.0, recovered=recovered)
        assert res.unexpected == 1, recovered


def test_recoveries_are_read_from_the_worker_logs(tmp_path: Path) -> None:
    (tmp_path / "worker-0-1.err").write_text(
        "2026-12-07 14:28:05,490 WARNING pyasynq pid=1980 recoverer: task k17 in default "
        "had an expired lease\n"
        "2026-12-07 14:28:05,491 WARNING pyasynq pid=1980 task k18: lease lost to another "
        "worker; outcome dropped\n"
    )
    [at] = read_recoveries(tmp_path)["k17"]
    assert at == pytest.approx(time.mktime((2026, 12, 7, 14, 28, 5, 0, 0, -1)) + 0.49)
    assert set(read_recoveries(tmp_path)) == {"k17"}
