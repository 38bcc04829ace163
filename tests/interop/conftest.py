"""Fixtures for the interop suite: the Go programs in go/ built once per session (cached by
a hash of their sources, go.sum and the Go version), and a ``fleet`` that starts Go
programs and pyasynq workers for one test and stops them after it.

Without Go the suite skips with one line; under CI=true it fails instead."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from .support import Fleet, build_programs, fleet


@pytest.fixture(scope="session")
def go_bin() -> Path:
    return build_programs()


@pytest.fixture
def go(go_bin: Path, redis_url: str, r: redis.Redis, tmp_path: Path) -> Iterator[Fleet]:
    """A Fleet on a flushed Redis."""
    with fleet(go_bin, redis_url, tmp_path) as f:
        yield f
