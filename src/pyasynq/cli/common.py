"""What every command shares: finding Redis, loading user objects."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

from pyasynq.embedded import EmbeddedRedis


class UsageError(Exception):
    """A mistake on the command line or in what it names; printed as one line."""


def redis_url(flag: str | None) -> tuple[str, EmbeddedRedis | None]:
    """The Redis to use: the flag, then PYASYNQ_REDIS_URL, then REDIS_URL, else an
    embedded server with its data under ./.pyasynq/redis (said on stderr)."""
    url = flag or os.environ.get("PYASYNQ_REDIS_URL") or os.environ.get("REDIS_URL")
    if url:
        return url, None
    try:
        server = EmbeddedRedis(Path(".pyasynq") / "redis").start()
    except RuntimeError as exc:
        raise UsageError(str(exc)) from exc
    print(
        f"pyasynq: no Redis configured; started an embedded server at {server.url} "
        f"(data in {server.data_dir}). Use --redis-url or PYASYNQ_REDIS_URL for a real one.",
        file=sys.stderr,
    )
    return server.url, server


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
