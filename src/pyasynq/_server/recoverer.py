"""Recoverer: finds tasks whose lease expired (their worker died or stalled) and sends
them to retry or the archive; then returns stale aggregation sets to their groups
(wire spec 3.13, 3.15).

With ``ServerConfig.max_crash_recoveries`` set, pyasynq counts these recoveries per task
(hash field ``crashes``) and archives a task that has lost its worker that many times.
Off (the default), nothing is counted and the rule is asynq's: retry until ``max_retry``.
It also gives a lease to active ids that have none (evicted, or edited by hand), which
would otherwise stay in active forever; they are recovered like the others once that lease
has expired.
"""

from __future__ import annotations

from pyasynq._rdb.ops import aggregation, processing
from pyasynq.errors import LeaseExpiredError

from .base import Component, Runtime, run_write
from .processor import is_failure, retry_delay

LEASE_EXPIRED = "asynq: task lease expired"


class Recoverer(Component):
    name = "recoverer"

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt, rt.config.seconds("recoverer_interval"), run_at_start=True)
        self.lease = rt.config.seconds("lease_duration")

    async def exec(self) -> None:
        rt, cfg = self.rt, self.rt.config
        now = rt.clock.now()
        for q in rt.queues:
            orphans = processing.lease_orphans_result(
                await rt.broker.run(processing.lease_orphans(q, now))
            )
            if orphans:
                rt.log.warn(
                    "recoverer: %d task id(s) in active of queue %s had no lease (evicted by "
                    "Redis or edited by hand): %s; gave them a lease ending now, so they are "
                    "recovered after the usual %g s grace unless a worker still holds them",
                    len(orphans), q, _some(orphans), self.lease,
                )  # fmt: skip
            # Every worker's recoverer lists the same expired leases; the writes below are
            # fenced on this cutoff, so one that comes after another recoverer's (and the
            # task's new lease) leaves the task to the worker that holds it now.
            cutoff = now - self.lease
            reply = await rt.broker.run(processing.list_lease_expired(q, cutoff))
            for leased in processing.list_lease_expired_result(q, reply):
                msg, crashes = leased.msg, leased.crashes
                if msg is None:
                    rt.log.error(
                        "task %s in %s: %s; quarantined", leased.task_id, q, leased.problem
                    )
                    await rt.broker.run(processing.quarantine(q, leased.task_id, leased.problem))
                    continue
                limit = cfg.max_crash_recoveries
                counted = limit is not None
                too_many = limit is not None and crashes + 1 >= limit
                if too_many or msg.retried >= msg.retry:
                    reason = LEASE_EXPIRED
                    if too_many:
                        reason = (
                            f"{LEASE_EXPIRED} ({crashes + 1} times: the task may be killing "
                            "its worker)"
                        )
                    op = processing.archive(
                        msg, now, reason, "", crashed=counted, lease_cutoff=cutoff
                    )
                else:
                    err = LeaseExpiredError()
                    op = processing.retry(
                        msg, now, now + retry_delay(rt, msg, err), LEASE_EXPIRED,
                        is_failure(rt, err), "", crashed=counted, lease_cutoff=cutoff,
                    )  # fmt: skip
                try:
                    await run_write(rt, op)
                    rt.log.warn("recoverer: task %s in %s had an expired lease", msg.id, q)
                except processing.DEFINITIVE_ERRORS as exc:
                    rt.log.debug("recoverer: task %s: %s", msg.id, exc)
            await rt.broker.run(aggregation.reclaim_stale_aggregation_sets(q, now))


def _some(ids: list[str], n: int = 5) -> str:
    shown = ", ".join(ids[:n])
    return shown if len(ids) <= n else f"{shown} and {len(ids) - n} more"
