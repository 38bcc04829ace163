"""Fixtures for the interop suite: the Go programs in go/ built once per session (cached by
a hash of their sources, go.sum and the Go version), and a ``fleet`` that starts Go
programs and pyasynq workers for one test and stops them after it.

Without Go the suite skips with one line; under CI=true it fails instead."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from pyasynq.cli import main

from .support import Fleet, build_programs, fleet


@pytest.fixture(scope="session")
def go_bin() -> Path:
    return build_programs()


@pytest.fixture
def go(go_bin: Path, redis_url: str, r: redis.Redis, tmp_path: Path) -> Iterator[Fleet]:
    """A Fleet on a flushed Redis."""
    with fleet(go_bin, redis_url, tmp_path) as f:
        yield f


@pytest.fixture
def cli(redis_url: str, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    """``pyasynq --redis-url <test redis> *argv --json`` in-process: its parsed JSON
    (``as_json=False``: no --json, and what it printed)."""

    def run(*argv: str, as_json: bool = True) -> Any:
        capsys.readouterr()
        code = main(["--redis-url", redis_url, *argv, *(["--json"] if as_json else [])])
        out, err = capsys.readouterr()
        assert code == 0, f"pyasynq {' '.join(argv)} exited {code}: {err}"
        return json.loads(out) if as_json else out

    return run
