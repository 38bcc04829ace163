"""Limiter: fleet-wide concurrency caps and rate limits per task type (pyasynq only).

The processor asks :meth:`Limiter.lookup` for each task it dequeues; only a task whose
type has a limit goes through :meth:`Limiter.admit` (one script, right after the dequeue)
before its handler runs, so a server without limits pays nothing. A task that may not
start now is parked by that script in the queue's scheduled set, and the worker slot is
free at once. When the handler ends, :meth:`Limiter.release` gives the capacity back and,
in the same script, hands the oldest waiter to this worker when it has a free slot (leased
and admitted, so it starts without a dequeue) and moves other waiters there is room for to
the front of pending (announced on ``pyasynq:wake``). As a component,
the limiter also runs that wake-up every second for each limit and queue, which frees
the slots of crashed workers once their leases expire, and again exactly when a rate
window frees a start. See docs/limits.md and lua/limit_*.lua.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pyasynq._rdb.codec import TaskMessage
from pyasynq._rdb.ops import limiter as ops
from pyasynq._rdb.ops import processing
from pyasynq._rdb.ops.processing import Leased
from pyasynq.errors import BrokerError
from pyasynq.limits import Limit

from .base import Component, Runtime

if TYPE_CHECKING:
    from pyasynq.mux import ServeMux

    from .processor import Processor

Bound = tuple[str, ops.Spec]  # the limit's name (task type or handler pattern), its numbers

PUMP_INTERVAL = 1.0  # seconds between wake-ups of each limit when nothing else wakes it
MIN_INTERVAL = 0.005
ADMIT_RETRY_DELAY = 1.0  # seconds before a task whose limit check failed is put back


def spec_of(limit: Limit) -> ops.Spec:
    return ops.Spec(limit.concurrency or 0, limit.rate or 0, limit.window)


def configured(rt: Runtime, mux: ServeMux) -> dict[str, Limit]:
    """Every limit this server enforces, by name: the mux's per pattern, then the
    config's per type (which win)."""
    return {**mux.limits(), **rt.config.limits}


