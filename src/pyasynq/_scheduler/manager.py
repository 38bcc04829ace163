"""PeriodicTaskManager: keeps a Scheduler's entries equal to what a provider returns
(asynq's PeriodicTaskManager).

Every ``sync_interval`` (3 min) the provider is asked for the wanted
:class:`PeriodicTaskConfig` list; configs that are new are registered, registered ones
that are gone are unregistered. A config is identified as asynq identifies it: by the
hash of its spec, type, payload and sorted option strings, so an unchanged config keeps
its entry (and its schedule). A provider error, or an invalid config in the answer, is
logged and the current entries are kept; at start it is raised instead, as in Go.

A provider is a callable returning the configs, an object with ``get_configs()``
(asynq's PeriodicTaskConfigProvider), or a plain list for a fixed set; callables may be
``async``. A plain function runs on a worker thread, so it may read a database.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pyasynq.clock import Clock
from pyasynq.options import Options
from pyasynq.task import Task

from .config import SchedulerConfig
from .entries import entry_identity, entry_option_strings

if TYPE_CHECKING:
    from pyasynq._async.connection import Target
    from pyasynq.scheduler import Scheduler

__all__ = ["PeriodicTaskConfig", "PeriodicTaskManager"]

DEFAULT_SYNC_INTERVAL = 180.0


@dataclass(frozen=True)
class PeriodicTaskConfig:
    """One wanted periodic task: a cron spec, the task and its enqueue options (a mapping
    such as ``{"queue": "cron", "max_retry": 3}`` or an :class:`Options`)."""

    cronspec: str
    task: Task
    options: Mapping[str, Any] | Options = field(default_factory=dict)

    def enqueue_options(self) -> dict[str, Any]:
        """The options as keyword arguments for ``Scheduler.register``, in given order."""
        if isinstance(self.options, Options):
            return {
                n: getattr(self.options, n)
                for n in Options.__dataclass_fields__
                if getattr(self.options, n) is not None
            }
        return dict(self.options)

    def identity(self) -> str:
        """asynq's config hash; the same as the identity of the entry it registers."""
        kw = self.enqueue_options()
        strings = entry_option_strings(self.task, Options(**kw), kw)
        return entry_identity(self.cronspec, self.task, strings)

    def validate(self) -> None:
        """Raise ValueError unless the config has a spec, a Task and options."""
        if not isinstance(self.cronspec, str) or not self.cronspec:
            raise ValueError("PeriodicTaskConfig.cronspec must be a non-empty string")
        if not isinstance(self.task, Task):
            raise ValueError(f"PeriodicTaskConfig.task must be a pyasynq.Task, got {self.task!r}")
        if not isinstance(self.options, Mapping | Options):
            raise ValueError("PeriodicTaskConfig.options must be a mapping or an Options")


