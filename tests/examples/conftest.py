"""Fixtures for the sign-up example's tests: real processes (uvicorn, workers), a real SMTP
sink, the session's real Redis, and SQLite or the local PostgreSQL.

``stack`` builds an ``examples.signup.stack.Stack`` with test timings (no task delay,
short retry delays and leases) and stops it after the test. ``database_url`` is SQLite;
``any_database_url`` runs a test on SQLite and on PostgreSQL (``SIGNUP_TEST_POSTGRES_URL``,
default the one `make test` starts; skipped when it does not answer, failed under CI), each
in a fresh schema.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if os.environ.get("CI") != "true":  # under CI a missing extra is an error, not a skip
    pytest.importorskip("starlette", reason="needs the examples extra: pip install '.[examples]'")

from examples.signup.stack import Stack  # noqa: E402

# Test timings: tasks run at once, retries after 0.2 s (doubling), a killed worker's tasks
# come back 1.5 s after its last lease extension.
FAST = {
    "SIGNUP_PROCESS_IN": "0",
    "SIGNUP_RETRY_DELAY": "0.2",
    "SIGNUP_FORWARD_INTERVAL": "0.1",
    "SIGNUP_LEASE_SECONDS": "1.5",
    "SIGNUP_CONCURRENCY": "5",
}
POSTGRES_URL = os.environ.get(
    "SIGNUP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'signup.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'signup.sqlite'}"
        return
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        # `make test` starts one (scripts/services.sh); under CI a missing one is a failure.
        msg = f"no PostgreSQL at {POSTGRES_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    schema = f"signup_test_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture
def stack(
    redis_url: str, r: redis.Redis, tmp_path: Path, database_url: str
) -> Iterator[Callable[..., Stack]]:
    """``stack(database_url=None, **settings)``: a Stack on the flushed test Redis."""
    made: list[Stack] = []

    def make(db_url: str | None = None, **settings: str) -> Stack:
        st = Stack(
            tmp_path / f"run-{len(made)}",
            redis_url=redis_url,
            database_url=db_url or database_url,
            settings={**FAST, **settings},
        )
        made.append(st)
        return st

    yield make
    for st in made:
        st.stop()
