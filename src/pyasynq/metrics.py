"""Prometheus metrics (``pip install 'pyasynq[prometheus]'``).

:class:`QueueMetricsCollector` exports what Go asynq's ``x/metrics`` exports, under the
same names (namespace ``asynq``), computed from the Inspector at scrape time, so existing
asynq dashboards and alerts work unchanged::

    asynq_tasks_enqueued_total{queue,state}   gauge: tasks per state (pyasynq adds
                                              state="aggregating" to Go's six)
    asynq_queue_size{queue}                   gauge: tasks in all states
    asynq_queue_latency_seconds{queue}        gauge: age of the oldest pending task
    asynq_queue_memory_usage_approx_bytes{queue}  gauge: sampled estimate
    asynq_tasks_processed_total{queue}        counter: successes and failures, all time
    asynq_tasks_failed_total{queue}           counter: failures, all time
    asynq_queue_paused_total{queue}           gauge: 1 when paused, else 0

    registry.register(QueueMetricsCollector(pyasynq.Inspector(url)))

:class:`WorkerMetrics` counts what one worker process did, fed by
``ServerConfig.on_task_done`` and ``on_task_start`` (or ``metrics_port``, which serves it)::

    pyasynq_tasks_processed_total{queue,type}  counter: handler runs with an outcome
                                              (snoozed runs excluded, as in Redis)
    pyasynq_tasks_failed_total{queue,type}     counter: runs that raised (RevokeTask and
                                              Snooze excluded)
    pyasynq_task_outcomes_total{queue,type,outcome}  counter: what became of each run:
                                              succeeded, retried, archived, revoked or
                                              snoozed
    pyasynq_task_duration_seconds{queue,type}  histogram: handler wall time
    pyasynq_task_queue_wait_seconds{queue,type}  histogram: time from becoming pending
                                              (enqueued, or forwarded when its process-at
                                              or retry time came) to the handler's start

Each task's run is counted once: a run that fails and is retried counts as ``retried``
(and failed); the retry that succeeds later counts again, as ``succeeded``.
contrib/grafana/pyasynq.json is a dashboard over these and asynq's queue metrics.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "pyasynq.metrics needs prometheus-client: pip install 'pyasynq[prometheus]'"
    ) from exc

from ._rdb.codec import TaskMessage
from ._sync.inspector import Inspector
from .errors import PyAsynqError, QueueNotFoundError, RevokeTask, SkipRetry, Snooze
from .inspection import QueueInfo

__all__ = ["DURATION_BUCKETS", "OUTCOMES", "QueueMetricsCollector", "WorkerMetrics"]

log = logging.getLogger(__name__)

NAMESPACE = "asynq"
# Go's six states first, in Go's order; aggregating is pyasynq's addition.
STATES = ("active", "pending", "scheduled", "retry", "archived", "completed", "aggregating")
# Handlers run from milliseconds to asynq's 30-minute default timeout.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    1800.0, float("inf"),
)  # fmt: skip
# What the worker does after a handler run (asynq's rules, as the processor applies them).
OUTCOMES = ("succeeded", "retried", "archived", "revoked", "snoozed")


class QueueMetricsCollector(Collector):
    """asynq's queue metrics, read from Redis on every scrape (one GetQueueInfo per
    queue, as Go's collector does). ``inspector`` is a sync Inspector or a Redis URL
    (then the collector owns its Inspector: :meth:`close` it). When Redis cannot be read
    the scrape logs the error and reports nothing, as Go's collector does."""

    def __init__(self, inspector: Inspector | str) -> None:
        self._owned = isinstance(inspector, str)
        self.inspector = Inspector(inspector) if isinstance(inspector, str) else inspector

    def close(self) -> None:
        """Close the Inspector if the collector made it (from a URL)."""
        if self._owned:
            self.inspector.close()

    def describe(self) -> Iterable[Metric]:
        """The metric families, without reading Redis (prometheus_client's hook)."""
        # Named here so that registering does not scrape Redis.
        return list(self._families([]))

    def collect(self) -> Iterable[Metric]:
        """The metrics of every queue, read from Redis now (called on each scrape)."""
        try:
            infos = self._queue_infos()
        except PyAsynqError as exc:
            log.error("failed to collect asynq queue metrics: %s", exc)
            infos = []
        return list(self._families(infos))

    def _queue_infos(self) -> list[QueueInfo]:
        infos = []
        for q in self.inspector.queues():
            try:
                infos.append(self.inspector.get_queue_info(q))
            except QueueNotFoundError:
                continue  # deleted between the two reads
        return infos

    @staticmethod
    def _families(infos: Sequence[QueueInfo]) -> Iterator[Metric]:
        def gauge(name: str, doc: str, labels: Sequence[str] = ("queue",)) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{NAMESPACE}_{name}", doc, labels=labels)

        enqueued = gauge(
            "tasks_enqueued_total",
            "Number of tasks enqueued; broken down by queue and state.",
            ("queue", "state"),
        )
        size = gauge("queue_size", "Number of tasks in a queue")
        latency = gauge(
            "queue_latency_seconds",
            "Number of seconds the oldest pending task is waiting in pending state to be "
            "processed.",
        )
        memory = gauge(
            "queue_memory_usage_approx_bytes",
            "Number of memory used by a given queue (approximated number by sampling).",
        )
        processed = CounterMetricFamily(
            f"{NAMESPACE}_tasks_processed_total",
            "Number of tasks processed (both succeeded and failed); broken down by queue",
            labels=("queue",),
        )
        failed = CounterMetricFamily(
            f"{NAMESPACE}_tasks_failed_total",
            "Number of tasks failed; broken down by queue",
            labels=("queue",),
        )
        paused = gauge("queue_paused_total", "Number of queues paused")
        for i in infos:
            for st in STATES:
                enqueued.add_metric([i.queue, st], getattr(i, st))
            size.add_metric([i.queue], i.size)
            latency.add_metric([i.queue], i.latency.total_seconds())
            memory.add_metric([i.queue], i.memory_usage)
            processed.add_metric([i.queue], i.processed_total)
            failed.add_metric([i.queue], i.failed_total)
            paused.add_metric([i.queue], 1 if i.paused else 0)
        yield from (enqueued, size, latency, memory, processed, failed, paused)


