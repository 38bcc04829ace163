"""A FastAPI service that hands work to pyasynq (docs/integrations/fastapi.md).

``POST /reports/{name}`` enqueues ``report:build`` with the app's AsyncClient; the task
dashboard is mounted at ``/admin/tasks`` behind the app's own admin check (a bearer
token here; a real app would look at its session or user). Run it with::

    EXAMPLE_REDIS_URL=redis://127.0.0.1:6379/0 EXAMPLE_ADMIN_TOKEN=s3cret \\
        uvicorn examples.fastapi_app.app:app
    pyasynq worker examples.fastapi_app.app:mux
"""

from __future__ import annotations

import hmac
import os

from fastapi import FastAPI
from starlette.requests import Request

import pyasynq
from pyasynq.integrations.fastapi import ClientDep, Pyasynq

mux = pyasynq.ServeMux()
built: list[str] = []  # what the worker did, for the example's test


@mux.handler("report:build")
async def build_report(task: pyasynq.Task) -> None:
    built.append(task.json()["name"])


def create_app(redis_url: str, admin_token: str) -> FastAPI:
    pq = Pyasynq(redis_url)
    app = FastAPI(lifespan=pq.lifespan)

    def is_admin(request: Request) -> bool:
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        return hmac.compare_digest(given.encode(), admin_token.encode())

    app.mount("/admin/tasks", pq.dashboard(auth=is_admin, title="reports"))

    @app.post("/reports/{name}")
    async def order_report(name: str, client: ClientDep) -> dict[str, str]:
        task = pyasynq.Task.from_json("report:build", {"name": name})
        info = await client.enqueue(task, max_retry=3)
        return {"task_id": info.id, "queue": info.queue}

    return app


if os.environ.get("EXAMPLE_REDIS_URL"):  # for `uvicorn examples.fastapi_app.app:app`
    app = create_app(os.environ["EXAMPLE_REDIS_URL"], os.environ["EXAMPLE_ADMIN_TOKEN"])
