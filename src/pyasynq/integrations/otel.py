"""OpenTelemetry tracing (``pip install 'pyasynq[otel]'``): one trace from enqueue to the
last attempt, following OpenTelemetry's messaging semantic conventions.

::

    from pyasynq.integrations import otel

    client = pyasynq.AsyncClient(url, enqueue_hooks=[otel.enqueue_hook()])   # producer
    mux.use(otel.middleware())                                              # worker

The enqueue hook opens a PRODUCER span ``enqueue <queue>`` and writes its context into the
task's headers (W3C ``traceparent``/``tracestate``, and ``baggage``, with the globally
configured propagator). Headers are part of asynq's TaskMessage, so the context survives a
trip through a Go client or worker. The middleware continues the trace with a CONSUMER
span ``process <queue>`` per attempt, a child of the producer span, so retries appear as
siblings under the enqueue. Tasks without a trace context start a new trace.

Attributes: ``messaging.system="asynq"``, ``messaging.operation.type`` (``send`` /
``process``), ``messaging.operation.name`` (``enqueue`` / ``process``),
``messaging.destination.name`` (the queue), ``messaging.message.id`` (the task id),
``messaging.message.body.size``, and pyasynq's own ``messaging.asynq.task.type``,
``messaging.asynq.task.retry_count``, ``messaging.asynq.task.max_retry`` and
``messaging.asynq.task.outcome`` (``succeeded``, ``retried``, ``archived``, ``revoked``,
``snoozed``, ``canceled``). A failed attempt records the exception, sets ``error.type`` and
the span status ERROR (a revoked or snoozed one does not: neither is a failure).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "pyasynq.integrations.otel needs opentelemetry-api: pip install 'pyasynq[otel]'"
    ) from exc

import pyasynq
from pyasynq import Enqueueing, RevokeTask, SkipRetry, Snooze, Task
from pyasynq.hooks import EnqueueHook
from pyasynq.mux import AsyncHandler, Middleware

__all__ = ["enqueue_hook", "middleware", "outcome"]

SYSTEM = "asynq"
SCOPE = "pyasynq"


def _tracer(provider: TracerProvider | None) -> trace.Tracer:
    return trace.get_tracer(SCOPE, pyasynq.__version__, tracer_provider=provider)


def enqueue_hook(tracer_provider: TracerProvider | None = None) -> EnqueueHook:
    """A client enqueue hook that traces each enqueue as a PRODUCER span and injects its
    context into the task's headers. ``tracer_provider`` defaults to the global one."""
    tracer = _tracer(tracer_provider)

    @contextlib.contextmanager
    def hook(ev: Enqueueing) -> Iterator[None]:
        queue = ev.queue or "default"
        span = tracer.start_span(
            f"enqueue {queue}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation.type": "send",
                "messaging.operation.name": "enqueue",
                "messaging.destination.name": queue,
                "messaging.asynq.task.type": ev.task.type,
                "messaging.message.body.size": len(ev.task.payload or b""),
            },
        )
        # The span's own context, not the current one: in enqueue_many several are open.
        propagate.inject(ev.headers, context=trace.set_span_in_context(span))
        try:
            yield
        finally:
            if ev.info is not None:
                span.set_attribute("messaging.message.id", ev.info.id)
                span.set_attribute("messaging.asynq.task.max_retry", ev.info.max_retry)
            if ev.error is not None:
                span.record_exception(ev.error)
                span.set_attribute("error.type", type(ev.error).__qualname__)
                span.set_status(Status(StatusCode.ERROR, str(ev.error)))
            span.end()

    return hook


def outcome(error: BaseException | None, retry_count: int, max_retry: int) -> str:
    """What the worker does with an attempt that ended with ``error``, by asynq's rules:
    ``succeeded``, ``revoked`` (RevokeTask), ``snoozed`` (Snooze), ``canceled``,
    ``archived`` (SkipRetry or no retry left) or ``retried``."""
    if error is None:
        return "succeeded"
    if _wraps(error, RevokeTask):
        return "revoked"
    if _wraps(error, Snooze):
        return "snoozed"
    if isinstance(error, asyncio.CancelledError):
        return "canceled"
    if retry_count >= max_retry or _wraps(error, SkipRetry):
        return "archived"
    return "retried"


def _wraps(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kind):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def middleware(tracer_provider: TracerProvider | None = None) -> Middleware:
    """A ServeMux middleware (``mux.use(otel.middleware())``) that runs each attempt in a
    CONSUMER span whose parent is the context in the task's headers."""
    tracer = _tracer(tracer_provider)

    def wrap(next_handler: AsyncHandler) -> AsyncHandler:
        async def traced(task: Task) -> None:
            ctx = pyasynq.current_task()
            parent = propagate.extract(task.headers)
            span = tracer.start_span(
                f"process {ctx.queue}",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": SYSTEM,
                    "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "messaging.destination.name": ctx.queue,
                    "messaging.message.id": ctx.id,
                    "messaging.message.body.size": len(task.payload or b""),
                    "messaging.asynq.task.type": ctx.type,
                    "messaging.asynq.task.retry_count": ctx.retry_count,
                    "messaging.asynq.task.max_retry": ctx.max_retry,
                },
            )
            # The handler runs with the span current and the producer's baggage.
            token = otel_context.attach(trace.set_span_in_context(span, parent))
            try:
                await next_handler(task)
            except BaseException as exc:
                result = outcome(exc, ctx.retry_count, ctx.max_retry)
                span.set_attribute("messaging.asynq.task.outcome", result)
                if result not in {"revoked", "snoozed"}:
                    span.record_exception(exc)
                    span.set_attribute("error.type", type(exc).__qualname__)
                    span.set_status(Status(StatusCode.ERROR, str(exc)))
                raise
            else:
                span.set_attribute("messaging.asynq.task.outcome", "succeeded")
            finally:
                otel_context.detach(token)
                span.end()

        return traced

    return wrap
