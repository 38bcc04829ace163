"""The code under test: a handler that sends a welcome email, failing once (a flaky SMTP
server) before it succeeds. See test_tasks.py beside it and docs/integrations/pytest.md."""

from __future__ import annotations

import pyasynq

mux = pyasynq.ServeMux()
outbox: list[str] = []
_failures = {"left": 1}


@mux.handler("email:welcome")
def send_welcome(task: pyasynq.Task) -> None:
    if _failures["left"]:
        _failures["left"] -= 1
        raise ConnectionError("SMTP server busy")
    outbox.append(task.json()["to"])


def sign_up(client: pyasynq.Client, email: str) -> pyasynq.TaskInfo:
    return client.enqueue(pyasynq.Task.from_json("email:welcome", {"to": email}), max_retry=3)