def _wraps(exc: BaseException, kind: type[BaseException]) -> bool:
    """``exc`` is ``kind`` or has it in its cause/context chain."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kind):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def outcome(msg: TaskMessage, error: BaseException | None) -> str:
    """What the worker does after a run that ended with ``error`` (one of OUTCOMES):
    RevokeTask revokes; Snooze snoozes; retries exhausted or SkipRetry archive; other
    errors retry."""
    if error is None:
        return "succeeded"
    if _wraps(error, RevokeTask):
        return "revoked"
    if _wraps(error, Snooze):
        return "snoozed"
    if msg.retried >= msg.retry or _wraps(error, SkipRetry):
        return "archived"
    return "retried"


class WorkerMetrics:
    """Processing metrics of one worker process, by queue and task type.

    Call it as ``ServerConfig.on_task_done`` and give :meth:`task_started` as
    ``on_task_start`` (``metrics_port`` does both). A task counts as failed when its handler
    raised anything but RevokeTask or Snooze (a revoked task counts as processed, as in
    asynq; a snoozed run is neither processed nor failed, only an outcome); the server's
    ``is_failure`` is not consulted. ``registry`` defaults to a registry of its own, so two
    servers in one process do not clash; pass ``prometheus_client.REGISTRY`` to publish
    through an endpoint you already serve.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        namespace: str = "pyasynq",
        buckets: Sequence[float] = DURATION_BUCKETS,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        labels = ("queue", "type")
        self.processed = Counter(
            "tasks_processed", "Tasks this worker processed (succeeded and failed)",
            labels, namespace=namespace, registry=self.registry,
        )  # fmt: skip
        self.failed = Counter(
            "tasks_failed", "Tasks whose handler failed on this worker",
            labels, namespace=namespace, registry=self.registry,
        )  # fmt: skip
        self.outcomes = Counter(
            "task_outcomes", "Handler runs by what became of the task: " + ", ".join(OUTCOMES),
            (*labels, "outcome"), namespace=namespace, registry=self.registry,
        )  # fmt: skip
        self.duration = Histogram(
            "task_duration_seconds", "Handler run time in seconds",
            labels, namespace=namespace, registry=self.registry, buckets=buckets,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "task_queue_wait_seconds",
            "Seconds from becoming pending (enqueued, or due and forwarded) to the start",
            labels, namespace=namespace, registry=self.registry, buckets=buckets,
        )  # fmt: skip
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def __call__(self, msg: TaskMessage, duration: float, error: BaseException | None) -> None:
        labels = (msg.queue, msg.type)
        result = outcome(msg, error)
        if result != "snoozed":  # a snooze is neither processed nor failed (Redis agrees)
            self.processed.labels(*labels).inc()
        if error is not None and result not in {"revoked", "snoozed"}:
            self.failed.labels(*labels).inc()
        self.outcomes.labels(*labels, result).inc()
        self.duration.labels(*labels).observe(max(0.0, duration))

    def task_started(self, msg: TaskMessage, wait: float) -> None:
        """``ServerConfig.on_task_start``: record the task's queue wait."""
        self.queue_wait.labels(msg.queue, msg.type).observe(max(0.0, wait))

    def serve(self, port: int = 0, host: str = "127.0.0.1") -> int:
        """Serve the metrics at ``http://host:port/metrics`` from a daemon thread;
        returns the port (a free one when ``port`` is 0)."""
        if self._server is not None:
            raise RuntimeError("the metrics endpoint is already being served")
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._server, self._thread = server, thread
        return int(server.server_port)

    def close(self) -> None:
        """Stop the endpoint, if served."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
