"""Prometheus metrics: asynq's queue collector (names of Go's x/metrics, values from the
Inspector at scrape time), the ``pyasynq metrics`` exporter, and a worker's processing
metrics fed through the task-done hook."""

from __future__ import annotations

import dataclasses
import logging
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rdb.helpers import (
    make_msg,
    seed_active,
    seed_aggregating,
    seed_archived,
    seed_completed,
    seed_pending,
    seed_retry,
    seed_scheduled,
)

from pyasynq import Client, FakeClock, Inspector, ServeMux, Server, ServerConfig, SkipRetry, Task
from pyasynq._rdb import keys
from pyasynq._rdb.codec import TaskMessage
from pyasynq._server import metrics_hook
from pyasynq.embedded import free_port
from pyasynq.errors import RevokeTask
from pyasynq.metrics import QueueMetricsCollector, WorkerMetrics

NOW = 1_700_000_000.0
ASYNQ_FAMILIES = [
    "asynq_tasks_enqueued_total",
    "asynq_queue_size",
    "asynq_queue_latency_seconds",
    "asynq_queue_memory_usage_approx_bytes",
    "asynq_tasks_processed",  # counters: the parser drops the _total of the family name
    "asynq_tasks_failed",
    "asynq_queue_paused_total",
]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition as {(name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return samples(generate_latest(registry).decode())


def q(queue: str, **labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"queue": queue, **labels}.items()))


# --------------------------------------------------------------------------- queue collector


@pytest.fixture
def registry_on(redis_url: str, r: redis.Redis) -> Iterator[Callable[..., CollectorRegistry]]:
    made: list[Inspector] = []

    def make(clock: FakeClock | None = None) -> CollectorRegistry:
        insp = Inspector(redis_url, clock=clock)
        made.append(insp)
        reg = CollectorRegistry()
        reg.register(QueueMetricsCollector(insp))
        return reg

    yield make
    for i in made:
        i.close()


def test_queue_metrics_have_asynq_names_and_values(
    r: redis.Redis, registry_on: Callable[..., CollectorRegistry]
) -> None:
    seed_pending(r, make_msg("p1"), pending_since_ns=int((NOW - 42) * 1e9))
    seed_pending(r, make_msg("p2"), pending_since_ns=int((NOW - 1) * 1e9))
    seed_active(r, make_msg("a1"), lease_expiry=NOW + 30)
    seed_scheduled(r, make_msg("s1"), process_at=NOW + 60)
    seed_retry(r, make_msg("r1"), retry_at=NOW + 60)
    seed_archived(r, make_msg("x1"), archived_at=NOW)
    seed_archived(r, make_msg("x2"), archived_at=NOW)
    seed_completed(r, make_msg("c1"), expires_at=NOW + 60)
    seed_aggregating(r, make_msg("g1"), group="grp", added_at=NOW)
    seed_pending(r, make_msg("o1", queue="other"))
    r.set(keys.processed_total_key("default"), 120)
    r.set(keys.failed_total_key("default"), 7)
    r.set(keys.paused_key("other"), int(NOW))

    reg = registry_on(FakeClock(NOW))
    text = generate_latest(reg).decode()
    families = [f.name for f in text_string_to_metric_families(text)]
    assert families == ASYNQ_FAMILIES
    got = samples(text)
    per_state = {"active": 1, "pending": 2, "scheduled": 1, "retry": 1, "archived": 2,
                 "completed": 1, "aggregating": 1}  # fmt: skip
    for st, n in per_state.items():
        assert got["asynq_tasks_enqueued_total", q("default", state=st)] == n, st
    assert got["asynq_queue_size", q("default")] == 9
    assert got["asynq_queue_latency_seconds", q("default")] == pytest.approx(42, abs=1e-3)
    assert got["asynq_queue_memory_usage_approx_bytes", q("default")] > 0
    assert got["asynq_tasks_processed_total", q("default")] == 120
    assert got["asynq_tasks_failed_total", q("default")] == 7
    assert got["asynq_queue_paused_total", q("default")] == 0
    assert got["asynq_queue_paused_total", q("other")] == 1
    assert got["asynq_queue_size", q("other")] == 1
    # The text format types them as Go's collector does.
    assert "# TYPE asynq_tasks_processed_total counter" in text
    assert "# TYPE asynq_queue_size gauge" in text


