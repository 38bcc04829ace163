"""examples/fastapi_app end to end: the endpoint enqueues, the plugin's worker runs the
task, the mounted dashboard answers the admin only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="needs the fastapi extra")
pytest.importorskip("jinja2", reason="needs the web extra")

from starlette.testclient import TestClient

from pyasynq.testing import Worker

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.fastapi_app.app import built, create_app, mux


def test_report_is_enqueued_built_and_visible_to_the_admin(
    pyasynq_redis_url: str, pyasynq_worker: Worker
) -> None:
    built.clear()
    app = create_app(pyasynq_redis_url, admin_token="s3cret")
    with TestClient(app) as http:
        assert http.post("/reports/q3").json()["queue"] == "default"
        assert http.get("/admin/tasks/").status_code == 403
        admin = {"authorization": "Bearer s3cret"}
        assert "report:build" in http.get("/admin/tasks/queue?q=default", headers=admin).text
    report = pyasynq_worker.run_until_idle(mux)
    assert (report.processed, built) == (1, ["q3"])
