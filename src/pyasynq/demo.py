"""The README's main job: enqueue the seed's verification-email tasks and show them.

Run with ``make demo`` (or ``python -m pyasynq.demo``). Uses ``PYASYNQ_REDIS_URL`` or
``REDIS_URL`` when set; otherwise starts an embedded Redis under ``.pyasynq/redis`` and
says so.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from . import Client, Task
from .embedded import EmbeddedRedis

TASK_SEND_VERIFY_EMAIL = "task:send_verify_email"


def _redis_url() -> tuple[str, EmbeddedRedis | None]:
    url = os.environ.get("PYASYNQ_REDIS_URL") or os.environ.get("REDIS_URL")
    if url:
        return url, None
    server = EmbeddedRedis(Path(".pyasynq") / "redis").start()
    print(
        f"No Redis configured: started an embedded server ({server.binary}) at {server.url}\n"
        f"  data and append-only file in {server.data_dir}/\n"
        "  use a real Redis with PYASYNQ_REDIS_URL=redis://host:6379/0\n"
    )
    return server.url, server


def main() -> int:
    url, server = _redis_url()
    try:
        with Client(url) as client:
            client.ping()
            for username in ("alice", "bob", "carol"):
                task = Task.from_json(TASK_SEND_VERIFY_EMAIL, {"username": username})
                # The seed's options: up to 10 retries, 10 s delay, the critical queue.
                info = client.enqueue(task, max_retry=10, process_in=10, queue="critical")
                print(
                    f"enqueued {info.type} id={info.id} queue={info.queue} state={info.state} "
                    f"max_retry={info.max_retry} next_process_at={info.next_process_at:%H:%M:%S} "
                    f"payload={json.loads(info.payload)}"
                )
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
