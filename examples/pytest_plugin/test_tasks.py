"""A user's test with the pyasynq pytest plugin: no conftest, a real Redis, a real worker.

Run it from this folder: ``pytest test_tasks.py`` (pyasynq installed, redis-server on PATH
or ``pip install 'pyasynq[embedded]'``)."""

from __future__ import annotations

from tasks import mux, outbox, sign_up

import pyasynq
from pyasynq.testing import Worker


def test_sign_up_sends_the_welcome_email(
    pyasynq_client: pyasynq.Client, pyasynq_worker: Worker
) -> None:
    info = sign_up(pyasynq_client, "ada@example.com")
    report = pyasynq_worker.run_until_idle(mux)  # retries run at once in tests
    assert outbox == ["ada@example.com"]
    assert report.processed == 2  # the failed attempt and its retry
    assert isinstance(report.errors[info.id], ConnectionError)
