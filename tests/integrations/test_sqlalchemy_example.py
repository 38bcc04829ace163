"""examples/sqlalchemy_after_commit with the pytest plugin's fixtures, as a user would test it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="needs the sqlalchemy extra")

from sqlalchemy import create_engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import pyasynq
from pyasynq.testing import Worker

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.sqlalchemy_after_commit.app import Base, User, sign_up, worker_mux


def test_sign_up_welcomes_committed_users_only(
    tmp_path: Path, pyasynq_client: pyasynq.Client, pyasynq_worker: Worker
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'app.sqlite'}")
    Base.metadata.create_all(engine)
    sign_up(engine, pyasynq_client, "ada", "ada@example.com")
    with pytest.raises(IntegrityError):
        sign_up(engine, pyasynq_client, "ada", "other@example.com")  # rolled back: no task

    report = pyasynq_worker.run_until_idle(worker_mux(engine))
    assert report.processed == 1 and not report.errors
    with Session(engine) as s:
        assert s.scalars(select(User.welcomed)).all() == [True]
