"""Fixtures for the command-line tests: ``cli(...)`` runs ``pyasynq.cli.main`` in-process
against the test Redis and returns its exit status and what it printed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from pyasynq import Client
from pyasynq.cli import main

from .support import Cli, Result


@pytest.fixture
def cli(redis_url: str, r: redis.Redis, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``pyasynq --redis-url <test redis> *argv`` in-process."""

    def run(*argv: str) -> Result:
        capsys.readouterr()  # drop anything printed before
        code = main(["--redis-url", redis_url, *argv])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture
def client(redis_url: str, r: redis.Redis) -> Iterator[Client]:
    with Client(redis_url) as c:
        yield c
