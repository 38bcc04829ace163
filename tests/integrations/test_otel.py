"""OpenTelemetry tracing over a real Redis and a real worker: one trace from the enqueue
through every attempt, with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the integrations-test group")

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

import pyasynq
from pyasynq.integrations import otel
from pyasynq.testing import Worker


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    p = TracerProvider()
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p


def _by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.kind == kind]


async def test_one_trace_from_enqueue_through_retries_to_completion(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    pyasynq_redis_url: str,
    pyasynq_worker: Worker,
) -> None:
    mux = pyasynq.ServeMux()
    mux.use(otel.middleware(provider))
    inner_parents: list[int] = []

    @mux.handler("report:build")
    def build(task: pyasynq.Task) -> None:  # a sync handler: runs on a worker thread
        with trace.get_tracer("app", tracer_provider=provider).start_as_current_span("work"):
            inner_parents.append(trace.get_current_span().get_span_context().span_id)
        if pyasynq.current_task().retry_count < 2:
            raise RuntimeError(f"attempt {pyasynq.current_task().retry_count} failed")

    async with pyasynq.AsyncClient(
        pyasynq_redis_url, enqueue_hooks=[otel.enqueue_hook(provider)]
    ) as client:
        info = await client.enqueue(pyasynq.Task("report:build", b"q3"), max_retry=5)
    async with pyasynq.AsyncInspector(pyasynq_redis_url) as inspector:
        stored = await inspector.get_task_info("default", info.id)
    assert stored.headers["traceparent"].startswith("00-")

    report = await asyncio.to_thread(pyasynq_worker.run_until_idle, mux)
    assert report.processed == 3

    spans = exporter.get_finished_spans()
    (producer,) = _by_kind(spans, SpanKind.PRODUCER)
    consumers = sorted(
        _by_kind(spans, SpanKind.CONSUMER),
        key=lambda s: s.attributes["messaging.asynq.task.retry_count"],  # type: ignore[index]
    )
    assert len(consumers) == 3
    assert {s.context.trace_id for s in spans} == {producer.context.trace_id}  # one trace

    assert producer.name == "enqueue default"
    assert producer.attributes == {
        "messaging.system": "asynq",
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": "default",
        "messaging.asynq.task.type": "report:build",
        "messaging.message.body.size": 2,
        "messaging.message.id": info.id,
        "messaging.asynq.task.max_retry": 5,
    }
    outcomes = []
    for attempt, span in enumerate(consumers):
        assert span.name == "process default"
        assert span.parent is not None and span.parent.span_id == producer.context.span_id
        attrs = span.attributes or {}
        assert attrs["messaging.system"] == "asynq"
        assert attrs["messaging.operation.type"] == "process"
        assert attrs["messaging.destination.name"] == "default"
        assert attrs["messaging.message.id"] == info.id
        assert attrs["messaging.asynq.task.type"] == "report:build"
        assert attrs["messaging.asynq.task.retry_count"] == attempt
        outcomes.append(attrs["messaging.asynq.task.outcome"])
    assert outcomes == ["retried", "retried", "succeeded"]
    for failed in consumers[:2]:
        assert failed.status.status_code == StatusCode.ERROR
        assert failed.attributes["error.type"] == "RuntimeError"  # type: ignore[index]
        assert [e.name for e in failed.events] == ["exception"]
    assert consumers[2].status.status_code == StatusCode.UNSET

    # Spans the handler opens are children of its attempt's span.
    work = [s for s in spans if s.name == "work"]
    assert [s.parent.span_id for s in work if s.parent] == [c.context.span_id for c in consumers]
    assert len(inner_parents) == 3


def test_the_producer_joins_the_callers_trace_and_carries_baggage(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    pyasynq_client: pyasynq.Client,
    pyasynq_redis_url: str,
    pyasynq_worker: Worker,
) -> None:
    tracer = provider.get_tracer("app")
    seen_baggage: list[object] = []
    mux = pyasynq.ServeMux()
    mux.use(otel.middleware(provider))

    @mux.handler("t")
    async def handler(task: pyasynq.Task) -> None:
        seen_baggage.append(baggage.get_baggage("tenant"))

    with (
        pyasynq.Client(pyasynq_redis_url, enqueue_hooks=[otel.enqueue_hook(provider)]) as client,
        tracer.start_as_current_span("http request") as request,
    ):
        token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
        try:
            client.enqueue(pyasynq.Task("t"), queue="critical")
        finally:
            otel_context.detach(token)
    pyasynq_worker.run_until_idle(mux, queues={"critical": 1})

    spans = exporter.get_finished_spans()
    (producer,) = _by_kind(spans, SpanKind.PRODUCER)
    (consumer,) = _by_kind(spans, SpanKind.CONSUMER)
    assert producer.parent is not None
    assert producer.parent.span_id == request.get_span_context().span_id
    assert consumer.context.trace_id == request.get_span_context().trace_id
    assert consumer.name == "process critical"
    assert seen_baggage == ["acme"]


def test_outcomes_archived_revoked_and_snoozed(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    pyasynq_client: pyasynq.Client,
    pyasynq_worker: Worker,
) -> None:
    mux = pyasynq.ServeMux()
    mux.use(otel.middleware(provider))

    @mux.handler("fail")
    def fail(task: pyasynq.Task) -> None:
        raise RuntimeError("boom")

    @mux.handler("skip")
    def skip(task: pyasynq.Task) -> None:
        raise pyasynq.SkipRetry("bad input")

    @mux.handler("revoke")
    def revoke(task: pyasynq.Task) -> None:
        raise pyasynq.RevokeTask()

    @mux.handler("snooze")
    def snooze(task: pyasynq.Task) -> None:
        raise pyasynq.Snooze(60)

    pyasynq_client.enqueue(pyasynq.Task("fail"), max_retry=0)
    pyasynq_client.enqueue(pyasynq.Task("skip"), max_retry=3)
    pyasynq_client.enqueue(pyasynq.Task("revoke"), max_retry=3)
    pyasynq_client.enqueue(pyasynq.Task("snooze"), max_retry=0)
    pyasynq_worker.run_until_idle(mux)

    got = {
        s.attributes["messaging.asynq.task.type"]: (  # type: ignore[index]
            s.attributes["messaging.asynq.task.outcome"],  # type: ignore[index]
            s.status.status_code,
        )
        for s in exporter.get_finished_spans()
    }
    assert got == {
        "fail": ("archived", StatusCode.ERROR),
        "skip": ("archived", StatusCode.ERROR),
        "revoke": ("revoked", StatusCode.UNSET),
        "snooze": ("snoozed", StatusCode.UNSET),
    }
    # A task enqueued without the hook starts a trace of its own at the worker.
    assert all(s.parent is None for s in exporter.get_finished_spans())
