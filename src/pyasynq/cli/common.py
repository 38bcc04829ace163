"""What every command shares: finding Redis, loading user objects."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from typing import Any

from pyasynq import embedded
from pyasynq.embedded import SharedRedis


class UsageError(Exception):
    """A mistake on the command line or in what it names; printed as one line."""


def redis_url(flag: str | None) -> tuple[str, SharedRedis | None]:
    """The Redis to use: the flag, then PYASYNQ_REDIS_URL, then REDIS_URL, else the shared
    embedded server of ./.pyasynq/redis (said once on stderr). The caller releases the
    embedded one when done; the last of its users to do so stops it."""
    url = flag or embedded.configured_url()
    if url:
        return url, None
    try:
        server = embedded.acquire()
    except RuntimeError as exc:
        raise UsageError(str(exc)) from exc
    _exit_cleanly_on_signals()
    server.announce()
    return server.url, server


def _exit_cleanly_on_signals() -> None:
    """Let SIGTERM and SIGHUP (a closed terminal) end the command through its ``finally``
    blocks, so it gives the embedded server back: by default both kill the process on the
    spot. SIGHUP becomes a SIGTERM, so commands that stop gracefully on SIGTERM (worker,
    scheduler, web) do so on a hang-up too."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_DFL:
        signal.signal(signal.SIGHUP, _hangup_as_sigterm)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _hangup_as_sigterm(signum: int, frame: object) -> None:
    signal.raise_signal(signal.SIGTERM)


def load_object(spec: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted), from the current directory too."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"expected module:attribute, e.g. myapp.tasks:mux; got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{module_name!r} has no attribute {attr!r}") from None
    return obj
