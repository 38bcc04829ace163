"""run/archive/delete-all on 100,000 tasks through the command line: bounded batches
(no Redis call handles more than a thousand tasks, so none blocks Redis for long) and
flat memory in the CLI process (it never holds the task ids)."""

from __future__ import annotations

import itertools
import time
import tracemalloc
from collections.abc import Callable

import pytest
import redis

from pyasynq._rdb import keys
from pyasynq.cli import task as task_cmd

from .support import Cli, seed_many

N = 100_000
BATCH = 1000  # pyasynq._rdb.ops.inspect.BULK_BATCH
Q = "bulk"
# What the command may allocate at its peak, whatever N: far below what holding 100,000
# ids takes (the control measurement below shows it).
MEMORY_LIMIT = 2 * 1024 * 1024


def evalsha_calls(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def load_all_peak(r: redis.Redis, state: str) -> int:
    """Peak memory of the naive approach: read every id of the source at once."""
    key = keys.queue_prefix(Q) + state
    tracemalloc.start()
    try:
        ids = r.lrange(key, 0, -1) if state == "pending" else r.zrange(key, 0, -1)
        assert len(ids) == N
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "case",
    [
        ("runall", "scheduled", "Moved 100000 scheduled tasks in queue 'bulk' to pending"),
        ("archiveall", "pending", "Archived 100000 pending tasks in queue 'bulk'"),
        ("deleteall", "retry", "Deleted 100000 retry tasks from queue 'bulk'"),
    ],
)
def test_bulk_on_100k_tasks(
    cli: Cli, r: redis.Redis, monkeypatch: pytest.MonkeyPatch, case: tuple[str, str, str]
) -> None:
    verb, state, done = case
    started = time.monotonic()
    seed_many(r, Q, state, N)
    seeded_in = time.monotonic() - started
    assert seeded_in < 30, f"seeding {N} tasks took {seeded_in:.1f}s"
    control = load_all_peak(r, state)
    assert control > MEMORY_LIMIT, "the memory bound would not catch a load-all approach"

    steps: list[int] = []
    stamps: list[float] = []
    totals: list[int] = []

    def spy(con: object, label: str, total: int, work: Callable[..., int]) -> int:
        totals.append(total)  # the progress bar's total

        def step(n: int) -> None:
            steps.append(n)
            stamps.append(time.perf_counter())

        stamps.append(time.perf_counter())
        return work(step)

    monkeypatch.setattr(task_cmd, "with_progress", spy)
    # Warm up on an empty source: imports, script loading, connection setup.
    r.sadd(keys.ALL_QUEUES, "warm")
    assert cli("task", verb, "-q", "warm", "-s", state).code == 0
    steps.clear()
    stamps.clear()
    totals.clear()

    calls_before = evalsha_calls(r)
    tracemalloc.start()
    try:
        res = cli("task", verb, "-q", Q, "-s", state)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    calls = evalsha_calls(r) - calls_before

    assert res.code == 0, res.err
    assert res.out == done + "\n"
    assert totals == [N]
    # Bounded batches: one script call per thousand tasks, each moving at most a thousand.
    assert calls >= N // BATCH
    assert steps[-1] == N
    moved = [b - a for a, b in zip([0, *steps], steps, strict=False)]
    assert len(moved) == N // BATCH
    assert max(moved) <= BATCH
    assert peak < MEMORY_LIMIT, f"peak {peak} B (load-all took {control} B)"
    slowest = max(b - a for a, b in itertools.pairwise(stamps))
    print(
        f"{verb}: {calls} script calls, peak {peak / 1024:.0f} KiB "
        f"(load-all {control / 1024:.0f} KiB), slowest batch {slowest * 1000:.1f} ms"
    )

    source = keys.queue_prefix(Q) + state
    assert r.exists(source) == 0
    if verb == "runall":
        assert r.llen(keys.pending_key(Q)) == N
    elif verb == "archiveall":
        assert r.zcard(keys.archived_key(Q)) == 9_999  # the archive keeps Go's cap
    else:
        assert r.dbsize() == 1  # only asynq:queues is left
