"""The public surface is deliberate: a name added to or dropped from ``pyasynq`` must be
added to or dropped from this list too."""

from __future__ import annotations

import inspect

import pyasynq

PUBLIC = [
    "AsyncClient",
    "AsyncInspector",
    "BrokerError",
    "Client",
    "Clock",
    "ClusterNode",
    "ClusterOptions",
    "CronSpecError",
    "DailyStats",
    "DuplicateTaskError",
    "EnqueueResult",
    "Enqueueing",
    "FakeClock",
    "GroupInfo",
    "Inspector",
    "LeaseExpiredError",
    "Limit",
    "LimitInfo",
    "LogLevel",
    "Options",
    "PeriodicTaskConfig",
    "PeriodicTaskManager",
    "PyAsynqError",
    "QueueInfo",
    "QueueNotEmptyError",
    "QueueNotFoundError",
    "QueueStateError",
    "RealClock",
    "RedisClock",
    "RedisOutOfMemoryError",
    "ReplicationError",
    "ResultTimeoutError",
    "ResultWriter",
    "RevokeTask",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerEnqueueEvent",
    "SchedulerEntry",
    "SentinelOptions",
    "ServeMux",
    "Server",
    "ServerClosedError",
    "ServerConfig",
    "ServerInfo",
    "SkipRetry",
    "Snooze",
    "Task",
    "TaskContext",
    "TaskFailedError",
    "TaskIDConflictError",
    "TaskInfo",
    "TaskNotFoundError",
    "TaskProgress",
    "TaskState",
    "TaskStateError",
    "TypedTask",
    "WorkerInfo",
    "__version__",
    "current_task",
    "default_retry_delay",
    "typed_task",
]


def test_all_is_pinned() -> None:
    assert sorted(PUBLIC) == PUBLIC
    assert sorted(pyasynq.__all__) == PUBLIC
    assert len(set(pyasynq.__all__)) == len(pyasynq.__all__)


def test_every_public_name_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec(f"from pyasynq import {', '.join(PUBLIC)}", namespace)
    for name in PUBLIC:
        assert namespace[name] is getattr(pyasynq, name)
        assert namespace[name] is not None


def test_public_classes_say_they_come_from_pyasynq() -> None:
    for name in PUBLIC:
        obj = getattr(pyasynq, name)
        if inspect.isclass(obj):
            assert obj.__module__.startswith("pyasynq"), name


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        ("close" if name == "aclose" else name): inspect.signature(member)
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_")
    }


def test_sync_and_async_clients_have_the_same_methods() -> None:
    sync, asyn = _public_methods(pyasynq.Client), _public_methods(pyasynq.AsyncClient)
    assert sync.keys() == asyn.keys()
    assert {"close", "enqueue", "enqueue_many", "ping"} <= sync.keys()
    for name in sync:
        assert list(sync[name].parameters) == list(asyn[name].parameters), name
        async_name = "aclose" if name == "close" else name
        assert inspect.iscoroutinefunction(getattr(pyasynq.AsyncClient, async_name)), name
        assert not inspect.iscoroutinefunction(getattr(pyasynq.Client, name)), name


def test_clients_are_context_managers() -> None:
    assert hasattr(pyasynq.Client, "__enter__") and hasattr(pyasynq.Client, "__exit__")
    assert hasattr(pyasynq.AsyncClient, "__aenter__") and hasattr(pyasynq.AsyncClient, "__aexit__")
