"""The ``PYASYNQ`` setting and the process's Client built from it."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

try:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "pyasynq.integrations.django needs Django: pip install 'pyasynq[django]'"
    ) from exc

from pyasynq import Client

KNOWN = {"REDIS_URL", "WORKER", "SCHEDULER", "SCHEDULE", "CLIENT"}

_lock = threading.Lock()
_client: Client | None = None


def pyasynq_settings() -> dict[str, Any]:
    """The ``PYASYNQ`` setting, checked: ``REDIS_URL`` (required), ``WORKER`` (ServerConfig
    fields), ``SCHEDULER`` (SchedulerConfig fields), ``SCHEDULE`` (``(cronspec, task type,
    {enqueue options})`` entries; the options may include ``payload`` as bytes), ``CLIENT``
    (keyword arguments of :class:`pyasynq.Client`)."""
    conf = getattr(settings, "PYASYNQ", None)
    if not isinstance(conf, Mapping):
        raise ImproperlyConfigured(
            'pyasynq: set PYASYNQ = {"REDIS_URL": "redis://127.0.0.1:6379/0"} in your settings'
        )
    unknown = sorted(set(conf) - KNOWN)
    if unknown:
        raise ImproperlyConfigured(
            f"pyasynq: unknown PYASYNQ key(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(KNOWN))}"
        )
    if not isinstance(conf.get("REDIS_URL"), str) or not conf["REDIS_URL"]:
        raise ImproperlyConfigured('pyasynq: PYASYNQ["REDIS_URL"] must be a Redis URL string')
    for key in ("WORKER", "SCHEDULER", "CLIENT"):
        if not isinstance(conf.get(key, {}), Mapping):
            raise ImproperlyConfigured(f'pyasynq: PYASYNQ["{key}"] must be a dict of options')
    return dict(conf)


def get_client() -> Client:
    """The process's :class:`pyasynq.Client` for ``PYASYNQ["REDIS_URL"]``, made on first
    use (thread-safe: the Client's connection pool is shared by the threads)."""
    global _client  # noqa: PLW0603 - one client per process, rebuilt when settings change
    with _lock:
        if _client is None:
            conf = pyasynq_settings()
            _client = Client(conf["REDIS_URL"], **conf.get("CLIENT", {}))
        return _client


def reset_client() -> None:
    """Close the cached client; the next :func:`get_client` builds a new one."""
    global _client
    with _lock:
        client, _client = _client, None
    if client is not None:
        client.close()
