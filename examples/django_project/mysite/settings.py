"""Settings of the Django example (docs/integrations/django.md).

The environment picks the services, so the tests can point it at theirs:
``PYASYNQ_REDIS_URL`` (default redis://127.0.0.1:6379/0) and ``EXAMPLE_DATABASE_URL``
(default SQLite in this folder; a ``postgresql://user@host:port/name`` URL for
PostgreSQL, whose test database is ``EXAMPLE_TEST_DATABASE`` or ``test_<name>``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "example-only"  # an example, never deployed
DEBUG = True
USE_TZ = True
ROOT_URLCONF = "mysite.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "pyasynq.integrations.django",
    "shop",
]


def _database(url: str) -> dict[str, Any]:
    if not url.startswith("postgresql://"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "example.sqlite3"}
    u = urlsplit(url)
    db: dict[str, Any] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": u.path.lstrip("/") or "postgres",
        "USER": u.username or "postgres",
        "PASSWORD": u.password or "",
        "HOST": u.hostname or "127.0.0.1",
        "PORT": str(u.port or 5432),
    }
    if os.environ.get("EXAMPLE_TEST_DATABASE"):
        db["TEST"] = {"NAME": os.environ["EXAMPLE_TEST_DATABASE"]}
    return db


DATABASES = {"default": _database(os.environ.get("EXAMPLE_DATABASE_URL", ""))}

PYASYNQ = {
    "REDIS_URL": os.environ.get("PYASYNQ_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "WORKER": {"queues": {"orders": 1}, "concurrency": 4},
    # A periodic task for `python manage.py pyasynq_scheduler`.
    "SCHEDULE": [("@every 1s", "orders:sweep", {"queue": "orders"})],
}