class PeriodicTaskManager:
    """Runs a Scheduler whose entries follow ``provider``.

    ``PeriodicTaskManager(redis, provider, sync_interval=180, **scheduler_config)``;
    the scheduler options are those of :class:`~pyasynq.scheduler.SchedulerConfig`.
    Same life cycle as the Scheduler: ``run()``, ``start()``, ``shutdown()``,
    ``await ashutdown()``, ``await serve()``.
    """

    def __init__(
        self,
        redis: Target,
        provider: Any,
        *,
        sync_interval: float | timedelta = DEFAULT_SYNC_INTERVAL,
        config: SchedulerConfig | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> None:
        from pyasynq.scheduler import Scheduler

        if provider is None:
            raise TypeError("provider must not be None (asynq: PeriodicTaskConfigProvider)")
        if not (
            callable(provider)
            or callable(getattr(provider, "get_configs", None))
            or isinstance(provider, list | tuple)
        ):
            raise TypeError(
                "provider must be a callable, an object with get_configs(), or a list of "
                f"PeriodicTaskConfig; got {provider!r}"
            )
        interval = (
            sync_interval.total_seconds() if isinstance(sync_interval, timedelta) else sync_interval
        )
        if not isinstance(interval, int | float) or interval <= 0:
            raise ValueError(f"sync_interval must be positive, got {sync_interval!r}")
        self.sync_interval = float(interval)
        self.scheduler: Scheduler = Scheduler(redis, config=config, clock=clock, **options)
        self.log = self.scheduler.log
        self._provider = provider
        self._ids: dict[str, str] = {}  # config identity -> entry id

    def __repr__(self) -> str:
        return f"<PeriodicTaskManager {self.scheduler!r} {len(self._ids)} entries>"

    @property
    def entry_ids(self) -> dict[str, str]:
        """Config identity -> entry id of what is registered now."""
        return dict(self._ids)

    # -- life cycle -------------------------------------------------------------------

    def run(self) -> None:
        """Sync once, start, block until SIGTERM/SIGINT, shut down."""
        asyncio.run(self.serve(signals=True))

    def start(self) -> None:
        """Sync once and start on a background thread. Raises what the first sync
        raised (provider error, invalid config) or BrokerError."""
        self.scheduler._start_thread(self._initial_sync, self._sync_loop)

    def shutdown(self) -> None:
        """Stop the scheduler (see :meth:`Scheduler.shutdown`)."""
        self.scheduler.shutdown()

    async def ashutdown(self) -> None:
        """:meth:`shutdown` for async code."""
        await self.scheduler.ashutdown()

    async def serve(self, *, signals: bool = False) -> None:
        """Sync once, then run in the current event loop until shutdown."""
        self.scheduler._claim()
        await self.scheduler._serve_claimed(signals, self._initial_sync, self._sync_loop)

    # -- syncing ----------------------------------------------------------------------

    async def sync(self) -> bool:
        """Ask the provider and apply the difference now. Returns False (and keeps the
        current entries) when the provider failed or answered an invalid config."""
        try:
            configs = await self._configs()
        except Exception as exc:
            self.log.error("Failed to get periodic task configs: %s", exc)
            return False
        self._apply(configs)
        return True

    async def _initial_sync(self) -> None:
        try:
            configs = await self._configs()
        except Exception as exc:
            exc.add_note("(the initial call to get the periodic task configs failed)")
            raise
        self._apply(configs)

    async def _sync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sync_interval)
            await self.sync()

    async def _configs(self) -> list[PeriodicTaskConfig]:
        p = self._provider
        if isinstance(p, list | tuple):
            result: Any = p
        else:
            fn = p.get_configs if callable(getattr(p, "get_configs", None)) else p
            if inspect.iscoroutinefunction(fn):
                result = await fn()
            else:
                result = await asyncio.to_thread(fn)
                if inspect.isawaitable(result):
                    result = await result
        if result is None or not isinstance(result, Iterable):
            raise TypeError(f"the provider returned {result!r}, not a list of PeriodicTaskConfig")
        configs = list(result)
        for c in configs:
            if not isinstance(c, PeriodicTaskConfig):
                raise TypeError(f"the provider returned {c!r}, not a PeriodicTaskConfig")
            c.validate()
        return configs

    def _apply(self, configs: list[PeriodicTaskConfig]) -> None:
        wanted: dict[str, PeriodicTaskConfig] = {}
        for c in configs:
            try:
                wanted.setdefault(c.identity(), c)
            except (TypeError, ValueError) as exc:  # bad options: skip that one
                self.log.error(
                    "Failed to register periodic task: cronspec=%r task=%r: %s",
                    c.cronspec,
                    c.task.type,
                    exc,
                )
        for key in [k for k in self._ids if k not in wanted]:
            entry_id = self._ids.pop(key)
            try:
                self.scheduler.unregister(entry_id)
            except KeyError as exc:  # unregistered behind our back
                self.log.error("Failed to unregister periodic task: %s", exc)
                continue
            self.log.info("Successfully unregistered periodic task: entryID=%s", entry_id)
        for key, c in wanted.items():
            if key in self._ids:
                continue
            try:
                entry_id = self.scheduler.register(c.cronspec, c.task, **c.enqueue_options())
            except (TypeError, ValueError) as exc:
                self.log.error(
                    "Failed to register periodic task: cronspec=%r task=%r: %s",
                    c.cronspec,
                    c.task.type,
                    exc,
                )
                continue
            self._ids[key] = entry_id
            self.log.info(
                "Successfully registered periodic task: cronspec=%r task=%r, entryID=%s",
                c.cronspec,
                c.task.type,
                entry_id,
            )