def test_values_follow_redis_at_each_scrape(
    r: redis.Redis, registry_on: Callable[..., CollectorRegistry]
) -> None:
    reg = registry_on()
    assert scrape(reg) == {}  # no queues, no samples
    seed_pending(r, make_msg("p1"))
    assert scrape(reg)["asynq_queue_size", q("default")] == 1
    seed_pending(r, make_msg("p2"))
    assert scrape(reg)["asynq_queue_size", q("default")] == 2


def test_registering_does_not_read_redis_and_a_failed_scrape_is_empty(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector = QueueMetricsCollector(f"redis://127.0.0.1:{free_port()}/0")
    try:
        reg = CollectorRegistry()
        reg.register(collector)  # describe() names the families without a Redis call
        with caplog.at_level(logging.ERROR, logger="pyasynq.metrics"):
            assert scrape(reg) == {}
        assert "failed to collect asynq queue metrics" in caplog.text
    finally:
        collector.close()


def exporter(redis_url: str, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pyasynq", "--redis-url", redis_url, "metrics", "--port",
         str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def get(url: str, timeout: float = 10.0) -> str:
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_metrics_command_serves_a_scrape(redis_url: str, r: redis.Redis, stop: int) -> None:
    for i in range(3):
        seed_pending(r, make_msg(f"p{i}"))
    port = free_port()
    proc = exporter(redis_url, port)
    try:
        got = samples(get(f"http://127.0.0.1:{port}/metrics"))
        assert got["asynq_queue_size", q("default")] == 3
        seed_pending(r, make_msg("p3"))
        got = samples(get(f"http://127.0.0.1:{port}/metrics"))
        assert got["asynq_tasks_enqueued_total", q("default", state="pending")] == 4
    finally:
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"serving queue metrics at http://127.0.0.1:{port}/metrics" in err


def test_metrics_command_port_in_use(redis_url: str, r: redis.Redis) -> None:
    port = free_port()
    first = exporter(redis_url, port)
    try:
        get(f"http://127.0.0.1:{port}/metrics")
        second = exporter(redis_url, port)
        _, err = second.communicate(timeout=20)
        assert second.returncode == 2
        assert err.startswith(f"pyasynq: cannot listen on 127.0.0.1:{port}:")
        assert "Traceback" not in err and err.count("\n") == 1
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=10)


# A running system: a real Server processes tasks while the collector is scraped.
FAST: dict[str, Any] = {
    "concurrency": 4,
    "heartbeat_interval": 0.2,
    "lease_duration": 1,
    "task_check_interval": 0.05,
    "delayed_task_check_interval": 0.1,
    "shutdown_timeout": 1,
}


def wait_for(pred: Callable[[], Any], timeout: float = 10.0) -> Any:
    end = time.monotonic() + timeout
    while not (value := pred()):
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)
    return value


def test_scrape_of_a_running_system(
    redis_url: str, r: redis.Redis, registry_on: Callable[..., CollectorRegistry]
) -> None:
    mux = ServeMux()

    @mux.handler("ok")
    async def ok(task: Task) -> None:
        return None

    @mux.handler("bad")
    async def bad(task: Task) -> None:
        raise SkipRetry("no")

    with Client(redis_url) as client:
        for _ in range(5):
            client.enqueue(Task("ok", b"1"))
        for _ in range(2):
            client.enqueue(Task("bad", b"2"))
        client.enqueue(Task("ok", b"later"), process_in=3600)
    reg = registry_on()
    server = Server(redis_url, **FAST)
    server.start(mux)
    try:
        wait_for(lambda: scrape(reg).get(("asynq_tasks_processed_total", q("default"))) == 7)
        got = scrape(reg)
    finally:
        server.shutdown()
    assert got["asynq_tasks_failed_total", q("default")] == 2
    assert got["asynq_tasks_enqueued_total", q("default", state="archived")] == 2
    assert got["asynq_tasks_enqueued_total", q("default", state="scheduled")] == 1
    assert got["asynq_tasks_enqueued_total", q("default", state="pending")] == 0
    assert got["asynq_queue_size", q("default")] == 3


