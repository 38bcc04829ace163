"""How a worker reports finished tasks to metrics (or any callback) without the
processor knowing about Prometheus.

``ServerConfig.on_task_done(msg, duration, error)`` is called on the server's event loop
once per handler run that ends in an outcome (success or failure; not when the shutdown
timeout requeues the task): ``duration`` is the handler's wall time in seconds, ``error``
what it raised (None on success). It must be quick and must not block. An exception
from it is logged and otherwise ignored: metrics never change how a task is processed.

``ServerConfig.on_task_start(msg, wait)`` is called the same way when a dequeued task
starts, with its queue wait: seconds from the moment it became pending (its
``pending_since``: enqueued, or moved there by the forwarder when its process-at or retry
time came) to now. Tasks without ``pending_since`` (requeued at a shutdown, recovered
after a crash) are not reported.

``ServerConfig.metrics_port`` asks the Server to serve :class:`pyasynq.metrics.WorkerMetrics`
at ``http://metrics_host:metrics_port/metrics``; :func:`attach` and :func:`serve` are the
two steps the Server takes for that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyasynq._rdb.codec import TaskMessage

if TYPE_CHECKING:
    from pyasynq.config import ServerConfig
    from pyasynq.metrics import WorkerMetrics

    from .base import Runtime

__all__ = [
    "TaskDoneHook", "TaskStartHook", "attach", "chain", "report_task_done",
    "report_task_start", "serve",
]  # fmt: skip

TaskDoneHook = Callable[[TaskMessage, float, "BaseException | None"], None]
TaskStartHook = Callable[[TaskMessage, float], None]


def report_task_start(rt: Runtime, msg: TaskMessage, wait: float) -> None:
    """Call ``rt.config.on_task_start`` if set; never raises."""
    hook: TaskStartHook | None = getattr(rt.config, "on_task_start", None)
    if hook is None:
        return
    try:
        hook(msg, wait)
    except Exception as exc:
        rt.log.error("on_task_start hook failed for task %s: %r", msg.id, exc)


def report_task_done(
    rt: Runtime, msg: TaskMessage, duration: float, error: BaseException | None
) -> None:
    """Call ``rt.config.on_task_done`` if set; never raises."""
    hook: TaskDoneHook | None = getattr(rt.config, "on_task_done", None)
    if hook is None:
        return
    try:
        hook(msg, duration, error)
    except Exception as exc:
        rt.log.error("on_task_done hook failed for task %s: %r", msg.id, exc)


def chain(*hooks: TaskDoneHook | None) -> TaskDoneHook | None:
    """One hook calling each given hook in order (None entries skipped). Each call is
    guarded, so a failing hook does not keep the later ones from running."""
    live = [h for h in hooks if h is not None]
    if not live:
        return None
    if len(live) == 1:
        return live[0]

    def all_hooks(msg: TaskMessage, duration: float, error: BaseException | None) -> None:
        failure: Exception | None = None
        for h in live:
            try:
                h(msg, duration, error)
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    return all_hooks


def attach(config: ServerConfig) -> tuple[ServerConfig, WorkerMetrics | None]:
    """When ``config.metrics_port`` is set: a WorkerMetrics and the config whose
    ``on_task_done`` and ``on_task_start`` also feed it (the user's own hooks run first). Else the
    config unchanged and None. Raises ImportError (with the pip command) when
    prometheus-client is missing."""
    if getattr(config, "metrics_port", None) is None:
        return config, None
    from pyasynq.metrics import WorkerMetrics

    metrics = WorkerMetrics()
    user: TaskDoneHook | None = getattr(config, "on_task_done", None)
    user_start: TaskStartHook | None = getattr(config, "on_task_start", None)
    changes: dict[str, Any] = {
        "on_task_done": chain(user, metrics),
        "on_task_start": _chain_start(user_start, metrics.task_started),
    }
    return dataclasses.replace(config, **changes), metrics


def _chain_start(user: TaskStartHook | None, ours: TaskStartHook) -> TaskStartHook:
    if user is None:
        return ours

    def both(msg: TaskMessage, wait: float) -> None:
        try:
            user(msg, wait)
        finally:
            ours(msg, wait)

    return both


def serve(metrics: WorkerMetrics, config: ServerConfig) -> int:
    """Start the /metrics endpoint of ``metrics`` on the configured host and port;
    returns the port (useful with ``metrics_port=0``)."""
    port: int = getattr(config, "metrics_port", 0) or 0
    host: str = getattr(config, "metrics_host", "127.0.0.1")
    return metrics.serve(port, host)
