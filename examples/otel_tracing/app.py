"""Tracing a task from the enqueue to its last attempt (docs/integrations/opentelemetry.md).

``python -m examples.otel_tracing.app`` enqueues a report that fails once and then succeeds, runs a
worker until the queue is empty, and prints the spans: one trace, an ``enqueue default``
PRODUCER span and a ``process default`` CONSUMER span per attempt. A real service would
export to a collector (opentelemetry-exporter-otlp) instead of the console.
"""

from __future__ import annotations

import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import pyasynq
from pyasynq.integrations import otel
from pyasynq.testing import run_until_idle

mux = pyasynq.ServeMux()
mux.use(otel.middleware())


@mux.handler("report:build")
def build_report(task: pyasynq.Task) -> None:
    attempt = pyasynq.current_task().retry_count
    with trace.get_tracer(__name__).start_as_current_span("render"):
        if attempt == 0:
            raise RuntimeError("the database was busy; asynq retries the task")


def client(redis_url: str) -> pyasynq.Client:
    """A client whose enqueues start PRODUCER spans and carry the trace in the headers."""
    return pyasynq.Client(redis_url, enqueue_hooks=[otel.enqueue_hook()])


def main(redis_url: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    with client(redis_url) as c:
        c.enqueue(pyasynq.Task("report:build", b"2026-Q3"), max_retry=3)
    run_until_idle(redis_url, mux)  # a real deployment runs `pyasynq worker` instead


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0")
