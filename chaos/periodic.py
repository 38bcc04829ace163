"""The periodic entry the scheduler-replica scenario runs (``pyasynq scheduler
chaos.periodic:configs``): one ``chaos:work`` task a second."""

from pyasynq import Task
from pyasynq.scheduler import PeriodicTaskConfig

CONFIG = PeriodicTaskConfig("@every 1s", Task("chaos:work", b""), {})
configs = [CONFIG]
