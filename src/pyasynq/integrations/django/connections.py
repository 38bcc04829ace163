"""Database connections in task handlers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from django.db import close_old_connections

from pyasynq import Task

R = TypeVar("R")


def db_connections(handler: Callable[[Task], R]) -> Callable[[Task], R]:
    """Wrap a plain ``def`` handler so that it starts and ends like a Django request:
    connections past ``CONN_MAX_AGE`` or broken are closed before and after it
    (``close_old_connections``). The worker's threads live long; without this a
    connection the database dropped stays broken in its thread."""

    @functools.wraps(handler)
    def run(task: Task) -> R:
        close_old_connections()
        try:
            return handler(task)
        finally:
            close_old_connections()

    return run