class Limiter(Component):
    name = "limiter"

    def __init__(self, rt: Runtime, mux: ServeMux) -> None:
        super().__init__(rt, PUMP_INTERVAL, run_at_start=True)
        self._mux = mux
        self._limits = {name: spec_of(lim) for name, lim in configured(rt, mux).items()}
        self._by_type: dict[str, Bound | None] = {}
        # A parked task waits in scheduled at most this long when nothing wakes it.
        self._grace = rt.config.seconds("lease_duration")  # the recoverer's cutoff
        self._fallback = max(ops.WAIT_FALLBACK, 2 * rt.config.seconds("lease_duration"))

    def __bool__(self) -> bool:
        return bool(self._limits)

    def lookup(self, task_type: str) -> Bound | None:
        """The limit a task of ``task_type`` runs under, or None (remembered per type)."""
        try:
            return self._by_type[task_type]
        except KeyError:
            pass
        bound: Bound | None = None
        if task_type in self.rt.config.limits:
            bound = (task_type, self._limits[task_type])
        elif (hit := self._mux.limit_for(task_type)) is not None:
            bound = (hit[0], self._limits[hit[0]])
        if len(self._by_type) < 10_000:
            self._by_type[task_type] = bound
        return bound

    async def admit(self, bound: Bound, msg: TaskMessage, token: str) -> bool:
        """Whether the just-dequeued ``msg`` may start now. When not, it is parked in
        Redis (or, after a failure, put back in pending) and the caller drops it."""
        rt = self.rt
        name, spec = bound
        op = ops.acquire(
            msg.queue, name, spec, task_id=msg.id, token=token, now=rt.clock.now(),
            wait_fallback=self._fallback, grace=self._grace,
        )  # fmt: skip
        try:
            got = ops.acquire_result(await rt.broker.run(op))
        except BrokerError as exc:
            # Hold the worker slot a moment first: put back at once, the task would be
            # taken and fail again in a loop while Redis is unwell.
            await asyncio.sleep(ADMIT_RETRY_DELAY)
            await self._put_back(msg, token, exc)
            return False
        if got.started:
            return True
        if got.parked_until is not None:
            rt.log.debug(
                'task %s (type "%s", queue "%s"): limit "%s" reached; waiting in scheduled',
                msg.id, msg.type, msg.queue, name,
            )  # fmt: skip
        else:
            rt.log.warn(
                "task %s: its lease was taken over before its limit was checked; not run here",
                msg.id,
            )
        return False

    async def _put_back(self, msg: TaskMessage, token: str, exc: BrokerError) -> None:
        try:
            processing.check_write(await self.rt.broker.run(processing.requeue(msg, token)))
        except BrokerError as again:
            self.rt.log.error(
                "task %s: checking its limit failed (%s), and so did putting it back (%s); "
                "the recoverer takes it back when its lease expires", msg.id, exc, again,
            )  # fmt: skip
            return
        self.rt.log.error(
            "task %s: checking its limit failed (%s); put back in pending", msg.id, exc
        )

    async def release(
        self, bound: Bound, msg: TaskMessage, token: str, take: str = ""
    ) -> Leased | None:
        """Give back the capacity ``msg`` held and wake waiters. With ``take`` (an attempt
        token; the caller has a free worker slot for it), the first waiter is leased to
        the caller and returned, already admitted: it starts without a dequeue. A failure
        is logged: the slot then frees once the task's lease has expired (pruned)."""
        name, spec = bound
        now = self.rt.clock.now()
        op = ops.wake(
            msg.queue, name, spec, self.rt.clock.now_ns(), task_id=msg.id, token=token,
            grace=self._grace, take_token=take, lease_until=int(now) + int(self._grace),
        )  # fmt: skip
        try:
            woken = ops.wake_result(msg.queue, await self.rt.broker.run(op))
        except BrokerError as exc:
            self.rt.log.warn(
                'task %s: releasing its slot of limit "%s" failed: %s; it frees once the '
                "task's lease has expired", msg.id, name, exc,
            )  # fmt: skip
            return None
        others = woken.woken - (woken.taken is not None)
        if others and self.rt.wake is not None:
            self.rt.wake()  # our own slots may take them: no need to wait for the pub/sub
        return woken.taken

    async def exec(self) -> None:
        """Wake waiters of every limit in every queue; come back when a rate window next
        frees a start, or in a second."""
        soonest = PUMP_INTERVAL
        for q in self.rt.queues:
            for name, spec in self._limits.items():
                op = ops.wake(q, name, spec, self.rt.clock.now_ns(), grace=self._grace)
                woken = ops.wake_result(q, await self.rt.broker.run(op))
                if woken.next_free is not None:
                    soonest = min(soonest, woken.next_free)
                if woken.woken and self.rt.wake is not None:
                    self.rt.wake()
        self.interval = max(MIN_INTERVAL, soonest)


# --- the processor's side: running a limited task ------------------------------------------


async def run_limited(
    proc: Processor, bound: Bound, msg: TaskMessage, token: str, pending_since: float | None,
    *, admitted: bool = False,
) -> None:  # fmt: skip
    """Run ``msg`` (its worker slot taken) under its fleet-wide limit: start it only if
    the limiter admits it (else it waits in Redis and the slot is free now), and give the
    capacity back as soon as its handler is over, while the outcome is written."""
    limiter = proc.limiter
    assert limiter is not None
    try:
        admitted = admitted or await limiter.admit(bound, msg, token)
    finally:
        if not admitted:
            proc._release()
    if not admitted:
        return
    released: list[asyncio.Task[None]] = []

    def ended() -> None:
        released.append(asyncio.create_task(hand_over(proc, bound, msg, token)))

    try:
        await proc._work(msg, token, pending_since, ended)
    finally:
        if released:
            await released[0]
        else:
            await limiter.release(bound, msg, token)


async def hand_over(proc: Processor, bound: Bound, msg: TaskMessage, token: str) -> None:
    """Give ``msg``'s capacity back; when a worker slot is free here, the limiter hands
    the first waiter straight to it (leased and admitted in the same script), which saves
    the waiter's trip through pending, a dequeue and an admission."""
    limiter = proc.limiter
    assert limiter is not None
    take = not proc.rt.stopping.is_set() and proc.busy < proc.concurrency
    if take:
        proc.busy += 1
    new_token = next(proc._tokens) if take else ""
    try:
        nxt = await limiter.release(bound, msg, token, take=new_token)
    except BaseException:
        if take:
            proc._release()
        raise
    if nxt is None or nxt.msg is None:
        if take:
            proc._release()
        if nxt is not None:
            proc._set_aside(msg.queue, nxt.task_id, nxt.problem)
        return
    proc.start(run_limited(proc, bound, nxt.msg, new_token, None, admitted=True), nxt.msg.id)
