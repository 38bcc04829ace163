"""Subscriber: listens on asynq:cancel and cancels the named task if it runs here
(wire spec 3.16). Resubscribes after a failure."""

from __future__ import annotations

import asyncio
import contextlib

from pyasynq._rdb import keys

from .base import Component, Runtime


class Subscriber(Component):
    name = "subscriber"

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt, rt.config.seconds("subscriber_retry_interval"))
        self.ready = asyncio.Event()
        self._queues = frozenset(rt.queues)

    async def run(self) -> None:
        while not self.done.is_set():
            listen = asyncio.create_task(self._listen())
            stop = asyncio.create_task(self.done.wait())
            await asyncio.wait({listen, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if self.done.is_set():
                await cancel_until_done(listen)
                return
            exc = listen.exception()
            self.rt.log.warn("subscriber: %s; retrying in %ss", exc, self.interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), self.interval)

    async def _listen(self) -> None:
        stream = self.rt.broker.messages(
            keys.CANCEL_CHANNEL, keys.WAKE_CHANNEL, on_subscribed=self.ready.set
        )
        async for channel, data in stream:
            text = data.decode("utf-8", "replace")
            if channel == keys.CANCEL_CHANNEL:
                self.cancel(text)
            elif text in self._queues and self.rt.wake is not None:
                self.rt.wake()

    def cancel(self, task_id: str) -> None:
        t = self.rt.workers.get(task_id)
        if t is None:
            return
        t.cancel_requested = True
        if t.waker is not None:
            t.waker()


async def cancel_until_done(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it to end. redis-py (seen with 8.1) can swallow a
    cancellation that lands while SUBSCRIBE connects and then keeps listening, so the
    cancel is repeated until it takes."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved
