"""The integrations' tests use the suite's Redis (``redis_url``, flushed by ``r``) through
the pyasynq pytest plugin's fixtures, so they run against the same server and topology as
the rest of the suite. PostgreSQL cases use ``POSTGRES_URL`` (default: the local server);
they are skipped when it does not answer, except under CI=true, where that fails."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

POSTGRES_URL = os.environ.get("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pyasynq_redis_url(redis_url: str, r: redis.Redis) -> str:
    return redis_url


def postgres_or_skip() -> str:
    """POSTGRES_URL when PostgreSQL answers; else skip (fail under CI=true)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        msg = f"no PostgreSQL at {POSTGRES_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return POSTGRES_URL


@pytest.fixture
def postgres_schema() -> Iterator[tuple[str, str]]:
    """(PostgreSQL URL, a fresh schema name), the schema dropped after the test."""
    import psycopg

    url = postgres_or_skip()
    schema = f"pyasynq_it_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield url, schema
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
