"""The pyasynq worker of tests/interop/test_fencing_go.py, run as a real process
(``python -m pyasynq worker fencing_app:mux --config fencing_app:config``).

Its handler creates ``$FENCE_DIR/py-started`` (content: the task id) and returns once
``$FENCE_DIR/py-release`` exists. Leases are short so the test stays short.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyasynq
from pyasynq.config import ServerConfig
from pyasynq.context import current_task

QUEUE = "fencing"
TASK_TYPE = "fence:work"

mux = pyasynq.ServeMux()


@mux.handler(TASK_TYPE)
def work(task: pyasynq.Task) -> None:
    folder = Path(os.environ["FENCE_DIR"])
    (folder / "py-started").write_text(current_task().id)
    while not (folder / "py-release").exists():
        time.sleep(0.02)


config = ServerConfig(
    concurrency=1,
    queues={QUEUE: 1},
    heartbeat_interval=0.5,
    lease_duration=4.0,
    task_check_interval=0.1,
    shutdown_timeout=1.0,
)
