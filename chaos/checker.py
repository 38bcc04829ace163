"""The checker: classifies every task from the records kept outside Redis.

* done once: acknowledged, one handler run, finished;
* lost: acknowledged, never finished;
* duplicated: more than one run; every run but the last must fall in a fault the harness
  logged (a worker killed, stopped or shut down while it ran the task, a partition, a
  Redis kill, freeze or failover around it, within a lease of its end), which names the
  cause; a duplicate with no such fault is *unexpected*. A run that finished before its
  worker was killed counts as hit by the kill only if its outcome never reached Redis,
  which a worker's recoverer log shows: it took the task's expired lease back after the
  kill, with no recovery of it between the run's start and the kill;
* unexpected: also a run of an id the producer never sent."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .ledger import Runs
from .procs import Fault


@dataclass
class Result:
    scenario: str
    tasks: int  # acknowledged enqueues
    faults: int
    fault_kinds: str
    done_once: int
    lost: int
    duplicated: int
    causes: dict[str, int]
    unexpected: int
    stale_refused: int
    recover_s: float | None
    lost_allowed: bool = False
    notes: list[str] = field(default_factory=list)
    examples: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.lost == 0 or self.lost_allowed) and self.unexpected == 0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


UNWRITTEN = " (outcome unwritten)"


def _cause(
    pid: int, start: float, end: float | None, faults: list[Fault], slack: float, *,
    recovered: Sequence[float] = (), next_start: float | None = None,
) -> tuple[int, str] | None:  # fmt: skip
    """The fault (its index, and the cause's name) that explains a run that was not the
    last of its task; ``recovered``: when a recoverer took the task's lease back."""
    for i, f in enumerate(faults):
        if not f.explains or (f.pids and pid not in f.pids):
            continue
        if f.pids:
            # A fault on this worker: the run was in flight when it hit.
            if start <= f.until + 0.05 and (end is None or end >= f.at - 0.05):
                return i, f.kind
            # The handler had finished, its outcome write had not reached Redis yet when
            # the worker died: the recoverer took the lease back after the kill (and not
            # before it, which would be another story), before the next run.
            if (
                end is not None
                and end < f.at
                and any(f.at <= r <= (next_start or float("inf")) for r in recovered)
                and not any(start <= r < f.at for r in recovered)
            ):
                return i, f.kind + UNWRITTEN
            continue
        # A fault of Redis or the network: the run (or the write of its outcome, up to a
        # lease later) overlapped it.
        if start <= f.until + slack and (end is None or end >= f.at - slack):
            return i, f.kind
    return None


def classify(
    scenario: str,
    attempted: set[str] | None,
    acked: dict[str, float],
    runs: Runs,
    faults: list[Fault],
    *,
    lease: float,
    stale_refused: int = 0,
    lost_allowed: bool = False,
    recovered: dict[str, list[float]] | None = None,
) -> Result:
    slack = lease + 1.0
    lost = sorted(t for t in acked if t not in runs.finishes)
    causes: Counter[str] = Counter()
    unexplained: list[str] = []
    duplicated = 0
    settled: dict[int, float] = {}  # fault index -> last final finish of a task it hit
    done_once = 0
    ran = set(runs.starts) | set(runs.finishes)
    strangers = sorted(t for t in ran if attempted is not None and t not in attempted)
    for tid in ran:
        starts = sorted(runs.starts.get(tid, []), key=lambda r: r[1])
        fins = runs.finishes.get(tid, [])
        if len(starts) <= 1 and len(fins) <= 1:
            if fins:
                done_once += 1
            continue
        duplicated += 1
        rec = (recovered or {}).get(tid, [])
        for n, (pid, at) in enumerate(starts[:-1]):
            end = next((f_at for f_pid, f_at in fins if f_pid == pid and f_at >= at), None)
            found = _cause(pid, at, end, faults, slack, recovered=rec, next_start=starts[n + 1][1])
            if found is None:
                unexplained.append(tid)
                break
            cause, kind = found
            causes[kind] += 1
            last = max((f_at for _, f_at in fins), default=None)
            if last is not None:
                settled[cause] = max(settled.get(cause, 0.0), last)
    recover = recovery(faults, runs.finish_times, settled)
    return Result(
        scenario=scenario, tasks=len(acked), faults=len(faults),
        fault_kinds=", ".join(f"{k} x{n}" for k, n in Counter(f.kind for f in faults).items()),
        done_once=done_once, lost=len(lost), duplicated=duplicated, causes=dict(causes),
        unexpected=len(unexplained) + len(strangers), stale_refused=stale_refused,
        recover_s=recover, lost_allowed=lost_allowed,
        examples={"lost": lost[:5], "all_lost": lost, "unexplained": unexplained[:5],
                  "strangers": strangers[:5]},
    )  # fmt: skip


def recovery(
    faults: list[Fault], finish_times: list[float], settled: dict[int, float]
) -> float | None:
    """Time to recover, the worst over the faults: from the end of a fault until work went
    on (the next handler finish) and every task it interrupted had finished again."""
    worst: float | None = None
    for n, f in enumerate(faults):
        i = bisect.bisect_left(finish_times, f.until)
        if i < len(finish_times):
            gap = max(finish_times[i], settled.get(n, 0.0)) - f.until
            worst = gap if worst is None else max(worst, gap)
    return worst


class Skipped(Exception):
    """A scenario that cannot run here; the message says what it needs."""
