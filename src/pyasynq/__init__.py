"""pyasynq: a Redis-backed distributed task queue, wire-compatible with Go asynq v0.26."""

from ._async.client import AsyncClient
from ._async.inspector import AsyncInspector
from ._sync.client import Client
from ._sync.inspector import Inspector
from .clock import Clock, FakeClock, RealClock, RedisClock
from .config import ServerConfig, default_retry_delay
from .connection import ClusterOptions, SentinelOptions
from .context import ResultWriter, TaskContext, current_task
from .errors import (
    BrokerError,
    DuplicateTaskError,
    LeaseExpiredError,
    PyAsynqError,
    QueueNotEmptyError,
    QueueNotFoundError,
    QueueStateError,
    RedisOutOfMemoryError,
    ReplicationError,
    ResultTimeoutError,
    RevokeTask,
    ServerClosedError,
    SkipRetry,
    Snooze,
    TaskFailedError,
    TaskIDConflictError,
    TaskNotFoundError,
    TaskStateError,
)
from .hooks import Enqueueing
from .inspection import (
    ClusterNode,
    DailyStats,
    GroupInfo,
    LimitInfo,
    QueueInfo,
    SchedulerEnqueueEvent,
    SchedulerEntry,
    ServerInfo,
    WorkerInfo,
)
from .limits import Limit
from .log import LogLevel
from .mux import ServeMux
from .options import Options
from .scheduler import (
    CronSpecError,
    PeriodicTaskConfig,
    PeriodicTaskManager,
    Scheduler,
    SchedulerConfig,
)
from .server import Server
from .task import EnqueueResult, Task, TaskInfo, TaskProgress, TaskState
from .typed import TypedTask, typed_task

__version__ = "0.1.0"

__all__ = [
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
