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

_built: dict[str, Any] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the Go programs before the first test when any selected test needs them: a
    first build (module download and compile, 1-3 minutes on a cold cache) must not count
    against a test's timeout."""
    if not any("go_bin" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    try:
        _built["dir"] = build_programs()
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        _built["outcome"] = exc


@pytest.fixture(scope="session")
def go_bin() -> Path:
    """The directory of the built Go programs (skips or fails as the build did)."""
    if "outcome" in _built:
        raise _built["outcome"]
    if "dir" not in _built:
        _built["dir"] = build_programs()
    return Path(_built["dir"])


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
