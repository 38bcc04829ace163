"""Django integration (``pip install 'pyasynq[django]'``): add
``"pyasynq.integrations.django"`` to ``INSTALLED_APPS`` and configure::

    PYASYNQ = {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "WORKER": {"queues": {"critical": 6, "default": 3}, "concurrency": 10},
        "SCHEDULER": {"location": "Europe/Paris"},
        "SCHEDULE": [("*/5 * * * *", "report:refresh", {"queue": "low"})],
    }

Then ``enqueue_on_commit(task, **options)`` enqueues once the surrounding
``transaction.atomic()`` block commits (never when it rolls back), ``get_client()`` gives
the process's :class:`pyasynq.Client`, and ``python manage.py pyasynq_worker app.tasks:mux``
and ``python manage.py pyasynq_scheduler`` run the worker and the scheduler with Django
set up. See docs/integrations/django.md.
"""

from __future__ import annotations

from .connections import db_connections
from .on_commit import PendingEnqueue, enqueue_on_commit
from .settings import get_client, pyasynq_settings

__all__ = [
    "PendingEnqueue",
    "db_connections",
    "enqueue_on_commit",
    "get_client",
    "pyasynq_settings",
]
