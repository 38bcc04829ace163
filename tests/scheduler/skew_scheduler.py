"""A scheduler process for test_clock_skew.py, run under libfaketime: one entry that
fires at the start of every minute."""

from __future__ import annotations

import os

from pyasynq import Scheduler, Task

if __name__ == "__main__":
    s = Scheduler(os.environ["APP_REDIS_URL"], clock_sync_interval=1.0)
    s.register("* * * * *", Task("tick"))
    s.run()
