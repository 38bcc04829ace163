"""Reporting the dangling ids the dequeue scripts skip: ids in a queue with no task data
behind them (evicted by Redis, or deleted by hand). The scripts skip up to
``processing.DANGLING_MAX`` per call and record them in the queue's quarantine hash; this
adds the counts of consecutive calls and logs one line per run of them."""

from __future__ import annotations

from pyasynq._rdb import keys
from pyasynq._rdb.ops import processing
from pyasynq.log import Logger


class DanglingReport:
    """One warning per run of skipped ids in a queue, however many calls it took."""

    def __init__(self, log: Logger) -> None:
        self._log = log
        self._seen: dict[str, int] = {}

    def add(self, queue: str, reply: object) -> bool:
        """Count what one dequeue reply of ``queue`` skipped; True when it skipped as many
        as a call may, so more may be waiting: dequeue again at once."""
        n = processing.skipped_ids(reply)
        total = self._seen.pop(queue, 0) + n
        if n >= processing.DANGLING_MAX:
            self._seen[queue] = total
            return True
        if total:
            self._log.warn(
                "queue %s: skipped %d task id(s) with no task data (evicted by Redis or "
                "deleted by hand); their ids are recorded in %s",
                queue, total, keys.quarantine_key(queue),
            )  # fmt: skip
        return False