# --------------------------------------------------------------------------- worker metrics


def msg(queue: str = "default", type_: str = "email:send") -> TaskMessage:
    return TaskMessage(type=type_, payload=b"", id="t1", queue=queue, retry=25)


def bucket(labels: tuple[tuple[str, str], ...], le: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((*labels, ("le", le))))


def test_worker_metrics_count_by_queue_and_type() -> None:
    m = WorkerMetrics()
    m(msg(), 0.02, None)
    m(msg(), 0.3, ValueError("boom"))
    m(msg(), 4.0, SkipRetry("give up"))
    m(msg("critical", "img:resize"), 0.001, None)
    m(msg(), 0.1, RevokeTask())  # processed, not failed, as in asynq
    try:
        raise ValueError("outer") from RevokeTask()
    except ValueError as exc:
        m(msg(), 0.1, exc)  # wraps RevokeTask: not failed either
    m(msg(), -1.0, None)  # a clock step backwards is not a negative duration
    got = scrape(m.registry)
    email = q("default", type="email:send")
    img = q("critical", type="img:resize")
    assert got["pyasynq_tasks_processed_total", email] == 6
    assert got["pyasynq_tasks_failed_total", email] == 2
    assert got["pyasynq_tasks_processed_total", img] == 1
    assert ("pyasynq_tasks_failed_total", img) not in got
    assert got["pyasynq_task_duration_seconds_count", email] == 6
    assert got["pyasynq_task_duration_seconds_sum", email] == pytest.approx(4.52)
    assert got["pyasynq_task_duration_seconds_bucket", bucket(email, "0.025")] == 2
    assert got["pyasynq_task_duration_seconds_bucket", bucket(email, "5.0")] == 6
    assert got["pyasynq_task_duration_seconds_bucket", bucket(img, "0.005")] == 1


def test_two_worker_metrics_do_not_clash() -> None:
    a, b = WorkerMetrics(), WorkerMetrics()
    a(msg(), 0.1, None)
    assert ("pyasynq_tasks_processed_total", q("default", type="email:send")) not in scrape(
        b.registry
    )


def test_worker_metrics_endpoint() -> None:
    m = WorkerMetrics()
    port = m.serve(0)
    try:
        m(msg(), 0.5, None)
        got = samples(get(f"http://127.0.0.1:{port}/metrics"))
        assert got["pyasynq_tasks_processed_total", q("default", type="email:send")] == 1
        with pytest.raises(RuntimeError):
            m.serve(0)
    finally:
        m.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1)
    m.close()  # twice is fine


class Log:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, fmt: str, *args: Any) -> None:
        self.errors.append(fmt % args)


@dataclasses.dataclass(frozen=True, kw_only=True)
class HookConfig:
    """The two ServerConfig fields the hook reads (proposed for ServerConfig)."""

    on_task_done: metrics_hook.TaskDoneHook | None = None
    on_task_start: metrics_hook.TaskStartHook | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"


class Rt:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.log = Log()


def test_report_task_done_calls_the_hook_and_never_raises() -> None:
    seen: list[tuple[str, float, BaseException | None]] = []
    err = ValueError("x")
    rt = Rt(HookConfig(on_task_done=lambda m, d, e: seen.append((m.id, d, e))))
    metrics_hook.report_task_done(rt, msg(), 0.25, err)  # type: ignore[arg-type]
    assert seen == [("t1", 0.25, err)]

    def broken(m: TaskMessage, d: float, e: BaseException | None) -> None:
        raise RuntimeError("metrics down")

    rt = Rt(HookConfig(on_task_done=broken))
    metrics_hook.report_task_done(rt, msg(), 0.1, None)  # type: ignore[arg-type]
    assert rt.log.errors == ["on_task_done hook failed for task t1: RuntimeError('metrics down')"]
    metrics_hook.report_task_done(Rt(HookConfig()), msg(), 0.1, None)  # type: ignore[arg-type]
    metrics_hook.report_task_done(Rt(object()), msg(), 0.1, None)  # type: ignore[arg-type]


