"""The worker's handlers: ``python manage.py pyasynq_worker shop.tasks:mux``."""

from __future__ import annotations

import pyasynq
from pyasynq.integrations.django import db_connections

from .models import Order

mux = pyasynq.ServeMux()


@mux.handler("orders:confirm")
@db_connections
def confirm(task: pyasynq.Task) -> None:
    # A plain def: Django's ORM is synchronous, and the worker runs it on a thread.
    updated = Order.objects.filter(pk=task.json()["order"]).update(confirmed=True)
    if not updated:
        raise pyasynq.SkipRetry(f"no order {task.json()['order']}")


@mux.handler("orders:sweep")
def sweep(task: pyasynq.Task) -> None:
    """The periodic task of PYASYNQ["SCHEDULE"]."""
