"""pyasynq: a Redis-backed distributed task queue, wire-compatible with Go asynq v0.26."""

from ._async.client import AsyncClient
from ._sync.client import Client
from .clock import Clock, FakeClock, RealClock
from .errors import (
    BrokerError,
    DuplicateTaskError,
    LeaseExpiredError,
    PyAsynqError,
    QueueNotEmptyError,
    QueueNotFoundError,
    QueueStateError,
    RevokeTask,
    ServerClosedError,
    SkipRetry,
    TaskIDConflictError,
    TaskNotFoundError,
    TaskStateError,
)
from .options import Options
from .task import EnqueueResult, Task, TaskInfo, TaskState

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "BrokerError",
    "Client",
    "Clock",
    "DuplicateTaskError",
    "EnqueueResult",
    "FakeClock",
    "LeaseExpiredError",
    "Options",
    "PyAsynqError",
    "QueueNotEmptyError",
    "QueueNotFoundError",
    "QueueStateError",
    "RealClock",
    "RevokeTask",
    "ServerClosedError",
    "SkipRetry",
    "Task",
    "TaskIDConflictError",
    "TaskInfo",
    "TaskNotFoundError",
    "TaskState",
    "TaskStateError",
    "__version__",
]