def test_chain_runs_every_hook_then_raises_the_first_failure() -> None:
    calls: list[str] = []

    def a(m: TaskMessage, d: float, e: BaseException | None) -> None:
        calls.append("a")
        raise RuntimeError("a failed")

    def b(m: TaskMessage, d: float, e: BaseException | None) -> None:
        calls.append("b")

    assert metrics_hook.chain(None, None) is None
    assert metrics_hook.chain(None, b) is b
    both = metrics_hook.chain(a, None, b)
    assert both is not None
    with pytest.raises(RuntimeError, match="a failed"):
        both(msg(), 0.0, None)
    assert calls == ["a", "b"]


def test_attach_adds_worker_metrics_after_the_users_hook() -> None:
    plain = HookConfig()
    assert metrics_hook.attach(plain) == (plain, None)  # type: ignore[arg-type]

    calls: list[str] = []
    cfg = HookConfig(on_task_done=lambda m, d, e: calls.append(m.type), metrics_port=0)
    new, metrics = metrics_hook.attach(cfg)  # type: ignore[arg-type]
    assert isinstance(metrics, WorkerMetrics)
    assert new.on_task_done is not None and new.metrics_port == 0
    new.on_task_done(msg(), 0.2, None)
    assert calls == ["email:send"]
    assert (
        scrape(metrics.registry)["pyasynq_tasks_processed_total", q("default", type="email:send")]
        == 1
    )
    port = metrics_hook.serve(metrics, new)  # type: ignore[arg-type]
    try:
        assert port > 0
        assert "pyasynq_tasks_processed_total" in get(f"http://127.0.0.1:{port}/metrics")
    finally:
        metrics.close()


HOOK_WIRED = "on_task_done" in {f.name for f in dataclasses.fields(ServerConfig)}


@pytest.mark.skipif(not HOOK_WIRED, reason="ServerConfig.on_task_done is not wired in yet")
def test_a_server_reports_each_task_to_on_task_done(redis_url: str, r: redis.Redis) -> None:
    mux = ServeMux()

    @mux.handler("ok")
    async def ok(task: Task) -> None:
        return None

    @mux.handler("bad")
    def bad(task: Task) -> None:
        raise SkipRetry("no")

    metrics = WorkerMetrics()
    with Client(redis_url) as client:
        for _ in range(3):
            client.enqueue(Task("ok", b"1"))
        client.enqueue(Task("bad", b"2"), queue="low")
    server = Server(redis_url, **FAST, queues={"default": 1, "low": 1},
                    on_task_done=metrics)  # fmt: skip
    server.start(mux)
    try:
        wait_for(lambda: scrape(metrics.registry).get(
            ("pyasynq_tasks_processed_total", q("low", type="bad"))))  # fmt: skip
        wait_for(lambda: scrape(metrics.registry).get(
            ("pyasynq_tasks_processed_total", q("default", type="ok"))) == 3)  # fmt: skip
    finally:
        server.shutdown()
    got = scrape(metrics.registry)
    assert got["pyasynq_tasks_failed_total", q("low", type="bad")] == 1
    assert ("pyasynq_tasks_failed_total", q("default", type="ok")) not in got
    assert got["pyasynq_task_duration_seconds_count", q("default", type="ok")] == 3


@pytest.mark.skipif(
    "metrics_port" not in {f.name for f in dataclasses.fields(ServerConfig)},
    reason="ServerConfig.metrics_port is not wired in yet",
)
def test_a_server_serves_its_metrics_endpoint(redis_url: str, r: redis.Redis) -> None:
    mux = ServeMux()

    @mux.handler("ok")
    async def ok(task: Task) -> None:
        return None

    port = free_port()
    with Client(redis_url) as client:
        client.enqueue(Task("ok", b"1"))
    server = Server(redis_url, **FAST, metrics_port=port)
    server.start(mux)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: samples(get(url)).get(
            ("pyasynq_tasks_processed_total", q("default", type="ok"))) == 1)  # fmt: skip
    finally:
        server.shutdown()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1)
